package deepij.plugin;

import ij.IJ;

import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;

/**
 * This ImageJ's deepij worker: started on first use, kept while ImageJ runs (the model stays loaded), started
 * again on the next call when it died. One per ImageJ: two ImageJ instances have their own.
 *
 * <p>Which deepij to start comes from {@code deepij/plugin/install.properties} inside the plugin jar, written
 * by {@code deepij plugin install} ({@code python}: the interpreter it was installed from; {@code pythonpath}:
 * where its {@code deepij} package is); {@code $DEEPIJ_PYTHON} overrides the interpreter.
 */
public final class Worker {

    /** How long the worker may take to start (importing deepij), in ms; Esc gives up sooner. */
    private static final long START_LIMIT_MS = 300000;
    private static final long POLL_MS = 50;

    private static Worker shared;
    private static Link given;

    private Link link;
    private SharedFiles files;
    private int nextId = 1;
    private int generation;

    private Worker() {
        Runtime.getRuntime().addShutdownHook(new Thread(new Runnable() {
            public void run() {
                stop();
            }
        }, "deepij worker stop"));
    }

    /** This ImageJ's worker. */
    public static synchronized Worker get() {
        if (shared == null)
            shared = new Worker();
        return shared;
    }

    /**
     * This ImageJ's worker, for a macro ({@code call("deepij.plugin.Worker.status")}): {@code "pid 4242
     * exchange /dev/shm/deepij-serve-x1y2"}, or {@code "not started"}.
     */
    public static synchronized String status() {
        Worker worker = get();
        synchronized (worker) {
            Link current = worker.link;
            if (current == null || !current.alive())
                return "not started";
            String pid = current instanceof ProcessLink ? "pid " + ((ProcessLink) current).pid() + " "
                    : "in process ";
            return pid + "exchange " + current.exchange();
        }
    }

    /** Serve this ImageJ from {@code link} instead of a child process ({@code deepij gui}: in process). */
    public static synchronized void use(Link link) {
        Worker worker = get();
        synchronized (worker) {
            if (worker.link != null && worker.link != given)
                worker.link.close(); // a child process started before: this link replaces it
            given = link;
            worker.link = null; // the next command takes up the given link (and its shared files)
            worker.files = null;
        }
    }

    /** What each call reports while it runs: progress, log lines. */
    interface Events {
        void progress(String stage, int done, int total, String label);

        void log(String level, String message);
    }

    /**
     * Starts a command: the worker, started again when it ended since the last command. The number returned
     * names this worker: {@link #call(Map, Events, int)} refuses to go on with another one.
     */
    public synchronized int begin() {
        Link current = link();
        if (!answers(current)) { // it ended since the last command (its end may not be noticed yet)
            dropLink(current);
            link();
        }
        return generation;
    }

    /** Whether the worker answers a ping (at once, even while busy). */
    private boolean answers(Link current) {
        int id = nextId++;
        try {
            current.send(Json.write(Json.of("op", "ping", "id", id)));
            while (true) {
                String line = current.receive(START_LIMIT_MS);
                if (line == null)
                    return false;
                if (Json.integer(Json.object(line), "id", -1) == id)
                    return true;
            }
        } catch (IOException ended) {
            return false;
        }
    }

    /** {@link #call(Map, Events, int)} with whichever worker runs (started if needed). */
    /**
     * The names of the models the worker finds for this ImageJ, the choices of the dialogs.
     *
     * @throws Failure when there is none (saying where it looked and how to install one)
     */
    String[] modelNames(Events events) {
        Map<String, Object> answer = call(Json.of("op", "models", "imagej_dir", ij.IJ.getDirectory("imagej")),
                events);
        java.util.List<Map<String, Object>> models = Json.maps(answer, "models");
        if (models.isEmpty())
            throw new Failure("no model found (looked in " + String.join(", ", Json.strings(answer, "folders"))
                    + "); install one with Plugins > deepij > Install Model");
        String[] names = new String[models.size()];
        for (int i = 0; i < names.length; i++)
            names[i] = Json.string(models.get(i), "name");
        return names;
    }

    public synchronized Map<String, Object> call(Map<String, Object> request, Events events) {
        return call(request, events, begin());
    }

    /**
     * Sends one request and waits for its answer, passing progress and log events on. Esc cancels it.
     *
     * @param worker the worker the command began with ({@link #begin()})
     * @throws Failure the worker's error (its message), a cancel, or a worker that ended during the command
     */
    public synchronized Map<String, Object> call(Map<String, Object> request, Events events, int worker) {
        if (link != null && !link.alive() || generation != worker) {
            String ended = link instanceof ProcessLink ? ((ProcessLink) link).describeEnd()
                    : "the deepij worker ended";
            if (link != null)
                dropLink(link);
            throw new Failure(ended + "\nIt is started again on the next call.");
        }
        Link current = link();
        int id = nextId++;
        Map<String, Object> sent = new LinkedHashMap<String, Object>(request);
        sent.put("id", id);
        try {
            current.send(Json.write(sent));
            return await(current, id, events);
        } catch (IOException ended) {
            dropLink(current);
            throw new Failure(ended.getMessage() + "\nIt is started again on the next call.");
        }
    }

