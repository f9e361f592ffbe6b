package deepij.plugin;

import java.io.IOException;

/**
 * One way to reach a deepij worker: lines of JSON each way (see the protocol in deepij's
 * {@code deepij.frontdoors.serve} module). {@link ProcessLink} is a {@code deepij serve --stdio} child process
 * (the plugin in a user's ImageJ); {@code deepij gui} gives the plugin an in-process one, {@link InProcessLink},
 * through {@link Worker#use(Link)}.
 */
public interface Link {

    /** Sends one line (a request, or a cancel). */
    void send(String line) throws IOException;

    /**
     * The next line from the worker, or null when none came within {@code timeoutMs}.
     *
     * @throws IOException when the worker has ended (the message says how)
     */
    String receive(long timeoutMs) throws IOException;

    /** The private folder of the shared files the pixels cross through. */
    String exchange();

    /** Whether the worker still runs. */
    boolean alive();

    /** Ends the worker (nothing when it already ended). */
    void close();
}
