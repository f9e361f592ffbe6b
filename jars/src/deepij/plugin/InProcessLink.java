package deepij.plugin;

import java.io.IOException;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * The worker of {@code deepij gui}: deepij's operations served in this very process (the JVM runs inside
 * Python), so the plugin's commands need no child process. Lines go through two queues: the plugin's
 * requests wait in one until deepij's serving thread takes them ({@link #nextRequest(long)}), the answers
 * come back through the other ({@link #answer(String)}). Nothing calls into Python from ImageJ's threads:
 * Python polls, ImageJ's threads only wait on queues, so no thread of ImageJ ever waits for Python's lock.
 *
 * <p>The worker lives as long as {@code deepij gui}: a command that gives it up ({@link #close()}) changes
 * nothing; {@link #end()} (Python, when the window has closed) stops it.
 */
public final class InProcessLink implements Link {

    private static final String END = "\u0000end";

    private final LinkedBlockingQueue<String> requests = new LinkedBlockingQueue<String>();
    private final LinkedBlockingQueue<String> answers = new LinkedBlockingQueue<String>();
    private final String exchange;
    private volatile boolean ended;

    /** @param exchange the private folder of the shared files the pixels cross through */
    public InProcessLink(String exchange) {
        this.exchange = exchange;
    }

    // ------------------------------------------------------------------------------- the plugin's side
    public void send(String line) throws IOException {
        if (ended)
            throw new IOException("the deepij worker of `deepij gui` has stopped (its window was closed)");
        requests.add(line);
    }

    public String receive(long timeoutMs) throws IOException {
        String line;
        try {
            line = answers.poll(timeoutMs, TimeUnit.MILLISECONDS);
        } catch (InterruptedException interrupted) {
            Thread.currentThread().interrupt();
            return null;
        }
        if (END.equals(line)) {
            answers.add(END); // every later call learns it too
            throw new IOException("the deepij worker of `deepij gui` has stopped (its window was closed)");
        }
        return line;
    }

    public String exchange() {
        return exchange;
    }

    public boolean alive() {
        return !ended;
    }

    /** Nothing to end: the worker in this process runs as long as {@code deepij gui}. */
    public void close() {
    }

    // --------------------------------------------------------------------------------- deepij's side
    /** The next request from the plugin, or null when none came within {@code timeoutMs}. */
    public String nextRequest(long timeoutMs) throws InterruptedException {
        return requests.poll(timeoutMs, TimeUnit.MILLISECONDS);
    }

    /** Passes one line (an event or an answer) to the plugin. */
    public void answer(String line) {
        answers.add(line);
    }

    /** Stops the worker: later calls of the plugin fail with a message saying so. */
    public void end() {
        ended = true;
        answers.add(END);
    }
}
