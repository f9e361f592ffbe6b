// Segment bright cells and measure them: the kind of macro a lab keeps and reuses.
// Input: the current image (any bit depth). Output: "mask" (8-bit, cells = 255) and the Results table.
setBatchMode(true);
original = getTitle();
run("Set Measurements...", "area mean centroid shape display redirect=None decimal=3");
run("Duplicate...", "title=smoothed");
run("Gaussian Blur...", "sigma=2 scaled=false");
setAutoThreshold("Otsu dark");
setOption("BlackBackground", true);
run("Convert to Mask");
run("Watershed");
rename("mask");
run("Set Measurements...", "area mean centroid shape display redirect=[" + original + "] decimal=3");
run("Analyze Particles...", "size=20-Infinity pixel display clear exclude");
print("cells found: " + nResults);
return "" + nResults;
