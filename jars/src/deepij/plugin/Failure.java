package deepij.plugin;

/**
 * Why a deepij command stopped: the worker's message (a bad option, a missing model, a failing step), a
 * worker that ended, or a cancel (Esc). {@link Commands#stop} shows it the ImageJ way and stops the macro.
 */
public final class Failure extends RuntimeException {

    private static final long serialVersionUID = 1L;
    private final boolean cancelled;

    public Failure(String message) {
        this(message, false);
    }

    public Failure(String message, boolean cancelled) {
        super(message);
        this.cancelled = cancelled;
    }

    /** Whether the user cancelled (Esc), rather than something failing. */
    public boolean cancelled() {
        return cancelled;
    }
}
