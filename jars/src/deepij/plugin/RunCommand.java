package deepij.plugin;

import ij.macro.Interpreter;
import ij.plugin.PlugIn;

/**
 * Plugins &gt; deepij &gt; DeepImageJ Run: {@code run("DeepImageJ Run", "model=... ...")} in any of deepImageJ's
 * three option dialects, passed to the deepij worker as given; without options (the menu), the dialog.
 * The call returns when the outputs are open. The argument is the command's name in this ImageJ.
 */
public class RunCommand implements PlugIn {

    public void run(String arg) {
        String command = arg == null || arg.isEmpty() ? "DeepImageJ Run" : arg;
        Interpreter caller = Interpreter.getInstance();
        Commands.Feedback feedback = new Commands.Feedback();
        try {
            String options = Commands.macroOptions();
            if (options == null) {
                options = RunDialog.ask(command, Worker.get(), feedback);
                if (options == null)
                    return; // cancelled
            }
            new Runner(Worker.get(), options, feedback).run();
            feedback.done();
        } catch (Failure failure) {
            Commands.stop(command, failure, caller);
        }
    }
}
