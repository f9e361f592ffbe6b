package deepij.plugin;

import ij.CompositeImage;
import ij.ImagePlus;
import ij.ImageStack;
import ij.measure.Calibration;
import ij.process.LUT;

import java.io.File;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Pixels between ImageJ and the worker, through two shared files in the worker's private folder:
 * {@code to_worker} (written here, read by the worker) and {@code from_worker} (the other way). An image is
 * its planes one after the other in ImageJ's stack order (channel fastest, then slice, then frame), each plane
 * row after row, in the machine's byte order; RGB planes are ImageJ's packed {@code int} pixels. What an image
 * is (sizes, type, calibration, where it starts) travels in the JSON message; see deepij's
 * {@code deepij.frontdoors.exchange}.
 */
public final class SharedFiles {

    /** The version of the protocol (messages and files) this plugin speaks. */
    static final int PROTOCOL = 1;

    private final File toWorker;
    private final File fromWorker;

    /** The shared files of the worker whose private folder is {@code folder}. */
    public SharedFiles(String folder) {
        toWorker = new File(folder, "to_worker");
        fromWorker = new File(folder, "from_worker");
    }

    // ------------------------------------------------------------------------------------------ writing
    /** Writes the images into {@code to_worker}; their descriptions (with offsets), in the same order. */
    public List<Map<String, Object>> write(List<ImagePlus> images) {
        List<Map<String, Object>> described = new ArrayList<Map<String, Object>>();
        long offset = 0;
        for (ImagePlus imp : images) {
            Map<String, Object> meta = describe(imp);
            meta.put("offset", offset);
            described.add(meta);
            offset += bytes(imp);
        }
        if (offset == 0)
            return described;
        try {
            RandomAccessFile file = new RandomAccessFile(toWorker, "rw");
            try {
                if (file.length() < offset)
                    file.setLength(offset);
                for (int i = 0; i < images.size(); i++)
                    writePlanes(images.get(i), file.getChannel(), Json.whole(described.get(i), "offset"));
            } finally {
                file.close();
            }
        } catch (IOException error) {
            throw new Failure("could not write the image into " + toWorker + ": " + error.getMessage());
        }
        return described;
    }

    private static long bytes(ImagePlus imp) {
        long plane = (long) imp.getWidth() * imp.getHeight();
        return plane * imp.getStackSize() * bytesPerPixel(imp.getBitDepth());
    }

    private static int bytesPerPixel(int bitDepth) {
        return bitDepth == 8 ? 1 : bitDepth == 16 ? 2 : 4;
    }

    private static void writePlanes(ImagePlus imp, FileChannel channel, long offset) throws IOException {
        ImageStack stack = imp.getStack();
        int pixels = imp.getWidth() * imp.getHeight();
        int perChunk = CHUNK / bytesPerPixel(imp.getBitDepth());
        long position = offset;
        for (int index = 1; index <= stack.getSize(); index++) {
            Object plane = stack.getPixels(index);
            for (int start = 0; start < pixels; start += perChunk) {
                ByteBuffer chunk = fill(plane, start, Math.min(perChunk, pixels - start), imp, index);
                while (chunk.hasRemaining())
                    position += channel.write(chunk, position);
            }
        }
    }

    /** {@code count} pixels of a plane from {@code start}, in the scratch buffer, ready to be written. */
    private static ByteBuffer fill(Object pixels, int start, int count, ImagePlus imp, int index) {
        ByteBuffer chunk = SCRATCH.get();
        chunk.clear();
        int bytes;
        if (pixels instanceof byte[]) {
            chunk.put((byte[]) pixels, start, count);
            bytes = 1;
        } else if (pixels instanceof short[]) {
            chunk.asShortBuffer().put((short[]) pixels, start, count);
            bytes = 2;
        } else if (pixels instanceof float[]) {
            chunk.asFloatBuffer().put((float[]) pixels, start, count);
            bytes = 4;
        } else if (pixels instanceof int[]) {
            chunk.asIntBuffer().put((int[]) pixels, start, count);
            bytes = 4;
        } else {
            throw new Failure("image '" + imp.getTitle() + "': plane " + index + " has no pixels");
        }
        chunk.position(0);
        chunk.limit(count * bytes);
        return chunk;
    }

