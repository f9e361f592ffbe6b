import ij.IJ;
import ij.ImageJ;

import java.awt.AWTEvent;
import java.awt.Button;
import java.awt.Component;
import java.awt.Container;
import java.awt.Dialog;
import java.awt.Frame;
import java.awt.Label;
import java.awt.Point;
import java.awt.Rectangle;
import java.awt.Robot;
import java.awt.TextComponent;
import java.awt.Toolkit;
import java.awt.Window;
import java.awt.event.AWTEventListener;
import java.awt.event.InputEvent;
import java.awt.event.KeyEvent;
import java.awt.event.WindowEvent;
import java.awt.image.BufferedImage;
import java.io.File;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStreamWriter;
import java.io.Writer;
import java.nio.charset.StandardCharsets;

import javax.imageio.ImageIO;

/**
 * What a test does to a real ImageJ window under Xvfb, called from a macro with call("GuiProbe.method", ...):
 * it notes every dialog that opens (title and text, into a file), clicks buttons with java.awt.Robot like a
 * user, presses Esc in ImageJ's window, takes screenshots, and quits. Test code, not part of deepij.
 */
public class GuiProbe implements AWTEventListener {

    private static File notes;

    /** Notes every dialog opening from now on into {@code path} (one block per dialog). */
    public static String watch(String path) {
        notes = new File(path);
        Toolkit.getDefaultToolkit().addAWTEventListener(new GuiProbe(), AWTEvent.WINDOW_EVENT_MASK);
        return "watching";
    }

    public void eventDispatched(AWTEvent event) {
        if (event.getID() != WindowEvent.WINDOW_OPENED || !(event.getSource() instanceof Dialog))
            return;
        Dialog dialog = (Dialog) event.getSource();
        StringBuilder text = new StringBuilder("=== " + dialog.getTitle() + "\n");
        texts(dialog, text);
        append(text.toString());
    }

    private static void texts(Container container, StringBuilder out) {
        for (Component child : container.getComponents()) {
            if (child instanceof Label)
                out.append(((Label) child).getText()).append('\n');
            else if (child instanceof TextComponent)
                out.append(((TextComponent) child).getText()).append('\n');
            else if (child instanceof ij.gui.MultiLineLabel)
                out.append(multiLineText(child)).append('\n');
            if (child instanceof Container)
                texts((Container) child, out);
        }
    }

    /** A MultiLineLabel's text (its lines are package-private in ImageJ 1.53). */
    private static String multiLineText(Component label) {
        try {
            java.lang.reflect.Field lines = label.getClass().getDeclaredField("lines");
            lines.setAccessible(true);
            return String.join("\n", (String[]) lines.get(label));
        } catch (ReflectiveOperationException error) {
            return "(unreadable: " + error + ")";
        }
    }

    private static synchronized void append(String text) {
        if (notes == null)
            return;
        try (Writer out = new OutputStreamWriter(new FileOutputStream(notes, true), StandardCharsets.UTF_8)) {
            out.write(text);
        } catch (IOException error) {
            IJ.log("GuiProbe: " + error);
        }
    }

    /** Waits (up to 60 s) for a shown dialog titled {@code title}; "found" or "missing". */
    public static String awaitDialog(String title) {
        return dialog(title, 60000) != null ? "found" : "missing";
    }

    private static Dialog dialog(String title, long waitMs) {
        long end = System.currentTimeMillis() + waitMs;
        while (System.currentTimeMillis() < end) {
            for (Window window : Window.getWindows())
                if (window instanceof Dialog && window.isShowing() && title.equals(((Dialog) window).getTitle()))
                    return (Dialog) window;
            IJ.wait(50);
        }
        return null;
    }

