package deepij.plugin;

import ij.IJ;
import ij.ImagePlus;
import ij.WindowManager;
import ij.gui.GenericDialog;
import ij.macro.Interpreter;
import ij.measure.ResultsTable;
import ij.plugin.PlugIn;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Plugins &gt; deepij &gt; DeepImageJ Validate: {@code run("DeepImageJ Validate", "reference=[truth]
 * test=[prediction] ssim psnr")} measured by deepij's validation in the worker, answered as a ResultsTable
 * (titled {@code Loss}, as deepImageJ titles it). Open images named by {@code reference=}/{@code test=} cross
 * as pixels; other values are files or folders. Without options, a dialog asks for the two images and the
 * metrics.
 */
public class ValidateCommand implements PlugIn {

    public void run(String arg) {
        String command = arg == null || arg.isEmpty() ? "DeepImageJ Validate" : arg;
        Interpreter caller = Interpreter.getInstance();
        Commands.Feedback feedback = new Commands.Feedback();
        Worker worker = Worker.get();
        try {
            String options = Commands.macroOptions();
            if (options == null) {
                options = ask(command, worker, feedback);
                if (options == null)
                    return;
            }
            validate(worker, options, feedback);
            feedback.done();
        } catch (Failure failure) {
            Commands.stop(command, failure, caller);
        }
    }

    private static void validate(Worker worker, String options, Commands.Feedback feedback) {
        Map<String, Object> plan = worker.call(Json.of("op", "validate_plan", "options", options, "titles",
                titles()), feedback);
        List<ImagePlus> images = new ArrayList<ImagePlus>();
        for (String title : Json.strings(plan, "images"))
            images.add(WindowManager.getImage(title));
        List<Map<String, Object>> described = worker.files().write(images);
        Map<String, Object> answer = worker.call(Json.of("op", "validate", "options", options, "images",
                described), feedback);
        Map<String, Object> table = Json.map(answer, "table");
        ResultsTable results = Tables.read(table);
        int decimal = Json.integer(answer, "decimal", -1);
        if (decimal >= 0)
            results.setPrecision(decimal);
        Steps.showTable(results, Json.string(table, "title"));
        for (String note : Json.strings(answer, "notes"))
            IJ.log("DeepImageJ Validate: " + note);
    }

    private static List<String> titles() {
        List<String> titles = new ArrayList<String>();
        int[] ids = WindowManager.getIDList();
        if (ids != null)
            for (int id : ids)
                titles.add(WindowManager.getImage(id).getTitle());
        return titles;
    }

    /** deepImageJ's dialog: a reference and a test image among the open ones, and the metrics. */
    private static String ask(String command, Worker worker, Commands.Feedback feedback) {
        List<String> open = titles();
        if (open.isEmpty())
            throw new Failure("there is no image open (expected the reference and the test image open)");
        Map<String, Object> answer = worker.call(Json.of("op", "validate_metrics"), feedback);
        List<String> metrics = Json.strings(answer, "metrics");
        GenericDialog dialog = new GenericDialog(command);
        String[] titles = open.toArray(new String[0]);
        dialog.addChoice("Reference", titles, titles[0]);
        dialog.addChoice("Test", titles, titles[titles.length > 1 ? 1 : 0]);
        boolean[] defaults = new boolean[metrics.size()];
        java.util.Arrays.fill(defaults, true);
        dialog.addCheckboxGroup((metrics.size() + 2) / 3, 3, metrics.toArray(new String[0]), defaults);
        dialog.showDialog();
        if (dialog.wasCanceled())
            return null;
        StringBuilder options = new StringBuilder();
        options.append("reference=[").append(dialog.getNextChoice()).append("] test=[")
                .append(dialog.getNextChoice()).append(']');
        for (String metric : metrics)
            if (dialog.getNextBoolean())
                options.append(' ').append(metric.toLowerCase(java.util.Locale.US));
        return options.toString();
    }
}
