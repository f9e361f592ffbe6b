"""Fixtures shared by every test folder, and the Hypothesis profiles.

Property tests (Hypothesis) run under one of two profiles, chosen by ``$HYPOTHESIS_PROFILE``:

- ``deterministic`` (the default: ``make test``, CI): the same examples on every run and every machine
  (``derandomize``), a fixed number of them, and no example database, so a local ``.hypothesis`` folder can
  change nothing. A failure found here, or by fuzzing, is kept as an explicit case (``@example`` or a plain
  test) beside the property.
- ``fuzz`` (``make fuzz``): random examples, many more of them, and the local database, so that a failure
  found is replayed first next time. ``make fuzz`` runs only the property tests (marked ``property`` here).

A test's own ``@settings(max_examples=...)`` wins over the profile's count; the other settings come from it.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import is_hypothesis_test, settings

settings.register_profile(
    "deterministic", derandomize=True, max_examples=60, database=None, deadline=None, print_blob=True
)
settings.register_profile("fuzz", derandomize=False, max_examples=1000, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "property: a Hypothesis property test (make fuzz runs these)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if is_hypothesis_test(getattr(item, "obj", None)):
            item.add_marker(pytest.mark.property)

ASSUMED_FREE_MEMORY = "8GiB"
"""What every test plans with as the machine's free RAM ($DEEPIJ_MEMORY_AVAILABLE, inherited by the
subprocesses tests start): tile plans must not depend on what this machine has free at the moment (one
expected a single 2048 pass and got 1040 tiles on a busy machine)."""


@pytest.fixture(autouse=True)
def assumed_free_memory(monkeypatch):
    monkeypatch.setenv("DEEPIJ_MEMORY_AVAILABLE", ASSUMED_FREE_MEMORY)
    return ASSUMED_FREE_MEMORY


@pytest.fixture(scope="session")
def imagej_session():
    """The process's one ImageJ session (real ImageJ 1.x, under a private Xvfb when there is no display).

    Started once per pytest process: a JVM cannot restart, so every test folder shares it. Each macro run
    starts from a clean ImageJ state, so tests do not leak into each other through it.
    """
    import deepij

    return deepij.imagej()


@pytest.fixture(scope="session")
def tiny_stardist(tmp_path_factory):
    """A StarDist2D trained here with the stardist package (about 15-30 s on 2 cores, once per session; see
    support.stardist_bundles) and a test image it was not trained on."""
    pytest.importorskip("stardist")
    pytest.importorskip("tensorflow")
    from support.stardist_bundles import blob_image, train_tiny_stardist

    model = train_tiny_stardist(tmp_path_factory.mktemp("stardist_model"))
    image, _ = blob_image(128, objects=20, seed=99)
    return model, image