    /**
     * Bytes one positional read or write moves. Pixels cross through one reused direct buffer with
     * positional reads and writes: a mapping of the file made anew for each call faults on each of its pages,
     * which costs more than the copy on these machines (as on deepij's side, see its exchange module).
     */
    private static final int CHUNK = 8 << 20;
    private static final ThreadLocal<ByteBuffer> SCRATCH = new ThreadLocal<ByteBuffer>() {
        @Override
        protected ByteBuffer initialValue() {
            return ByteBuffer.allocateDirect(CHUNK).order(ByteOrder.nativeOrder());
        }
    };

    /** What the worker needs to know of an image besides its pixels. */
    static Map<String, Object> describe(ImagePlus imp) {
        Map<String, Object> meta = new LinkedHashMap<String, Object>();
        int[] dims = imp.getDimensions();
        meta.put("title", imp.getTitle());
        meta.put("width", dims[0]);
        meta.put("height", dims[1]);
        meta.put("channels", dims[2]);
        meta.put("slices", dims[3]);
        meta.put("frames", dims[4]);
        meta.put("type", type(imp.getBitDepth()));
        meta.put("calibration", calibration(imp.getCalibration()));
        List<Object> ranges = new ArrayList<Object>();
        if (imp.isComposite()) {
            int mode = ((CompositeImage) imp).getMode();
            meta.put("composite_mode", mode == CompositeImage.COLOR ? "color"
                    : mode == CompositeImage.GRAYSCALE ? "grayscale" : "composite");
            for (LUT lut : ((CompositeImage) imp).getLuts())
                ranges.add(pair(lut.min, lut.max));
        } else {
            ranges.add(pair(imp.getDisplayRangeMin(), imp.getDisplayRangeMax()));
        }
        meta.put("display_range", ranges);
        return meta;
    }

    private static List<Object> pair(double low, double high) {
        List<Object> pair = new ArrayList<Object>();
        pair.add(low);
        pair.add(high);
        return pair;
    }

    private static String type(int bitDepth) {
        switch (bitDepth) {
            case 8: return "uint8";
            case 16: return "uint16";
            case 24: return "rgb";
            default: return "float32";
        }
    }

    private static Map<String, Object> calibration(Calibration cal) {
        Map<String, Object> map = new LinkedHashMap<String, Object>();
        map.put("scaled", cal.scaled());
        map.put("unit", cal.getUnit());
        map.put("pixel_width", cal.pixelWidth);
        map.put("pixel_height", cal.pixelHeight);
        map.put("pixel_depth", cal.pixelDepth);
        map.put("x_origin", cal.xOrigin);
        map.put("y_origin", cal.yOrigin);
        map.put("z_origin", cal.zOrigin);
        map.put("frame_interval", cal.frameInterval);
        map.put("time_unit", cal.getTimeUnit());
        return map;
    }

    // ------------------------------------------------------------------------------------------ reading
    /** The images the worker wrote into {@code from_worker}, as described in its answer. */
    public List<ImagePlus> read(List<Map<String, Object>> described) {
        List<ImagePlus> images = new ArrayList<ImagePlus>();
        if (described.isEmpty())
            return images;
        try {
            RandomAccessFile file = new RandomAccessFile(fromWorker, "r");
            try {
                long size = file.length();
                for (Map<String, Object> meta : described)
                    images.add(image(file.getChannel(), meta, size));
            } finally {
                file.close();
            }
        } catch (IOException error) {
            throw new Failure("could not read the outputs from " + fromWorker + ": " + error.getMessage());
        }
        return images;
    }

