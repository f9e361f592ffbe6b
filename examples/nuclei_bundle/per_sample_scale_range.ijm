// ----------------------------------------------------------------------------------------------
// deepij demo bundle (nuclei U-Net): pre-processing.
// Operation: bioimage.io "scale_range", per sample, over the axes y and x (every slice together):
//            output = (input - p_low) / (p_high - p_low), no clipping, as a 32-bit image, with
//            p_low the 1st and p_high the 99.8th percentile of the image's intensities.
// The percentiles come from a 256-bin histogram, found the way deepImageJ's own
// per_sample_scale_range.ijm finds them: the start of the first bin (after bin 0) whose cumulative
// count reaches min_percentile, then the start of the first later bin that reaches max_percentile.
// That is about 2e-3 of the intensity range off the exact percentiles (the network was trained on
// exactly this normalisation; the rdf.yaml's scale_range op gives the exact one to the zoo's tools).
// Input: the current image, any bit depth, one channel. Output: the same image, normalised in place.
// ----------------------------------------------------------------------------------------------

// Edit these values as desired.
min_percentile = 0.01;
max_percentile = 0.998;
nBins = 256;

run("32-bit");
if (nSlices > 1)
	Stack.getStatistics(voxels, mean, stackMin, stackMax);
else
	getStatistics(voxels, mean, stackMin, stackMax);

// the histogram of the whole image, slice by slice over one common range
counts = newArray(nBins);
for (s = 1; s <= nSlices; s++) {
	setSlice(s);
	getHistogram(values, sliceCounts, nBins, stackMin, stackMax);
	for (i = 0; i < nBins; i++)
		counts[i] = counts[i] + sliceCounts[i];
}
cumulative = newArray(nBins);
cumulative[0] = counts[0] / voxels;
for (i = 1; i < nBins; i++)
	cumulative[i] = cumulative[i - 1] + counts[i] / voxels;

low = 1;
while (low < nBins - 1 && cumulative[low] < min_percentile)
	low++;
high = low + 1;
while (high < nBins - 1 && cumulative[high] < max_percentile)
	high++;
binWidth = (stackMax - stackMin) / nBins;
p_low = stackMin + low * binWidth;
p_high = stackMin + high * binWidth;
print("Percentile normalisation: " + (100 * min_percentile) + " % = " + p_low + ", "
	+ (100 * max_percentile) + " % = " + p_high);

// d2s with 9 decimals: ImageJ would write a plain number with 4, losing precision
range = p_high - p_low + 1e-20; // epsilon against a flat image
run("Subtract...", "value=" + d2s(p_low, 9) + " stack");
run("Divide...", "value=" + d2s(range, 9) + " stack");
setSlice(1);
