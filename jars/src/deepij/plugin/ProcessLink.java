package deepij.plugin;

import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.List;
import java.util.Map;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * A {@code deepij serve --stdio} child process: requests go to its standard input, answers come from its
 * standard output. Pipes are private to the two processes, so no other user or program can give the worker
 * work or read what it answers. The worker ends when its standard input closes: when ImageJ quits, or is
 * killed, the pipe closes with it.
 */
final class ProcessLink implements Link {

    private static final String END = "\u0000end";
    private static final int KEPT_LINES = 40;

    private final Process process;
    private final OutputStream toWorker;
    private final LinkedBlockingQueue<String> lines = new LinkedBlockingQueue<String>();
    private final Deque<String> messages = new ArrayDeque<String>();
    private final String command;
    private String exchange;
    private int pid = -1;
    private boolean ended;

    ProcessLink(List<String> command, Map<String, String> environment) throws IOException {
        this.command = String.join(" ", command);
        ProcessBuilder builder = new ProcessBuilder(command);
        builder.environment().putAll(environment);
        builder.directory(new File(System.getProperty("user.home", ".")));
        process = builder.start();
        toWorker = process.getOutputStream();
        reader("deepij worker output", process.getInputStream(), true).start();
        reader("deepij worker messages", process.getErrorStream(), false).start();
    }

    private Thread reader(String name, final InputStream stream, final boolean protocol) {
        Thread thread = new Thread(new Runnable() {
            public void run() {
                BufferedReader in = new BufferedReader(new InputStreamReader(stream, StandardCharsets.UTF_8));
                try {
                    for (String line = in.readLine(); line != null; line = in.readLine()) {
                        if (protocol)
                            lines.add(line);
                        else
                            keep(line);
                    }
                } catch (IOException closed) {
                    // the worker ended: said below
                }
                if (protocol)
                    lines.add(END);
            }
        }, name);
        thread.setDaemon(true);
        return thread;
    }

    private synchronized void keep(String line) {
        messages.addLast(line);
        while (messages.size() > KEPT_LINES)
            messages.removeFirst();
    }

    /** The last lines the worker wrote to its standard error (its log and tracebacks). */
    synchronized String lastMessages() {
        return String.join("\n", messages);
    }

    void setExchange(String folder) {
        exchange = folder;
    }

    public String exchange() {
        return exchange;
    }

    void setPid(int id) {
        pid = id;
    }

    /** The worker's process id (from its hello). */
    int pid() {
        return pid;
    }

    public synchronized void send(String line) throws IOException {
        if (ended)
            throw new IOException(describeEnd());
        try {
            toWorker.write((line + "\n").getBytes(StandardCharsets.UTF_8));
            toWorker.flush();
        } catch (IOException broken) {
            ended = true;
            throw new IOException(describeEnd());
        }
    }

    public String receive(long timeoutMs) throws IOException {
        if (ended)
            throw new IOException(describeEnd());
        String line;
        try {
            line = lines.poll(timeoutMs, TimeUnit.MILLISECONDS);
        } catch (InterruptedException interrupted) {
            Thread.currentThread().interrupt();
            return null;
        }
        if (END.equals(line)) {
            ended = true;
            throw new IOException(describeEnd());
        }
        return line;
    }

    public boolean alive() {
        return !ended && process.isAlive();
    }

    /** How the worker ended: its exit status (or signal) and its last messages. */
    String describeEnd() {
        String status;
        try {
            if (process.waitFor(5, TimeUnit.SECONDS)) {
                int code = process.exitValue();
                status = code > 128 && code < 160 ? "killed by signal " + (code - 128) : "exit status " + code;
            } else {
                status = "it stopped answering";
            }
        } catch (InterruptedException interrupted) {
            Thread.currentThread().interrupt();
            status = "interrupted while waiting for it";
        }
        String last = lastMessages().trim();
        return "the deepij worker (" + command + ") ended: " + status
                + (last.isEmpty() ? "" : "; its last messages:\n" + last);
    }

    public void close() {
        ended = true;
        try {
            toWorker.close(); // the worker's standard input ends: it stops by itself
        } catch (IOException alreadyClosed) {
            // nothing to close
        }
        try {
            if (!process.waitFor(3, TimeUnit.SECONDS))
                process.destroy();
            if (!process.waitFor(3, TimeUnit.SECONDS))
                process.destroyForcibly();
        } catch (InterruptedException interrupted) {
            process.destroyForcibly();
            Thread.currentThread().interrupt();
        }
        removeExchange();
    }

    /** The worker removes its folder when it stops; after a crash it is removed here. */
    void removeExchange() {
        if (exchange == null)
            return;
        File folder = new File(exchange);
        File[] files = folder.listFiles();
        if (files != null)
            for (File file : files)
                file.delete();
        folder.delete();
    }
}