    private Map<String, Object> await(Link current, int id, Events events) throws IOException {
        boolean cancelled = false;
        while (true) {
            String line = current.receive(POLL_MS);
            if (line == null) {
                if (!cancelled && IJ.escapePressed()) {
                    current.send(Json.write(Json.of("op", "cancel", "id", id)));
                    cancelled = true;
                }
                continue;
            }
            Map<String, Object> message = Json.object(line);
            if (Json.integer(message, "id", -1) != id)
                continue; // an answer to a call that was given up (its caller stopped waiting)
            String event = Json.string(message, "event");
            if ("progress".equals(event)) {
                events.progress(Json.string(message, "stage"), Json.integer(message, "done", 0),
                        Json.integer(message, "total", 0), Json.string(message, "label"));
            } else if ("cancelling".equals(event)) {
                IJ.showStatus("deepij: cancelling...");
            } else if ("log".equals(event)) {
                events.log(Json.string(message, "level"), Json.string(message, "message"));
            } else if (Json.flag(message, "ok")) {
                return message;
            } else {
                String kind = Json.string(message, "kind");
                throw new Failure(Json.string(message, "error"), "Cancelled".equals(kind) || cancelled);
            }
        }
    }

    /** The shared files of the current worker (started if needed). */
    public synchronized SharedFiles files() {
        if (files == null)
            throw new Failure("the deepij worker ended during this call; it is started again on the next call");
        return files;
    }

    private Link link() {
        if (link != null && link.alive())
            return link;
        if (link != null)
            dropLink(link);
        if (given != null)
            link = given;
        else
            link = start();
        generation++;
        files = new SharedFiles(link.exchange());
        return link;
    }

    private void dropLink(Link ended) {
        ended.close();
        if (link == ended && ended != given)
            link = null;
        files = null;
    }

    private void stop() {
        Link current = link;
        if (current != null && current != given)
            current.close();
    }

    // ----------------------------------------------------------------------------------------- starting
    private static ProcessLink start() {
        Properties installed = installation();
        String python = System.getenv("DEEPIJ_PYTHON");
        if (python == null || python.isEmpty())
            python = installed.getProperty("python");
        if (python == null || python.isEmpty())
            throw new Failure("this deepij plugin does not say which Python runs deepij (it was not installed "
                    + "with `deepij plugin install`); install it with: deepij plugin install <ImageJ folder>, "
                    + "or set DEEPIJ_PYTHON to the Python that has deepij");
        List<String> command = new ArrayList<String>();
        command.add(python);
        command.add("-m");
        command.add("deepij");
        command.add("serve");
        command.add("--stdio");
        Map<String, String> environment = new LinkedHashMap<String, String>();
        String path = installed.getProperty("pythonpath", "");
        if (!path.isEmpty()) {
            String before = System.getenv("PYTHONPATH");
            environment.put("PYTHONPATH", before == null || before.isEmpty() ? path
                    : path + File.pathSeparator + before);
        }
        environment.put("PYTHONUNBUFFERED", "1");
        ProcessLink started;
        try {
            started = new ProcessLink(command, environment);
        } catch (IOException error) {
            throw new Failure("could not start the deepij worker with " + python + " (" + error.getMessage()
                    + "); is deepij still installed there? Install the plugin again with: deepij plugin install "
                    + "<ImageJ folder>");
        }
        IJ.showStatus("deepij: starting the worker...");
        awaitHello(started);
        return started;
    }

    private static void awaitHello(ProcessLink started) {
        long deadline = System.currentTimeMillis() + START_LIMIT_MS;
        try {
            while (System.currentTimeMillis() < deadline) {
                String line = started.receive(POLL_MS);
                if (line == null) {
                    if (IJ.escapePressed()) {
                        started.close();
                        throw new Failure("cancelled while the deepij worker was starting", true);
                    }
                    continue;
                }
                Map<String, Object> hello = Json.object(line);
                if (!"deepij".equals(Json.string(hello, "hello")))
                    continue;
                int protocol = Json.integer(hello, "protocol", 0);
                if (protocol != SharedFiles.PROTOCOL) {
                    started.close();
                    throw new Failure("the deepij worker speaks protocol " + protocol + " but this plugin speaks "
                            + SharedFiles.PROTOCOL + ": install the plugin again with: deepij plugin install "
                            + "<ImageJ folder>");
                }
                started.setExchange(Json.string(hello, "exchange"));
                started.setPid(Json.integer(hello, "pid", -1));
                IJ.showStatus("");
                return;
            }
        } catch (IOException ended) {
            started.removeExchange();
            throw new Failure("the deepij worker could not start: " + ended.getMessage());
        }
        started.close();
        throw new Failure("the deepij worker did not start within " + START_LIMIT_MS / 1000 + " s: "
                + started.lastMessages());
    }

    /** The plugin's installation record (empty when the jar was not installed by deepij). */
    static Properties installation() {
        Properties properties = new Properties();
        InputStream in = Worker.class.getResourceAsStream("/deepij/plugin/install.properties");
        if (in == null)
            return properties;
        try {
            properties.load(in);
            in.close();
        } catch (IOException unreadable) {
            // an empty record: the message above says how to install
        }
        return properties;
    }
}
