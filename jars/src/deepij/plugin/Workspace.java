package deepij.plugin;

import ij.ImagePlus;
import ij.WindowManager;
import ij.macro.Interpreter;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The images one run opens in ImageJ, apart from those that were open before it (the calling macro's own,
 * which the run never closes). Images made by a Java step are also known by the key of its map.
 */
final class Workspace {

    private final Set<Integer> before;
    private final Map<String, ImagePlus> byKey = new LinkedHashMap<String, ImagePlus>();

    Workspace() {
        before = openIds();
    }

    static Set<Integer> openIds() {
        Set<Integer> ids = new HashSet<Integer>();
        int[] list = WindowManager.getIDList();
        if (list != null)
            for (int id : list)
                ids.add(id);
        return ids;
    }

    /** Opens an image where macros see it (batch mode: no window) and makes it current. */
    void open(ImagePlus imp) {
        if (!openIds().contains(imp.getID()))
            imp.show();
        WindowManager.setTempCurrentImage(imp);
    }

    /** Remembers an image a Java step gave under {@code key} (and opens it). */
    void put(String key, ImagePlus imp) {
        byKey.put(key, imp);
        open(imp);
    }

    /** The run's images still open, in the order ImageJ lists them. */
    List<ImagePlus> ours() {
        List<ImagePlus> images = new ArrayList<ImagePlus>();
        int[] list = WindowManager.getIDList();
        if (list == null)
            return images;
        for (int id : list) {
            if (before.contains(id))
                continue;
            ImagePlus imp = WindowManager.getImage(id);
            if (imp != null)
                images.add(imp);
        }
        return images;
    }

    /** The run's open image titled {@code title} (the last one when several are), else null. */
    ImagePlus titled(String title) {
        ImagePlus found = null;
        for (ImagePlus imp : ours())
            if (imp.getTitle().equals(title))
                found = imp;
        return found;
    }

    /** The image a Java step gave under {@code key} while it is still open, else the run's image titled so. */
    ImagePlus named(String key) {
        ImagePlus imp = byKey.get(key);
        if (imp != null && openIds().contains(imp.getID()))
            return imp;
        return titled(key);
    }

    static ImagePlus current() {
        return WindowManager.getCurrentImage();
    }

    /** Closes every image of the run (intermediate images, or outputs nobody wants). */
    void closeAll() {
        for (ImagePlus imp : ours()) {
            imp.changes = false;
            imp.close();
            Interpreter.removeBatchModeImage(imp);
        }
        byKey.clear();
    }
}
