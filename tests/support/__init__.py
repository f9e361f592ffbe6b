"""Helpers the tests share: writers of small real models and bundles, local servers."""
