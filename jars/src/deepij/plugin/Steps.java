package deepij.plugin;

import ij.IJ;
import ij.ImagePlus;
import ij.Macro;
import ij.macro.Interpreter;
import ij.measure.ResultsTable;

import java.awt.AWTEvent;
import java.awt.Dialog;
import java.awt.GraphicsEnvironment;
import java.awt.Toolkit;
import java.awt.event.AWTEventListener;
import java.awt.event.WindowEvent;
import java.io.File;
import java.io.IOException;
import java.lang.reflect.Constructor;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Enumeration;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.jar.JarEntry;
import java.util.jar.JarFile;

/**
 * A bundle's ImageJ steps, run in this ImageJ as deepImageJ runs them: a macro with the current image current,
 * a Java step (deepImageJ's {@code PreProcessingInterface}/{@code PostProcessingInterface}) on the map of
 * images and tables. A failing step becomes a {@link Failure} that names the step (as the worker's plan says
 * it) and, for a macro, the line and ImageJ's message.
 */
final class Steps {

    private static final Map<String, ClassLoader> LOADERS = new HashMap<String, ClassLoader>();

    private Steps() {
    }

    // ------------------------------------------------------------------------------------------ macros
    /** Runs a macro step on the current image; what it leaves open stays open. */
    static void macro(Map<String, Object> step) {
        String where = Json.string(step, "where");
        String code;
        try {
            code = new String(Files.readAllBytes(new File(Json.string(step, "file")).toPath()),
                    StandardCharsets.UTF_8);
        } catch (IOException error) {
            throw new Failure(where + ": cannot read the macro (" + error + ")");
        }
        Interpreter interp = new Interpreter();
        ErrorBoxes boxes = ErrorBoxes.watch();
        try {
            interp.run(code, null);
        } catch (RuntimeException stopped) {
            String message = interp.getErrorMessage();
            if (message == null && Macro.MACRO_CANCELED.equals(stopped.getMessage()))
                throw new Failure(where + ": the macro was stopped", IJ.escapePressed());
            if (message == null)
                message = stopped.toString();
            int line = errorLine(interp);
            throw new Failure(where + (line > 0 ? ", line " + line : "") + ": " + message);
        } finally {
            boxes.stop();
        }
    }

    /** The line ImageJ reported the error on (a package-private field), else the line it was at. */
    private static int errorLine(Interpreter interp) {
        try {
            java.lang.reflect.Field field = Interpreter.class.getDeclaredField("lineNumber");
            field.setAccessible(true);
            int line = field.getInt(interp);
            if (line > 0)
                return line;
        } catch (ReflectiveOperationException | RuntimeException unavailable) {
            // the line it was at, below
        }
        return interp.getLineNumber();
    }

    /**
     * ImageJ's "Macro Error" box of a failing step, closed as it opens: the step's error is said once, by
     * deepij, with the step it comes from (in batch mode without a window the box would wait forever).
     */
    private static final class ErrorBoxes implements AWTEventListener {
        static ErrorBoxes watch() {
            ErrorBoxes boxes = new ErrorBoxes();
            if (!GraphicsEnvironment.isHeadless())
                Toolkit.getDefaultToolkit().addAWTEventListener(boxes, AWTEvent.WINDOW_EVENT_MASK);
            return boxes;
        }

        public void eventDispatched(AWTEvent event) {
            if (event.getID() != WindowEvent.WINDOW_OPENED || !(event.getSource() instanceof Dialog))
                return;
            Dialog dialog = (Dialog) event.getSource();
            if ("Macro Error".equals(dialog.getTitle()))
                dialog.dispose();
        }

        void stop() {
            if (!GraphicsEnvironment.isHeadless())
                Toolkit.getDefaultToolkit().removeAWTEventListener(this);
        }
    }

