package deepij.plugin;

import ij.IJ;
import ij.gui.GenericDialog;
import ij.macro.Interpreter;
import ij.plugin.PlugIn;

import java.util.Map;

/**
 * Plugins &gt; deepij &gt; Test Model: deepij's test of an installed model (its test inputs run and compared
 * with the outputs it ships, with its tolerance, per weights format), reported in the Log and as a table
 * titled {@code Test Model}. {@code run("Test Model", "model=[name]")} in a macro.
 */
public class TestCommand implements PlugIn {

    public void run(String arg) {
        String command = arg == null || arg.isEmpty() ? "Test Model" : arg;
        Interpreter caller = Interpreter.getInstance();
        Commands.Feedback feedback = new Commands.Feedback();
        Worker worker = Worker.get();
        try {
            String model = choose(command, worker, feedback);
            if (model == null)
                return;
            Map<String, Object> answer = worker.call(Json.of("op", "test", "model", model, "imagej_dir",
                    IJ.getDirectory("imagej")), feedback);
            feedback.done();
            IJ.log(Json.string(answer, "report"));
            Steps.showTable(Tables.read(Json.map(answer, "table")), "Test Model");
            IJ.showStatus(command + ": " + Json.string(answer, "status"));
        } catch (Failure failure) {
            Commands.stop(command, failure, caller);
        }
    }

    private static String choose(String command, Worker worker, Commands.Feedback feedback) {
        String[] names = worker.modelNames(feedback);
        GenericDialog dialog = new GenericDialog(command);
        dialog.addChoice("Model", names, names[0]);
        dialog.showDialog();
        return dialog.wasCanceled() ? null : dialog.getNextChoice();
    }
}
