"""Trust the results: reproduce a bundle on its own test data (``deepij test``), measure outputs against a
reference (``deepij validate``), and package a trained network as a bundle (``deepij build``).

Built on :mod:`deepij.pipeline`; nothing below imports this package.
"""
