"""Model bundles: the normalized description, readers for descriptor 0.3 / 0.4 / 0.5, archives, install,
lookup by name, checks. Imports neither ``deepij.imagej`` nor ``deepij.inference``."""
