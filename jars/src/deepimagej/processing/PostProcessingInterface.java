package deepimagej.processing;

import java.util.ArrayList;
import java.util.HashMap;

/**
 * A bundle's Java post-processing step, with the package, name and method signatures of deepImageJ's own
 * interface, so that a step compiled against deepImageJ links against this one unchanged.
 *
 * <p>deepij creates the class with its no-argument constructor, hands it the configuration files, runs it
 * once on the model's outputs, then asks for an error message.
 */
public interface PostProcessingInterface {

    /** Kept for source and binary compatibility: deepImageJ declares this constant, some steps read it. */
    String configFile = "";

    /**
     * Turns the model's outputs into the results the user sees.
     *
     * @param map output name to its value: an {@code ij.ImagePlus} for an image, an
     *            {@code ij.measure.ResultsTable} for a table
     * @return the results by name (images and tables); they need not keep the model's names
     */
    HashMap<String, Object> deepimagejPostprocessing(HashMap<String, Object> map);

    /**
     * Receives the absolute paths of the files the bundle lists for its weights ({@code attachments.files}),
     * before {@link #deepimagejPostprocessing} runs.
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