    /** Clicks the button labelled {@code label} of the dialog titled {@code title} with the mouse (Robot). */
    public static String click(String title, String label) throws Exception {
        Dialog shown = dialog(title, 60000);
        if (shown == null)
            return "no dialog " + title;
        Button button = button(shown, label);
        if (button == null)
            return "no button " + label;
        Robot robot = new Robot();
        robot.setAutoDelay(40);
        // a click can come before the dialog takes input (layout, focus): again until it closes
        for (int tries = 0; tries < 60 && shown.isShowing(); tries++) {
            IJ.wait(300);
            Point at = button.getLocationOnScreen();
            Rectangle size = button.getBounds();
            robot.mouseMove(at.x + size.width / 2, at.y + size.height / 2);
            robot.mousePress(InputEvent.BUTTON1_DOWN_MASK);
            robot.mouseRelease(InputEvent.BUTTON1_DOWN_MASK);
            robot.waitForIdle();
            IJ.wait(200);
        }
        if (shown.isShowing())
            return "still showing (button at " + button.getLocationOnScreen() + " " + button.getSize()
                    + ", dialog " + shown.getBounds() + ", screen " + Toolkit.getDefaultToolkit().getScreenSize()
                    + ")";
        return "clicked";
    }

    /** Presses the button labelled {@code label} of the dialog titled {@code title} (its action event). */
    public static String press(String title, String label) {
        final Dialog shown = dialog(title, 60000);
        if (shown == null)
            return "no dialog " + title;
        final Button button = button(shown, label);
        if (button == null)
            return "no button " + label;
        IJ.wait(300); // as a person reads it first: the dialog is up and waiting for its answer
        java.awt.EventQueue.invokeLater(new Runnable() {
            public void run() {
                java.awt.event.ActionEvent pressed = new java.awt.event.ActionEvent(button,
                        java.awt.event.ActionEvent.ACTION_PERFORMED, button.getActionCommand());
                for (java.awt.event.ActionListener listener : button.getActionListeners())
                    listener.actionPerformed(pressed);
            }
        });
        return "pressed";
    }

    /** Chooses {@code item} in the dialog's first choice whose items include it, with the keyboard focus. */
    public static String choose(String title, String item) {
        Dialog shown = dialog(title, 60000);
        if (shown == null)
            return "no dialog " + title;
        java.awt.Choice choice = choice(shown, item);
        if (choice == null)
            return "no choice holding " + item;
        choice.select(item);
        choice.dispatchEvent(new java.awt.event.ItemEvent(choice, java.awt.event.ItemEvent.ITEM_STATE_CHANGED,
                item, java.awt.event.ItemEvent.SELECTED));
        return "chosen";
    }

    private static java.awt.Choice choice(Container container, String item) {
        for (Component child : container.getComponents()) {
            if (child instanceof java.awt.Choice) {
                java.awt.Choice choice = (java.awt.Choice) child;
                for (int i = 0; i < choice.getItemCount(); i++)
                    if (choice.getItem(i).equals(item))
                        return choice;
            }
            if (child instanceof Container) {
                java.awt.Choice found = choice((Container) child, item);
                if (found != null)
                    return found;
            }
        }
        return null;
    }

    private static Button button(Container container, String label) {
        for (Component child : container.getComponents()) {
            if (child instanceof Button && label.equals(((Button) child).getLabel().trim()))
                return (Button) child;
            if (child instanceof Container) {
                Button found = button((Container) child, label);
                if (found != null)
                    return found;
            }
        }
        return null;
    }

    /** Runs a menu command the way the menu does (its own thread), and returns at once. */
    public static String menu(String command) {
        IJ.doCommand(command);
        return "started";
    }

    /** Presses Esc in ImageJ's window, as a user does to stop a command. */
    public static String escape() {
        ImageJ ij = IJ.getInstance();
        if (ij == null)
            return "no ImageJ window";
        ij.dispatchEvent(new KeyEvent(ij, KeyEvent.KEY_PRESSED, System.currentTimeMillis(), 0,
                KeyEvent.VK_ESCAPE, KeyEvent.CHAR_UNDEFINED));
        return "pressed";
    }

