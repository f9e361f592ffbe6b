package deepij.plugin;

import ij.IJ;
import ij.ImagePlus;
import ij.WindowManager;
import ij.gui.DialogListener;
import ij.gui.GenericDialog;
import ij.plugin.frame.Recorder;

import java.awt.AWTEvent;
import java.awt.Choice;
import java.awt.TextArea;
import java.awt.TextField;
import java.util.List;
import java.util.Map;
import java.util.Vector;

/**
 * DeepImageJ Run's dialog: the models found (ImageJ's {@code models/}, {@code $DEEPIJ_MODELS_DIR}, deepij's
 * models folder), and for the chosen one its weights formats, processing, axes and tile, with what the bundle
 * declares (inputs, axes, tile rules, steps, weights). OK gives the options, recorded by ImageJ's recorder as
 * {@code run("DeepImageJ Run", "model=[...] format=... preprocessing=[...] postprocessing=[...] axes=...
 * tile=... logging=...")}, the line that replays the run. One implementation for the plugin and for
 * {@code deepij gui}.
 */
public final class RunDialog implements DialogListener {

    private static final String[] LOGGING = {"mute", "normal", "debug"};

    private final List<Map<String, Object>> models;
    private Choice model;
    private Choice format;
    private Choice pre;
    private Choice post;
    private TextField axes;
    private TextField tile;
    private TextArea info;

    private RunDialog(List<Map<String, Object>> models) {
        this.models = models;
    }

    /**
     * Shows the dialog; the options chosen, or null when cancelled.
     *
     * @throws Failure when there is no model to choose
     */
    public static String ask(String command, Worker worker, Worker.Events events) {
        ImagePlus imp = WindowManager.getCurrentImage();
        Map<String, Object> answer = worker.call(Json.of("op", "models", "imagej_dir", IJ.getDirectory("imagej"),
                "image", imp == null ? null : SharedFiles.describe(imp)), events);
        List<Map<String, Object>> models = Json.maps(answer, "models");
        if (models.isEmpty())
            throw new Failure("no model found (looked in " + String.join(", ", Json.strings(answer, "folders"))
                    + "); install one with Plugins > deepij > Install Model");
        return new RunDialog(models).show(command);
    }

    private String show(String command) {
        GenericDialog dialog = new GenericDialog(command);
        String[] names = new String[models.size()];
        for (int i = 0; i < names.length; i++)
            names[i] = Json.string(models.get(i), "name");
        Map<String, Object> first = models.get(0);
        dialog.addChoice("Model", names, names[0]);
        dialog.addChoice("Format", items(first, "formats"), items(first, "formats")[0]);
        dialog.addChoice("Preprocessing", items(first, "pre"), items(first, "pre")[0]);
        dialog.addChoice("Postprocessing", items(first, "post"), items(first, "post")[0]);
        dialog.addStringField("Axes", Json.string(first, "axes"), 20);
        dialog.addStringField("Tile", Json.string(first, "tile"), 20);
        dialog.addChoice("Logging", LOGGING, "normal");
        dialog.addTextAreas(Json.string(first, "info"), null, 14, 72);
        Vector<?> choices = dialog.getChoices();
        model = (Choice) choices.get(0);
        format = (Choice) choices.get(1);
        pre = (Choice) choices.get(2);
        post = (Choice) choices.get(3);
        Vector<?> fields = dialog.getStringFields();
        axes = (TextField) fields.get(0);
        tile = (TextField) fields.get(1);
        info = dialog.getTextArea1();
        info.setEditable(false);
        dialog.addDialogListener(this);
        dialog.showDialog();
        if (dialog.wasCanceled())
            return null;
        return options(dialog);
    }

    /**
     * The options chosen, each also given to ImageJ's recorder (read from the dialog's fields rather than
     * through GenericDialog, which records only when no macro runs: here the recorded line is the same
     * either way). Empty axes or tile are left out: recorded as {@code axes=[]} they would be refused.
     */
    private String options(GenericDialog dialog) {
        StringBuilder options = new StringBuilder();
        option(options, "model", model.getSelectedItem());
        option(options, "format", format.getSelectedItem());
        option(options, "preprocessing", pre.getSelectedItem());
        option(options, "postprocessing", post.getSelectedItem());
        option(options, "axes", axes.getText().trim());
        option(options, "tile", tile.getText().trim());
        option(options, "logging", ((Choice) dialog.getChoices().get(4)).getSelectedItem());
        return options.toString();
    }

    private static void option(StringBuilder options, String key, String value) {
        if (value == null || value.isEmpty())
            return;
        append(options, key, value);
        if (Recorder.record)
            Recorder.recordOption(key, value);
    }

    private static void append(StringBuilder options, String key, String value) {
        if (options.length() > 0)
            options.append(' ');
        options.append(key).append('=');
        options.append(value.contains(" ") ? "[" + value + "]" : value);
    }

    private static String[] items(Map<String, Object> model, String key) {
        List<String> values = Json.strings(model, key);
        if (values.isEmpty())
            values.add("");
        return values.toArray(new String[0]);
    }

    public boolean dialogItemChanged(GenericDialog dialog, AWTEvent event) {
        if (event == null || event.getSource() != model)
            return true;
        Map<String, Object> chosen = models.get(model.getSelectedIndex());
        fill(format, items(chosen, "formats"));
        fill(pre, items(chosen, "pre"));
        fill(post, items(chosen, "post"));
        axes.setText(Json.string(chosen, "axes"));
        tile.setText(Json.string(chosen, "tile"));
        info.setText(Json.string(chosen, "info"));
        return true;
    }

    private static void fill(Choice choice, String[] items) {
        choice.removeAll();
        for (String item : items)
            choice.add(item);
        choice.select(0);
    }
}