    private static ImagePlus image(FileChannel channel, Map<String, Object> meta, long size)
            throws IOException {
        int width = Json.integer(meta, "width", 0);
        int height = Json.integer(meta, "height", 0);
        int channels = Json.integer(meta, "channels", 1);
        int slices = Json.integer(meta, "slices", 1);
        int frames = Json.integer(meta, "frames", 1);
        String type = Json.string(meta, "type");
        int bitDepth = "uint8".equals(type) ? 8 : "uint16".equals(type) ? 16 : "rgb".equals(type) ? 24 : 32;
        long offset = Json.whole(meta, "offset");
        int pixels = width * height;
        long planeBytes = (long) pixels * bytesPerPixel(bitDepth);
        int planes = channels * slices * frames;
        if (offset + planeBytes * planes > size)
            throw new Failure("the deepij worker described more pixels than its file holds (" + size + " bytes)");
        ImageStack stack = new ImageStack(width, height);
        for (int index = 0; index < planes; index++)
            stack.addSlice("", readPlane(channel, offset + index * planeBytes, bitDepth, pixels));
        ImagePlus imp = new ImagePlus(Json.string(meta, "title"), stack);
        imp.setDimensions(channels, slices, frames);
        if (channels > 1 && bitDepth != 24)
            imp = new CompositeImage(imp, compositeMode(Json.string(meta, "composite_mode")));
        int several = (channels > 1 ? 1 : 0) + (slices > 1 ? 1 : 0) + (frames > 1 ? 1 : 0);
        if (several > 1)
            imp.setOpenAsHyperStack(true);
        applyCalibration(imp, Json.map(meta, "calibration"));
        applyDisplayRange(imp, meta.get("display_range"), bitDepth);
        return imp;
    }

    private static Object readPlane(FileChannel channel, long offset, int bitDepth, int pixels)
            throws IOException {
        Object values = bitDepth == 8 ? new byte[pixels] : bitDepth == 16 ? new short[pixels]
                : bitDepth == 24 ? (Object) new int[pixels] : new float[pixels];
        int bytes = bytesPerPixel(bitDepth);
        int perChunk = CHUNK / bytes;
        for (int start = 0; start < pixels; start += perChunk) {
            int count = Math.min(perChunk, pixels - start);
            long position = offset + (long) start * bytes;
            ByteBuffer chunk = SCRATCH.get();
            chunk.clear();
            chunk.limit(count * bytes);
            while (chunk.hasRemaining())
                if (channel.read(chunk, position + chunk.position()) < 0)
                    throw new Failure("the deepij worker's file ended at byte " + (position + chunk.position()));
            chunk.position(0);
            if (values instanceof byte[])
                chunk.get((byte[]) values, start, count);
            else if (values instanceof short[])
                chunk.asShortBuffer().get((short[]) values, start, count);
            else if (values instanceof int[])
                chunk.asIntBuffer().get((int[]) values, start, count);
            else
                chunk.asFloatBuffer().get((float[]) values, start, count);
        }
        return values;
    }

    private static int compositeMode(String mode) {
        if ("color".equals(mode))
            return CompositeImage.COLOR;
        if ("grayscale".equals(mode))
            return CompositeImage.GRAYSCALE;
        return CompositeImage.COMPOSITE;
    }

    private static void applyCalibration(ImagePlus imp, Map<String, Object> map) {
        if (map.isEmpty())
            return;
        Calibration cal = imp.getCalibration();
        if (map.containsKey("pixel_width")) {
            cal.pixelWidth = Json.number(map, "pixel_width", 1);
            cal.pixelHeight = Json.number(map, "pixel_height", 1);
            cal.pixelDepth = Json.number(map, "pixel_depth", 1);
            cal.xOrigin = Json.number(map, "x_origin", 0);
            cal.yOrigin = Json.number(map, "y_origin", 0);
            cal.zOrigin = Json.number(map, "z_origin", 0);
        }
        String unit = Json.string(map, "unit");
        if (unit != null)
            cal.setUnit(unit);
        double interval = Json.number(map, "frame_interval", 0);
        if (interval > 0) {
            cal.frameInterval = interval;
            String timeUnit = Json.string(map, "time_unit");
            if (timeUnit != null)
                cal.setTimeUnit(timeUnit);
        }
        imp.setCalibration(cal);
    }

    @SuppressWarnings("unchecked")
    private static void applyDisplayRange(ImagePlus imp, Object given, int bitDepth) {
        if (!(given instanceof List) || bitDepth == 24)
            return; // ImageJ's own: the first plane's min and max, as when it opens a file
        List<Object> ranges = (List<Object>) given;
        for (int c = 0; c < ranges.size(); c++) {
            List<Object> range = (List<Object>) ranges.get(c);
            double low = ((Number) range.get(0)).doubleValue();
            double high = ((Number) range.get(1)).doubleValue();
            if (imp.isComposite()) {
                imp.setC(c + 1);
                imp.setDisplayRange(low, high);
            } else if (c == 0) {
                imp.setDisplayRange(low, high);
            }
        }
        if (imp.isComposite())
            imp.setC(1);
    }
}
