"""Pre- and post-processing: the bioimage.io spec ops in numpy, chained with ImageJ macro and Java steps."""