    /** Saves the whole screen as a PNG. */
    public static String screenshot(String path) throws Exception {
        Rectangle screen = new Rectangle(Toolkit.getDefaultToolkit().getScreenSize());
        BufferedImage shot = new Robot().createScreenCapture(screen);
        ImageIO.write(shot, "png", new File(path));
        return "saved";
    }

    /** Saves the region of the window titled {@code title} (a dialog or a frame) as a PNG. */
    public static String screenshotWindow(String title, String path) throws Exception {
        for (Window window : Window.getWindows()) {
            String shown = window instanceof Dialog ? ((Dialog) window).getTitle()
                    : window instanceof Frame ? ((Frame) window).getTitle() : null;
            if (window.isShowing() && title.equals(shown)) {
                IJ.wait(300);
                Rectangle bounds = new Rectangle(window.getLocationOnScreen(), window.getSize());
                ImageIO.write(new Robot().createScreenCapture(bounds), "png", new File(path));
                return "saved";
            }
        }
        return "no window " + title;
    }

    /**
     * From now on, a dialog titled {@code title} that opens gets its {@code button} pressed (the button's
     * action, as a click gives it), as a user answers a message box; what it said is noted ({@link #watch}).
     */
    public static String answer(final String title, final String button) {
        Toolkit.getDefaultToolkit().addAWTEventListener(new AWTEventListener() {
            public void eventDispatched(AWTEvent event) {
                if (event.getID() != WindowEvent.WINDOW_OPENED || !(event.getSource() instanceof Dialog))
                    return;
                if (!title.equals(((Dialog) event.getSource()).getTitle()))
                    return;
                new Thread(new Runnable() {
                    public void run() {
                        try {
                            append("answer " + title + ": " + press(title, button) + "\n");
                        } catch (Exception error) {
                            append("GuiProbe.answer: " + error + "\n");
                        }
                    }
                }, "GuiProbe answer").start();
            }
        }, AWTEvent.WINDOW_EVENT_MASK);
        return "answering";
    }

    /** Presses Esc in ImageJ's window once the file {@code trigger} exists (a test's handshake). */
    public static String escapeWhen(final String trigger) {
        new Thread(new Runnable() {
            public void run() {
                while (!new File(trigger).exists())
                    IJ.wait(20);
                escape();
            }
        }, "GuiProbe escape").start();
        return "armed";
    }

    /** What the macro recorder has recorded so far. */
    public static String recorderText() {
        ij.plugin.frame.Recorder recorder = ij.plugin.frame.Recorder.getInstance();
        return recorder == null ? "" : recorder.getText();
    }

    /**
     * Opens a menu of ImageJ's menu bar and one of its submenus with the mouse (Robot), for a screenshot:
     * the menu bar item is found from the width of the labels before it in the menu font.
     */
    public static String openMenu(String menu, String submenu) throws Exception {
        ImageJ ij = IJ.getInstance();
        java.awt.MenuBar bar = ij.getMenuBar();
        java.awt.FontMetrics metrics = ij.getFontMetrics(bar.getFont() != null ? bar.getFont()
                : new java.awt.Font("Dialog", java.awt.Font.PLAIN, 12));
        java.awt.Insets insets = ij.getInsets();
        Point frame = ij.getLocationOnScreen();
        int x = frame.x + insets.left;
        int index = -1;
        for (int i = 0; i < bar.getMenuCount(); i++) {
            String label = bar.getMenu(i).getLabel();
            int width = metrics.stringWidth(label) + 20;
            if (label.equals(menu)) {
                x += width / 2;
                index = i;
                break;
            }
            x += width;
        }
        if (index < 0)
            return "no menu " + menu;
        Robot robot = new Robot();
        robot.setAutoDelay(60);
        // on X11 the frame's top inset holds the menu bar (under a window manager's title bar, if any)
        int y = frame.y + Math.max(insets.top - (metrics.getHeight() + 8) / 2, 6);
        robot.mouseMove(x, y);
        robot.mousePress(InputEvent.BUTTON1_DOWN_MASK);
        robot.mouseRelease(InputEvent.BUTTON1_DOWN_MASK);
        robot.waitForIdle();
        IJ.wait(500);
        java.awt.Menu opened = bar.getMenu(index);
        // the popup's rows: the font's height plus a margin, separators half as tall (XToolkit's menus)
        int pitch = metrics.getHeight() + 4;
        int top = frame.y + insets.top;
        double rows = -1;
        for (int i = 0, separators = 0; i < opened.getItemCount(); i++) {
            if (opened.getItem(i).getLabel().equals("-"))
                separators++;
            else if (opened.getItem(i).getLabel().equals(submenu))
                rows = i - separators + 0.5 + separators / 2.0;
        }
        if (rows < 0)
            return "no submenu " + submenu;
        robot.mouseMove(x, top + (int) (rows * pitch));
        robot.mousePress(InputEvent.BUTTON1_DOWN_MASK);
        robot.mouseRelease(InputEvent.BUTTON1_DOWN_MASK);
        IJ.wait(800);
        return "opened";
    }

