package deepij.plugin;

import ij.gui.GenericDialog;
import ij.plugin.frame.Recorder;
import ij.util.Tools;

import java.awt.Checkbox;
import java.awt.Choice;
import java.awt.TextField;
import java.util.Vector;

/**
 * The dialog of DeepImageJ StarDist and DeepImageJ Cellpose from the menu: the models the worker lists (as
 * DeepImageJ Run's dialog lists them) and the command's options with deepij's defaults. OK gives the
 * options, recorded by ImageJ's recorder as the macro line that replays the call, e.g.
 * {@code run("DeepImageJ StarDist", "model=[...] prob_thresh=0.5 min_percentile=1 max_percentile=99.8")}.
 */
final class InstanceDialog {

    private static final String[] COLOURS = {"gray", "red", "green", "blue"};

    private InstanceDialog() {
    }

    /**
     * Shows the dialog of {@code which} (deepImageJ's name of the command); the options chosen, or null when
     * cancelled.
     *
     * @throws Failure when there is no model to choose
     */
    static String ask(String command, String which, Worker worker, Worker.Events events) {
        String[] names = worker.modelNames(events);
        GenericDialog dialog = new GenericDialog(command);
        dialog.addChoice("model", names, names[0]);
        boolean cellpose = which.endsWith("Cellpose");
        if (cellpose) {
            dialog.addChoice("cyto_color", COLOURS, "gray");
            dialog.addChoice("nuclei_color", COLOURS, "gray");
            dialog.addNumericField("diameter", 0, 1, 8, "pixels (0: the image's own size)");
            dialog.addCheckbox("display_all", false);
        } else {
            dialog.addNumericField("prob_thresh", 0.5, 2);
            dialog.addNumericField("min_percentile", 1, 1);
            dialog.addNumericField("max_percentile", 99.8, 1);
        }
        dialog.showDialog();
        if (dialog.wasCanceled())
            return null;
        Vector<?> choices = dialog.getChoices();
        Vector<?> numbers = dialog.getNumericFields();
        StringBuilder options = new StringBuilder();
        option(options, "model", choice(choices, 0));
        if (cellpose) {
            option(options, "cyto_color", choice(choices, 1));
            option(options, "nuclei_color", choice(choices, 2));
            double diameter = number(numbers, 0, "diameter");
            if (diameter > 0)
                option(options, "diameter", text(diameter));
            if (((Checkbox) dialog.getCheckboxes().get(0)).getState())
                option(options, "display_all", "true");
        } else {
            option(options, "prob_thresh", text(number(numbers, 0, "prob_thresh")));
            option(options, "min_percentile", text(number(numbers, 1, "min_percentile")));
            option(options, "max_percentile", text(number(numbers, 2, "max_percentile")));
        }
        return options.toString();
    }

    private static String choice(Vector<?> choices, int index) {
        return ((Choice) choices.get(index)).getSelectedItem();
    }

    private static double number(Vector<?> fields, int index, String key) {
        String typed = ((TextField) fields.get(index)).getText().trim();
        double value = Tools.parseDouble(typed);
        if (Double.isNaN(value))
            throw new Failure(key + "=" + typed + ": expected a number");
        return value;
    }

    /** A number as a macro writes it: {@code 1}, {@code 99.8}. */
    private static String text(double value) {
        if (value == Math.rint(value) && !Double.isInfinite(value))
            return String.valueOf((long) value);
        return String.valueOf(value);
    }

    /**
     * One option, also given to ImageJ's recorder (read from the dialog's fields rather than through
     * GenericDialog, whose own recording would write a checkbox as a bare key and numbers rounded).
     */
    private static void option(StringBuilder options, String key, String value) {
        if (options.length() > 0)
            options.append(' ');
        options.append(key).append('=').append(value.contains(" ") ? "[" + value + "]" : value);
        if (Recorder.record)
            Recorder.recordOption(key, value);
    }
}
