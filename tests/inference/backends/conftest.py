"""Real models for the backend tests, written once per test session (TensorFlow ones only when a TF test
runs: importing TF alone takes ~5 s)."""

from __future__ import annotations

import numpy as np
import pytest

from support import models


@pytest.fixture(autouse=True)
def graph_cache_dir(tmp_path_factory, monkeypatch):
    """Converted graphs and runtime choices go to a cache of this test session, never the user's."""
    folder = tmp_path_factory.getbasetemp() / "deepij-cache"
    monkeypatch.setenv("DEEPIJ_CACHE_DIR", str(folder))
    return folder


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("backend-models")


@pytest.fixture(scope="session")
def convnet(model_dir):
    """The same ConvNet (kernels 3, 5, 3) as TorchScript and ONNX, side by side in one folder."""
    folder = model_dir / "convnet"
    folder.mkdir()
    return (
        models.write_torchscript_convnet(folder / "convnet.pt"),
        models.write_onnx_convnet(folder / "convnet.onnx"),
    )


@pytest.fixture(scope="session")
def unet(model_dir):
    folder = model_dir / "unet"
    folder.mkdir()
    return models.write_torchscript_unet(folder / "unet.pt", base=8)


@pytest.fixture(scope="session")
def tf2_model(model_dir):
    return models.write_tf2_saved_model(model_dir / "tf2" / "saved_model")


@pytest.fixture(scope="session")
def tf1_model(model_dir):
    return models.write_tf1_saved_model(model_dir / "tf1" / "saved_model")


@pytest.fixture
def rng():
    return np.random.default_rng(42)
