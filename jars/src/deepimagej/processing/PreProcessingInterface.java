package deepimagej.processing;

import java.util.ArrayList;
import java.util.HashMap;

/**
 * A bundle's Java pre-processing step, with the package, name and method signatures of deepImageJ's own
 * interface, so that a step compiled against deepImageJ links against this one unchanged.
 *
 * <p>deepij creates the class with its no-argument constructor, hands it the configuration files, runs it
 * once, then asks for an error message.
 */
public interface PreProcessingInterface {

    /** Kept for source and binary compatibility: deepImageJ declares this constant, some steps read it. */
    String configFile = "";

    /**
     * Prepares the model's inputs.
     *
     * @param map tensor name to its value: an {@code ij.ImagePlus} for an image, an
     *            {@code ij.measure.ResultsTable} for a table
     * @return the model's inputs, by tensor name, in the same kinds of values
     */
    HashMap<String, Object> deepimagejPreprocessing(HashMap<String, Object> map);

    /**
     * Receives the absolute paths of the files the bundle lists for its weights ({@code attachments.files}),
     * before {@link #deepimagejPreprocessing} runs.
     *
     * @param files absolute file paths, possibly none
     */
    void setConfigFiles(ArrayList<String> files);

    /**
     * What went wrong in the last run.
     *
     * @return an empty string (or null) when the step succeeded, else a message for the user
     */
    String error();
}
