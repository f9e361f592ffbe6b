"""Fixtures of the pipeline tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def stardist_bundles(tiny_stardist, tmp_path_factory):
    """The bundles StarDist's exporters write for the tiny StarDist2D (0.5 with a declared op, 0.4)."""
    from support.stardist_bundles import write_stardist_v0_4, write_stardist_v0_5

    model, image = tiny_stardist
    root = tmp_path_factory.mktemp("stardist_bundles")
    return write_stardist_v0_5(model, root / "v05", image), write_stardist_v0_4(model, root / "v04", image)
