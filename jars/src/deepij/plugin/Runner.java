package deepij.plugin;

import ij.IJ;
import ij.ImagePlus;
import ij.WindowManager;
import ij.macro.Interpreter;
import ij.measure.ResultsTable;

import java.io.File;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * One {@code run("DeepImageJ Run", options)}: the worker reads the options and plans; the bundle's
 * pre-processing steps run here on a copy of the image; the worker runs the network on what they leave; the
 * outputs open here, titled as deepImageJ titles them, and the post-processing steps run on them. The
 * caller's own images are never changed or closed; the intermediate images are closed; the outputs stay open
 * (in batch mode as batch images), the last one current.
 */
final class Runner {

    private static final Pattern UNSAFE = Pattern.compile("[^\\w.\\- ()+,=]+", Pattern.UNICODE_CHARACTER_CLASS);

    private final Worker worker;
    private final String options;
    private final Commands.Feedback events;
    private final String imagejDir = IJ.getDirectory("imagej");
    private int session;

    Runner(Worker worker, String options, Commands.Feedback events) {
        this.worker = worker;
        this.options = options;
        this.events = events;
    }

    /** Runs the command on the current image (or on the files of 3.1's {@code input_path=}). */
    void run() {
        ImagePlus current = WindowManager.getCurrentImage();
        session = worker.begin(); // a worker that ended since the last call is started again here
        Map<String, Object> plan = worker.call(Json.of("op", "plan", "options", options, "imagej_dir", imagejDir,
                "has_image", current != null), events, session);
        events.setLogging(Json.string(plan, "logging"));
        List<String> files = Json.strings(plan, "files");
        if (files.isEmpty()) {
            runOn(current, current.getTitle(), plan);
            return;
        }
        for (String path : files)
            runOn(open(path), new File(path).getName(), plan);
    }

    /** An input file, read by the worker as deepij reads files (ImageJ's opener for other formats). */
    private ImagePlus open(String path) {
        Map<String, Object> answer = worker.call(Json.of("op", "open", "path", path), events, session);
        if (Json.flag(answer, "imagej")) {
            ImagePlus imp = IJ.openImage(path);
            if (imp == null)
                throw new Failure("input_path: ImageJ cannot open " + path);
            return imp;
        }
        return worker.files().read(Json.maps(answer, "images")).get(0);
    }

    private void runOn(ImagePlus source, String title, Map<String, Object> plan) {
        boolean batch = Interpreter.isBatchMode();
        Interpreter.batchMode = true; // intermediate images stay off the screen
        String thread = Thread.currentThread().getName();
        if (!thread.startsWith("Run$_"))
            Thread.currentThread().setName("Run$_" + thread); // the recorder leaves the steps' commands out
        Workspace workspace = new Workspace();
        boolean done = false;
        try {
            List<ImagePlus> inputs;
            if (readsAsIs(plan, source)) {
                inputs = new ArrayList<ImagePlus>();
                inputs.add(source); // nothing changes it before the network: the worker reads its pixels
            } else {
                ImagePlus copy = source.duplicate();
                copy.setTitle(title);
                workspace.open(copy);
                runSteps(plan, "pre", workspace);
                inputs = networkInputs(plan, workspace);
            }
            Map<String, Object> answer = predict(inputs, title);
            workspace.closeAll();
            Map<String, String> titles = openOutputs(answer, workspace);
            runSteps(plan, "post", workspace, titles);
            finish(plan, workspace, titles, title, answer, batch);
            done = true;
        } finally {
            if (!done)
                workspace.closeAll();
            Interpreter.batchMode = batch;
            Thread.currentThread().setName(thread);
        }
    }

    /**
     * Whether the network's one input is the image as it is: no pre-processing step, and no ROI (a copy
     * would be cropped to it): then the copy, a whole image of memory traffic, is left out.
     */
    private static boolean readsAsIs(Map<String, Object> plan, ImagePlus source) {
        return Json.maps(plan, "pre").isEmpty() && Json.strings(plan, "inputs").size() == 1
                && source.getRoi() == null;
    }

    private void runSteps(Map<String, Object> plan, String stage, Workspace workspace) {
        runSteps(plan, stage, workspace, new LinkedHashMap<String, String>());
    }

