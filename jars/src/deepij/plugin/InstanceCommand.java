package deepij.plugin;

import ij.IJ;
import ij.ImagePlus;
import ij.WindowManager;
import ij.macro.Interpreter;
import ij.plugin.PlugIn;
import ij.process.ImageProcessor;
import ij.process.LUT;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Plugins &gt; deepij &gt; DeepImageJ StarDist and DeepImageJ Cellpose: deepImageJ 3.1's instance-segmentation
 * commands, {@code run("DeepImageJ StarDist", "model=... prob_thresh=... min_percentile=... max_percentile=...")}
 * and {@code run("DeepImageJ Cellpose", "model=... cyto_color=... nuclei_color=... diameter=... ...")}. The
 * options go to the deepij worker as given, with the current image; the worker runs the command as deepij's
 * own ImageJ runs it and answers the images it leaves (the label image titled {@code <title>_mask.tif} or
 * {@code <title>_labels.tif}), which open here, label images with the label table, the last one current.
 * Without options (the menu), {@link InstanceDialog}. The argument is the command's name in this ImageJ
 * (its last word says which command it is).
 */
public class InstanceCommand implements PlugIn {

    public void run(String arg) {
        String command = arg == null || arg.isEmpty() ? "DeepImageJ StarDist" : arg;
        String which = canonical(command);
        Interpreter caller = Interpreter.getInstance();
        Commands.Feedback feedback = new Commands.Feedback();
        try {
            String options = Commands.macroOptions();
            if (options == null) {
                options = InstanceDialog.ask(command, which, Worker.get(), feedback);
                if (options == null)
                    return; // cancelled
            }
            segment(Worker.get(), which, options, feedback);
            feedback.done();
        } catch (Failure failure) {
            Commands.stop(command, named(failure, which), caller);
        }
    }

    /** deepImageJ's name of the command whose menu name is {@code command}: the worker knows these. */
    static String canonical(String command) {
        return command.endsWith("Cellpose") ? "DeepImageJ Cellpose" : "DeepImageJ StarDist";
    }

    /** The worker's messages start with deepImageJ's name of the command; {@link Commands#stop} adds ours. */
    private static Failure named(Failure failure, String which) {
        String message = failure.getMessage();
        String prefix = which + ": ";
        if (message == null || !message.startsWith(prefix))
            return failure;
        return new Failure(message.substring(prefix.length()), failure.cancelled());
    }

    private static void segment(Worker worker, String which, String options, Commands.Feedback feedback) {
        ImagePlus current = WindowManager.getCurrentImage();
        int session = worker.begin(); // a worker that ended since the last call is started again here
        List<ImagePlus> inputs = new ArrayList<ImagePlus>();
        if (current != null)
            inputs.add(current); // none: the worker says the command needs an image, as in process
        IJ.showStatus("deepij: " + which + "...");
        List<Map<String, Object>> described = worker.files().write(inputs);
        Map<String, Object> answer = worker.call(Json.of("op", "instances", "command", which, "options", options,
                "imagej_dir", IJ.getDirectory("imagej"), "title", current == null ? null : current.getTitle(),
                "inputs", described), feedback, session);
        List<Map<String, Object>> outputs = Json.maps(answer, "outputs");
        List<ImagePlus> images = worker.files().read(outputs);
        Map<String, Object> table = Json.map(answer, "label_lut");
        for (int i = 0; i < images.size(); i++)
            if (Json.flag(outputs.get(i), "labels") && !table.isEmpty())
                applyLut(images.get(i), table);
        show(images);
    }

    /**
     * The label table, as deepij applies a table in process: the display range the worker set is kept; the
     * table's name in the image's {@code LUT.nameKey} property.
     */
    private static void applyLut(ImagePlus imp, Map<String, Object> table) {
        LUT lut = new LUT(bytes(table, "reds"), bytes(table, "greens"), bytes(table, "blues"));
        ImageProcessor processor = imp.getProcessor();
        double low = processor.getMin();
        double high = processor.getMax();
        processor.setColorModel(lut);
        processor.setMinAndMax(low, high);
        if (imp.getStackSize() > 1)
            imp.getStack().setColorModel(lut);
        imp.setProp(LUT.nameKey, Json.string(table, "name"));
    }

    @SuppressWarnings("unchecked")
    private static byte[] bytes(Map<String, Object> table, String key) {
        Object value = table.get(key);
        List<Object> values = value instanceof List ? (List<Object>) value : new ArrayList<Object>();
        if (values.size() != 256)
            throw new Failure("the deepij worker sent a label table with " + values.size() + " " + key
                    + " (expected 256)");
        byte[] out = new byte[256];
        for (int i = 0; i < 256; i++)
            out[i] = (byte) ((Number) values.get(i)).intValue();
        return out;
    }

    /** Shown in order (in batch mode as the calling macro's batch images), the last one current. */
    private static void show(List<ImagePlus> images) {
        for (ImagePlus imp : images)
            imp.show();
        ImagePlus last = images.isEmpty() ? null : images.get(images.size() - 1);
        if (last != null && last.getWindow() != null)
            WindowManager.setCurrentWindow(last.getWindow());
        else if (last != null)
            WindowManager.setTempCurrentImage(last);
    }
}
