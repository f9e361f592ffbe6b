// ----------------------------------------------------------------------------------------------
// deepij demo bundle (nuclei U-Net): post-processing.
// Operation: nuclei from the network's probability image, one label each, and measures of them:
//            threshold the probability, split touching nuclei with ImageJ's watershed, then
//            Analyze Particles gives the labels image ("Count Masks", one grey value per nucleus)
//            and the Results table (area, mean probability and centroid of each nucleus).
// Input: the current image, the probability (32-bit, 0 to 1, one slice).
// Output: the image "labels" (16-bit, current) and the Results table; the probability stays open.
// ----------------------------------------------------------------------------------------------

// Edit these values as desired.
threshold = 0.5;   // probability above which a pixel belongs to a nucleus
minimum_size = 30; // pixels; smaller specks are noise (the smallest nucleus drawn covers about 70)

probability = getTitle();
run("Duplicate...", "title=nuclei_mask");
setThreshold(threshold, 1e30);
setOption("BlackBackground", true);
run("Convert to Mask");
run("Watershed");

// measure on the probability image: "Mean" is the mean probability inside each nucleus
run("Set Measurements...", "area mean centroid redirect=[" + probability + "] decimal=3");
run("Analyze Particles...", "size=" + minimum_size + "-Infinity pixel show=[Count Masks] display clear");
selectImage("Count Masks of nuclei_mask");
rename("labels");
close("nuclei_mask");
selectImage("labels");
print("nuclei found: " + nResults);
