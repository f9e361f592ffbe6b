"""Fixtures of the bundle tests: an isolated cache and models folder, and real bundles written once."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from support.bundles import WrittenBundle, write_bundle_v0_3, write_bundle_v0_4, write_bundle_v0_5


@pytest.fixture(autouse=True)
def isolated_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own deepij cache and default models folder (never the user's)."""
    monkeypatch.setenv("DEEPIJ_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("DEEPIJ_MODELS_DIR", str(tmp_path / "models"))


@pytest.fixture(scope="session")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, WrittenBundle]:
    """One bundle of each version, written once per session. Tests that change files use ``bundle_copy``."""
    root = tmp_path_factory.mktemp("bundles")
    return {
        "0.3": write_bundle_v0_3(root / "v03"),
        "0.4": write_bundle_v0_4(root / "v04", weights=("torchscript", "onnx", "pytorch_state_dict")),
        "0.5": write_bundle_v0_5(root / "v05", weights=("torchscript", "pytorch_state_dict")),
    }


@pytest.fixture
def bundle_copy(written: dict[str, WrittenBundle], tmp_path: Path):
    """``bundle_copy("0.4")``: a private copy of a written bundle folder, free to be changed."""

    def copy(version: str) -> Path:
        target = tmp_path / f"copy_{version.replace('.', '')}"
        suffix = 0
        while target.exists():
            suffix += 1
            target = tmp_path / f"copy_{version.replace('.', '')}_{suffix}"
        shutil.copytree(written[version].folder, target)
        return target

    return copy


Mutation = Callable[[dict[str, Any]], None]


@pytest.fixture
def mutated(bundle_copy) -> Callable[[str, Mutation], Path]:
    """``mutated("0.5", change)``: a bundle copy whose descriptor data went through ``change``."""

    def make(version: str, change: Mutation) -> Path:
        folder = bundle_copy(version)
        descriptor = next(folder / n for n in ("rdf.yaml", "model.yaml") if (folder / n).is_file())
        data = yaml.safe_load(descriptor.read_text())
        change(data)
        descriptor.write_text(yaml.safe_dump(data, sort_keys=False))
        return descriptor

    return make
