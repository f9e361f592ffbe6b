package deepij.plugin;

import ij.IJ;
import ij.gui.GenericDialog;
import ij.macro.Interpreter;
import ij.plugin.PlugIn;

import java.util.Map;

/**
 * Plugins &gt; deepij &gt; Install Model: a bundle zip, a bundle folder or an http(s) URL of a zip, checked and
 * installed by deepij into this ImageJ's {@code models/} folder (where DeepImageJ Run finds it by name).
 * {@code run("Install Model", "source=[/path/model.zip] overwrite")} in a macro.
 */
public class InstallCommand implements PlugIn {

    public void run(String arg) {
        String command = arg == null || arg.isEmpty() ? "Install Model" : arg;
        Interpreter caller = Interpreter.getInstance();
        Commands.Feedback feedback = new Commands.Feedback();
        GenericDialog dialog = new GenericDialog(command);
        dialog.addFileField("Source", "", 50);
        dialog.addMessage("a bundle zip, a bundle folder, or an http(s) URL of a zip");
        dialog.addCheckbox("Overwrite an installed model of that name", false);
        dialog.showDialog();
        if (dialog.wasCanceled())
            return;
        String source = dialog.getNextString().trim();
        boolean overwrite = dialog.getNextBoolean();
        try {
            Map<String, Object> answer = Worker.get().call(Json.of("op", "install", "source", source,
                    "imagej_dir", IJ.getDirectory("imagej"), "overwrite", overwrite), feedback);
            feedback.done();
            IJ.log(command + ": installed '" + Json.string(answer, "name") + "' into " + Json.string(answer,
                    "folder"));
            IJ.showStatus(command + ": installed " + Json.string(answer, "name"));
        } catch (Failure failure) {
            Commands.stop(command, failure, caller);
        }
    }
}