    /** Closes open menus: a click on the empty screen below ImageJ's windows. */
    public static String closeMenu() throws Exception {
        java.awt.Dimension screen = Toolkit.getDefaultToolkit().getScreenSize();
        Robot robot = new Robot();
        robot.mouseMove(5, screen.height - 5);
        robot.mousePress(InputEvent.BUTTON1_DOWN_MASK);
        robot.mouseRelease(InputEvent.BUTTON1_DOWN_MASK);
        IJ.wait(300);
        return "closed";
    }

    /** The labels of a submenu of ImageJ's menu bar ({@code "Plugins"}, {@code "deepij"}), joined by "|". */
    public static String menuItems(String menu, String submenu) {
        java.awt.MenuBar bar = IJ.getInstance().getMenuBar();
        for (int i = 0; i < bar.getMenuCount(); i++) {
            if (!bar.getMenu(i).getLabel().equals(menu))
                continue;
            java.awt.Menu top = bar.getMenu(i);
            for (int j = 0; j < top.getItemCount(); j++) {
                if (top.getItem(j) instanceof java.awt.Menu && top.getItem(j).getLabel().equals(submenu)) {
                    java.awt.Menu found = (java.awt.Menu) top.getItem(j);
                    StringBuilder labels = new StringBuilder();
                    for (int k = 0; k < found.getItemCount(); k++)
                        labels.append(k > 0 ? "|" : "").append(found.getItem(k).getLabel());
                    return labels.toString();
                }
            }
            return "no submenu " + submenu;
        }
        return "no menu " + menu;
    }

    /** The items of every choice of the shown dialog titled {@code title}, joined by "|". */
    public static String items(String title) {
        Dialog shown = dialog(title, 60000);
        if (shown == null)
            return "no dialog " + title;
        StringBuilder out = new StringBuilder();
        items(shown, out);
        return out.toString();
    }

    private static void items(Container container, StringBuilder out) {
        for (Component child : container.getComponents()) {
            if (child instanceof java.awt.Choice) {
                java.awt.Choice choice = (java.awt.Choice) child;
                for (int i = 0; i < choice.getItemCount(); i++)
                    out.append(out.length() > 0 ? "|" : "").append(choice.getItem(i));
            }
            if (child instanceof Container)
                items((Container) child, out);
        }
    }

    /** Closes ImageJ's main window as its close box does (the window manager's close request). */
    public static String closeImageJ() {
        final ImageJ ij = IJ.getInstance();
        if (ij == null)
            return "no ImageJ window";
        java.awt.EventQueue.invokeLater(new Runnable() {
            public void run() {
                ij.dispatchEvent(new WindowEvent(ij, WindowEvent.WINDOW_CLOSING));
            }
        });
        return "closing";
    }

    /** Ends ImageJ at once (no "save changes?" questions). */
    public static String exit() {
        System.exit(0);
        return "";
    }
}
