package deepij.plugin;

import ij.IJ;
import ij.Macro;
import ij.macro.Interpreter;

import java.lang.reflect.Field;

/**
 * What every command of the plugin shares: progress on ImageJ's bar and status line, the worker's log lines
 * in ImageJ's Log (as {@code logging=} asks), and how a failure stops the calling macro.
 */
final class Commands {

    private static final int WIDTH = 100;

    private Commands() {
    }

    /** Progress and log lines of one command, shown the ImageJ way. */
    static final class Feedback implements Worker.Events {
        private String logging = "normal";

        /** {@code logging=} of the call: {@code mute}, {@code normal} or {@code debug}. */
        void setLogging(String level) {
            if (level != null)
                logging = level;
        }

        public void progress(String stage, int done, int total, String label) {
            if (total > 0)
                IJ.showProgress(done, total);
            IJ.showStatus("deepij: " + stage + (total > 0 ? " " + done + "/" + total : "")
                    + (label == null || label.isEmpty() ? "" : " (" + label + ")"));
        }

        /** Level {@code IJ}: a line the command itself writes to ImageJ's Log (as deepij's own ImageJ does). */
        public void log(String level, String message) {
            if ("IJ".equals(level)) {
                IJ.log(message);
                return;
            }
            if ("mute".equals(logging) && !"ERROR".equals(level))
                return;
            IJ.log("[deepij] " + message);
        }

        /** Clears the bar and the status line. */
        void done() {
            IJ.showProgress(1.0);
            IJ.showStatus("");
        }
    }

    /**
     * Says why {@code command} stopped and stops the calling macro: ImageJ's error dialog (the macro error box
     * naming the calling line when a macro called it), and the Log too in batch mode; without ImageJ's window
     * ({@code -batch}) the Log (standard output) alone. A cancel (Esc) stops the macro without a message box.
     *
     * @param caller the macro interpreter that called the command, or null (the menu)
     */
    static void stop(String command, Failure failure, Interpreter caller) {
        IJ.showProgress(1.0);
        if (failure.cancelled()) {
            IJ.showStatus(command + ": cancelled");
            IJ.resetEscape();
            if (caller != null)
                finish(caller);
            return;
        }
        IJ.showStatus("");
        String message = command + ": " + failure.getMessage();
        boolean window = IJ.getInstance() != null;
        if (!window || Interpreter.isBatchMode())
            IJ.log(message);
        if (!window) {
            if (caller != null)
                finish(caller); // no box to show: ImageJ's would wait for a click nobody can give
            return;
        }
        if (caller != null) {
            caller.abort(wrap(message)); // the macro error box, with the calling line; stops the macro
            throw new RuntimeException(Macro.MACRO_CANCELED);
        }
        IJ.error(command, wrap(message));
    }

    /** A message in lines of at most {@code WIDTH} characters: ImageJ's message boxes do not wrap. */
    static String wrap(String message) {
        StringBuilder out = new StringBuilder();
        for (String paragraph : message.split("\n", -1)) {
            int column = 0;
            for (String word : paragraph.split(" ")) {
                if (column > 0 && column + 1 + word.length() > WIDTH) {
                    out.append('\n');
                    column = 0;
                } else if (column > 0) {
                    out.append(' ');
                    column++;
                }
                out.append(word);
                column += word.length();
            }
            out.append('\n');
        }
        return out.toString().trim();
    }

    /**
     * Stops the calling macro after this command, without a message box: the interpreter's own stop flag
     * ({@code done}, what its abort sets; it has no public setter), then the cancel ImageJ's commands throw.
     */
    private static void finish(Interpreter caller) {
        try {
            Field done = Interpreter.class.getDeclaredField("done");
            done.setAccessible(true);
            done.setBoolean(caller, true);
        } catch (ReflectiveOperationException | RuntimeException unavailable) {
            Interpreter.abort(); // an ImageJ without the flag: its own abort
        }
        throw new RuntimeException(Macro.MACRO_CANCELED);
    }

    /** The options a macro gave the command (without ImageJ's trailing space), or null from the menu. */
    static String macroOptions() {
        String options = Macro.getOptions();
        if (options == null || options.trim().isEmpty())
            return null;
        return options.trim();
    }
}