    private void runSteps(Map<String, Object> plan, String stage, Workspace workspace, Map<String, String> titles) {
        List<Map<String, Object>> steps = Json.maps(plan, stage);
        for (int index = 0; index < steps.size(); index++) {
            Map<String, Object> step = steps.get(index);
            IJ.showStatus("deepij: " + Json.string(step, "label"));
            if ("macro".equals(Json.string(step, "kind")))
                Steps.macro(step);
            else
                javaStep(step, stage, plan, workspace, titles);
            events.progress("pre".equals(stage) ? "preprocessing" : "postprocessing", index + 1, steps.size(),
                    Json.string(step, "label"));
            stopIfEscaped();
        }
    }

    private void javaStep(Map<String, Object> step, String stage, Map<String, Object> plan, Workspace workspace,
            Map<String, String> titles) {
        HashMap<String, Object> map = new HashMap<String, Object>();
        if ("pre".equals(stage)) {
            List<String> inputs = Json.strings(plan, "inputs");
            for (String name : inputs) {
                ImagePlus imp = workspace.named(name);
                if (imp != null)
                    map.put(name, imp);
            }
            ImagePlus current = Workspace.current();
            if (current != null && !inputs.isEmpty())
                map.put(inputs.get(0), current);
        } else {
            for (ImagePlus imp : workspace.ours())
                map.put(keyOf(imp.getTitle(), titles), imp);
            for (Map.Entry<String, String> output : titles.entrySet()) {
                ResultsTable table = ResultsTable.getResultsTable(output.getValue());
                if (table != null && WindowManager.getImage(output.getValue()) == null)
                    map.put(output.getKey(), table);
            }
        }
        Map<String, Object> returned = Steps.java(step, stage, map);
        ImagePlus first = null;
        List<Integer> kept = new ArrayList<Integer>();
        for (Map.Entry<String, Object> entry : returned.entrySet()) {
            Object value = entry.getValue();
            if (value instanceof ImagePlus) {
                ImagePlus imp = (ImagePlus) value;
                if ("post".equals(stage) && titles.containsKey(entry.getKey()))
                    imp.setTitle(titles.get(entry.getKey()));
                workspace.put(entry.getKey(), imp);
                kept.add(imp.getID());
                if (first == null)
                    first = imp;
            } else if (value instanceof ResultsTable) {
                String key = entry.getKey();
                Steps.showTable((ResultsTable) value, titles.containsKey(key) ? titles.get(key) : key);
            }
        }
        if ("post".equals(stage))
            for (ImagePlus imp : workspace.ours())
                if (!kept.contains(imp.getID())) {
                    imp.changes = false;
                    imp.close(); // deepImageJ's post-processing outputs are what the step returns
                }
        if (first != null)
            WindowManager.setTempCurrentImage("pre".equals(stage) ? first : Workspace.current());
    }

    private static String keyOf(String title, Map<String, String> titles) {
        for (Map.Entry<String, String> output : titles.entrySet())
            if (output.getValue().equals(title))
                return output.getKey();
        return title;
    }

    /** deepImageJ's rule: an image titled like an input tensor, else (first input) the current image. */
    private static List<ImagePlus> networkInputs(Map<String, Object> plan, Workspace workspace) {
        List<ImagePlus> inputs = new ArrayList<ImagePlus>();
        List<String> names = Json.strings(plan, "inputs");
        for (int index = 0; index < names.size(); index++) {
            ImagePlus imp = workspace.named(names.get(index));
            if (imp == null && index == 0)
                imp = Workspace.current();
            if (imp == null) {
                List<String> open = new ArrayList<String>();
                for (ImagePlus each : workspace.ours())
                    open.add(each.getTitle());
                throw new Failure("bundle '" + Json.string(plan, "model") + "': pre-processing left no image for "
                        + "input '" + names.get(index) + "' (open images: " + open + "; expected one titled '"
                        + names.get(index) + "'" + (index == 0 ? " or a current image)" : ")"));
            }
            inputs.add(imp);
        }
        return inputs;
    }

    /** Esc pressed during a step (ImageJ stopped that macro): the run stops here. */
    private static void stopIfEscaped() {
        if (IJ.escapePressed())
            throw new Failure("cancelled (Esc)", true);
    }

    private Map<String, Object> predict(List<ImagePlus> inputs, String title) {
        IJ.showStatus("deepij: running the network...");
        List<Map<String, Object>> described = worker.files().write(inputs);
        return worker.call(Json.of("op", "predict", "options", options, "imagej_dir", imagejDir, "title", title,
                "inputs", described), events, session);
    }