    // ------------------------------------------------------------------------------------------ Java
    /**
     * Runs a Java step on {@code map} (tensor name to ImagePlus or ResultsTable); what it returns, by name.
     *
     * @param stage "pre" or "post"
     */
    static Map<String, Object> java(Map<String, Object> step, String stage, HashMap<String, Object> map) {
        String where = Json.string(step, "where");
        boolean pre = "pre".equals(stage);
        String interfaceName = pre ? "deepimagej.processing.PreProcessingInterface"
                : "deepimagej.processing.PostProcessingInterface";
        String standard = pre ? "deepimagejPreprocessing" : "deepimagejPostprocessing";
        File file = new File(Json.string(step, "file"));
        List<String> configs = Json.strings(step, "config_files");
        Class<?> stepClass = stepClass(where, file, Json.string(step, "class"), interfaceName, configs);
        Object instance = instantiate(where, stepClass);
        configure(where, stepClass, instance, configs);
        String name = Json.string(step, "method");
        Method method = method(where, stepClass, name == null ? standard : name);
        Object returned;
        try {
            returned = method.invoke(instance, map);
        } catch (InvocationTargetException thrown) {
            throw new Failure(where + ": " + stepClass.getSimpleName() + "." + method.getName() + " threw "
                    + trace(thrown.getCause()) + reported(stepClass, instance));
        } catch (IllegalAccessException error) {
            throw new Failure(where + ": cannot call " + method + " (" + error.getMessage() + ")");
        }
        String error = reported(stepClass, instance);
        if (!error.isEmpty())
            throw new Failure(where + ": the " + (pre ? "pre" : "post") + "-processing step reports an error:"
                    + error.substring("\n  the step's error():".length()));
        if (!(returned instanceof Map))
            throw new Failure(where + ": " + method.getName() + " returned " + (returned == null ? "null"
                    : "a " + returned.getClass().getName()) + " (expected a HashMap of images and tables)");
        Map<String, Object> result = new LinkedHashMap<String, Object>();
        for (Map.Entry<?, ?> entry : ((Map<?, ?>) returned).entrySet())
            result.put(String.valueOf(entry.getKey()), entry.getValue());
        return result;
    }

    private static Class<?> stepClass(String where, File file, String className, String interfaceName,
            List<String> configs) {
        if (!file.isFile())
            throw new Failure(where + ": file " + file + " does not exist");
        ClassLoader loader = loader(where, file, configs);
        try {
            Class<?> wanted = Class.forName(interfaceName, false, loader);
            if (file.getName().endsWith(".class"))
                return Class.forName(classNameOf(where, file), false, loader);
            if (className != null && className.contains("."))
                return Class.forName(className, false, loader);
            List<Class<?>> found = new ArrayList<Class<?>>();
            for (String name : jarClasses(file)) {
                String simple = name.substring(name.lastIndexOf('.') + 1);
                if (className != null && !simple.equals(className))
                    continue;
                Class<?> candidate = Class.forName(name, false, loader);
                if (className != null || wanted.isAssignableFrom(candidate))
                    found.add(candidate);
            }
            if (found.size() == 1)
                return found.get(0);
            throw new Failure(where + ": " + (found.isEmpty() ? "no class" : found.size() + " classes") + " of "
                    + file.getName() + (className != null ? " named " + className : " implement " + interfaceName)
                    + " (expected one; name it in the descriptor as \"File.jar Class::method\")");
        } catch (ClassNotFoundException missing) {
            throw new Failure(where + ": class " + missing.getMessage() + " not found in " + file.getName());
        } catch (LinkageError broken) {
            throw new Failure(where + ": cannot load the step's classes (" + broken + ")");
        }
    }

    /** One class loader per file and modification time, above ImageJ's (its interfaces and ij classes win). */
    private static synchronized ClassLoader loader(String where, File file, List<String> configs) {
        String key = file.getAbsolutePath() + "@" + file.lastModified();
        ClassLoader loader = LOADERS.get(key);
        if (loader != null)
            return loader;
        try {
            List<URL> urls = new ArrayList<URL>();
            urls.add((file.getName().endsWith(".class") ? packageRoot(where, file) : file).toURI().toURL());
            for (String config : configs)
                if (config.endsWith(".jar"))
                    urls.add(new File(config).toURI().toURL());
            loader = new URLClassLoader(urls.toArray(new URL[0]), IJ.getClassLoader());
        } catch (IOException error) {
            throw new Failure(where + ": cannot open " + file + " (" + error + ")");
        }
        LOADERS.put(key, loader);
        return loader;
    }

    private static List<String> jarClasses(File jar) {
        List<String> names = new ArrayList<String>();
        try {
            JarFile archive = new JarFile(jar);
            try {
                Enumeration<JarEntry> entries = archive.entries();
                while (entries.hasMoreElements()) {
                    String name = entries.nextElement().getName();
                    if (name.endsWith(".class") && !name.contains("$") && !name.startsWith("META-INF"))
                        names.add(name.substring(0, name.length() - 6).replace('/', '.'));
                }
            } finally {
                archive.close();
            }
        } catch (IOException error) {
            throw new Failure(jar + ": not a readable jar (" + error.getMessage() + ")");
        }
        return names;
    }

    /** The class a .class file holds, read from the file itself (defined once in a throwaway loader). */
    private static String classNameOf(String where, File classFile) {
        try {
            return new Probe().define(Files.readAllBytes(classFile.toPath())).getName();
        } catch (IOException | LinkageError error) {
            throw new Failure(where + ": " + classFile + " is not a readable class file (" + error + ")");
        }
    }