    /** Opens the network's outputs (the last one current); output name -> title. */
    private Map<String, String> openOutputs(Map<String, Object> answer, Workspace workspace) {
        Map<String, String> titles = new LinkedHashMap<String, String>();
        List<Map<String, Object>> described = Json.maps(answer, "outputs");
        List<ImagePlus> images = worker.files().read(described);
        for (int i = 0; i < images.size(); i++) {
            String name = Json.string(described.get(i), "name");
            ImagePlus imp = images.get(i);
            setInfo(imp, answer, name);
            titles.put(name, imp.getTitle());
            workspace.put(name, imp);
        }
        for (Map<String, Object> table : Json.maps(answer, "tables")) {
            titles.put(Json.string(table, "name"), Json.string(table, "title"));
            Steps.showTable(Tables.read(table), Json.string(table, "title"));
        }
        for (String note : Json.strings(answer, "notes"))
            events.log("NOTE", note);
        return titles;
    }

    /**
     * The outputs as deepij gives them: the network's outputs first (one that the post-processing closed or
     * renamed opens again as the network made it), then the images the steps made; saved when asked (3.1's
     * output_folder=), then shown (the last one current) or closed.
     */
    private void finish(Map<String, Object> plan, Workspace workspace, Map<String, String> titles, String title,
            Map<String, Object> answer, boolean batch) {
        List<ImagePlus> outputs = ordered(workspace, answer);
        String folder = Json.string(plan, "output_folder");
        if (folder != null)
            save(new File(folder), outputs, titles, title);
        if (!Json.flag(plan, "display_output")) {
            workspace.closeAll();
            return;
        }
        for (ImagePlus imp : outputs)
            Interpreter.removeBatchModeImage(imp);
        if (!batch)
            Interpreter.batchMode = false;
        for (ImagePlus imp : outputs)
            imp.show(); // in batch mode: the calling macro's batch images, in this order
        ImagePlus last = outputs.isEmpty() ? null : outputs.get(outputs.size() - 1);
        if (last != null && last.getWindow() != null)
            WindowManager.setCurrentWindow(last.getWindow());
        else if (last != null)
            WindowManager.setTempCurrentImage(last);
    }

    private List<ImagePlus> ordered(Workspace workspace, Map<String, Object> answer) {
        List<ImagePlus> outputs = new ArrayList<ImagePlus>();
        List<Map<String, Object>> network = Json.maps(answer, "outputs");
        for (Map<String, Object> output : network) {
            ImagePlus imp = workspace.titled(Json.string(output, "title"));
            if (imp == null) {
                List<Map<String, Object>> one = new ArrayList<Map<String, Object>>();
                one.add(output);
                imp = worker.files().read(one).get(0); // the pixels the worker wrote are still there
                setInfo(imp, answer, Json.string(output, "name"));
                imp.show();
            }
            outputs.add(imp);
        }
        for (ImagePlus imp : workspace.ours())
            if (!outputs.contains(imp))
                outputs.add(imp);
        return outputs;
    }

    private static void setInfo(ImagePlus imp, Map<String, Object> answer, String name) {
        Map<String, Object> info = Json.map(answer, "info");
        if (info.containsKey(name))
            imp.setProperty("Info", String.valueOf(info.get(name)));
    }

    private static void save(File folder, List<ImagePlus> outputs, Map<String, String> titles, String title) {
        if (!folder.isDirectory() && !folder.mkdirs())
            throw new Failure("output_folder=" + folder + ": cannot make this folder");
        int dot = title.lastIndexOf('.');
        String prefix = clean(dot > 0 ? title.substring(0, dot) : title);
        for (ImagePlus imp : outputs) {
            File file = new File(folder, prefix + "_" + stem(keyOf(imp.getTitle(), titles)) + ".tif");
            if (!IJ.saveAsTiff(imp, file.getPath()))
                throw new Failure("output_folder=" + folder + ": could not write " + file);
        }
        for (Map.Entry<String, String> output : titles.entrySet()) {
            ResultsTable table = ResultsTable.getResultsTable(output.getValue());
            if (table == null || WindowManager.getImage(output.getValue()) != null)
                continue;
            File file = new File(folder, prefix + "_" + stem(output.getKey()) + ".csv");
            if (!table.save(file.getPath()))
                throw new Failure("output_folder=" + folder + ": could not write " + file);
        }
    }

    private static String clean(String text) {
        return UNSAFE.matcher(text).replaceAll("_");
    }

    /** A file name for an output, as deepij's {@code Prediction.save} makes it. */
    private static String stem(String name) {
        String cleaned = clean(name).replaceAll("^[ .]+|[ .]+$", "");
        return cleaned.isEmpty() ? "output" : cleaned;
    }
}