    /** Defines a class from its bytes, to learn its name. */
    private static final class Probe extends ClassLoader {
        Probe() {
            super(IJ.getClassLoader());
        }

        Class<?> define(byte[] bytes) {
            return defineClass(null, bytes, 0, bytes.length);
        }
    }

    private static File packageRoot(String where, File classFile) {
        String name = classNameOf(where, classFile);
        File root = classFile.getAbsoluteFile().getParentFile();
        for (int dots = name.length() - name.replace(".", "").length(); dots > 0 && root != null; dots--)
            root = root.getParentFile();
        return root;
    }

    private static Object instantiate(String where, Class<?> stepClass) {
        try {
            Constructor<?> constructor = stepClass.getDeclaredConstructor();
            constructor.setAccessible(true); // deepImageJ steps are often package-private classes
            return constructor.newInstance();
        } catch (NoSuchMethodException missing) {
            throw new Failure(where + ": the class has no constructor without arguments (expected one, as "
                    + "deepImageJ creates steps with it)");
        } catch (InvocationTargetException thrown) {
            throw new Failure(where + ": creating the step threw " + trace(thrown.getCause()));
        } catch (Exception error) {
            throw new Failure(where + ": cannot create the step (" + error + ")");
        }
    }

    private static void configure(String where, Class<?> stepClass, Object instance, List<String> configs) {
        try {
            Method files = stepClass.getMethod("setConfigFiles", ArrayList.class);
            files.setAccessible(true);
            files.invoke(instance, new ArrayList<String>(configs));
            return;
        } catch (NoSuchMethodException | AbstractMethodError olderStep) {
            // deepImageJ 2.0's steps have setConfigFile(String): below
        } catch (InvocationTargetException thrown) {
            if (!(thrown.getCause() instanceof AbstractMethodError))
                throw new Failure(where + ": setConfigFiles threw " + trace(thrown.getCause()));
        } catch (IllegalAccessException error) {
            throw new Failure(where + ": cannot call setConfigFiles (" + error.getMessage() + ")");
        }
        try {
            Method file = stepClass.getMethod("setConfigFile", String.class);
            file.setAccessible(true);
            file.invoke(instance, configs.isEmpty() ? "" : configs.get(0));
        } catch (NoSuchMethodException missing) {
            throw new Failure(where + ": the class has neither setConfigFiles(ArrayList) nor setConfigFile(String)");
        } catch (InvocationTargetException thrown) {
            throw new Failure(where + ": setConfigFile threw " + trace(thrown.getCause()));
        } catch (IllegalAccessException error) {
            throw new Failure(where + ": cannot call setConfigFile (" + error.getMessage() + ")");
        }
    }

    private static Method method(String where, Class<?> stepClass, String name) {
        List<String> found = new ArrayList<String>();
        for (Method method : stepClass.getMethods()) {
            if (!method.getName().equals(name))
                continue;
            found.add(method.toGenericString());
            Class<?>[] parameters = method.getParameterTypes();
            if (parameters.length == 1 && parameters[0].isAssignableFrom(HashMap.class)) {
                method.setAccessible(true);
                return method;
            }
        }
        throw new Failure(where + ": no public method " + name + "(HashMap) (found: "
                + (found.isEmpty() ? "none" : String.join(", ", found)) + ")");
    }

    private static String reported(Class<?> stepClass, Object instance) {
        try {
            Object message = stepClass.getMethod("error").invoke(instance);
            String text = message == null ? "" : message.toString().trim();
            return text.isEmpty() ? "" : "\n  the step's error(): " + text;
        } catch (Exception broken) {
            return ""; // a broken error() must not hide what happened before
        }
    }

    private static String trace(Throwable error) {
        StringBuilder text = new StringBuilder(error.toString());
        StackTraceElement[] frames = error.getStackTrace();
        for (int i = 0; i < frames.length && i < 8; i++) {
            String frame = frames[i].toString();
            if (frame.startsWith("java.lang.reflect.") || frame.startsWith("sun.reflect.")
                    || frame.startsWith("jdk.internal.reflect."))
                break;
            text.append("\n    at ").append(frame);
        }
        for (Throwable cause = error.getCause(); cause != null && cause != error; cause = cause.getCause()) {
            text.append("\n  caused by ").append(cause);
            error = cause;
        }
        return text.toString();
    }

    // ------------------------------------------------------------------------------------------ tables
    /** Shows a table under its title: {@code Results} becomes ImageJ's Results table. */
    static void showTable(ResultsTable table, String title) {
        if ("Results".equals(title))
            ij.plugin.filter.Analyzer.setResultsTable(table);
        if (!GraphicsEnvironment.isHeadless())
            table.show(title);
    }

    static boolean isImage(Object value) {
        return value instanceof ImagePlus;
    }
}
