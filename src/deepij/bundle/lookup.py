"""Find an installed bundle by name, the way deepImageJ's ``model=`` argument does."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from deepij.bundle._arguments import require_text
from deepij.bundle._yaml import load_yaml_file
from deepij.bundle.locations import find_descriptor, models_dir_from
from deepij.bundle.readers.common import strip_quotes
from deepij.errors import BundleError, ModelNotFoundError


@dataclass(frozen=True)
class InstalledModel:
    """A bundle folder in a models folder, with the name its descriptor gives (None if unreadable)."""

    folder: Path
    name: str | None


def installed_models(models_dir: str | Path | None = None) -> list[InstalledModel]:
    """The bundle folders of a models folder, sorted by folder name.

    Folders whose descriptor cannot be read are listed with ``name=None`` (loading them says why).

    Examples
    --------
    >>> import tempfile
    >>> from deepij.bundle import install
    >>> models = install("examples/nuclei_bundle", models_dir=tempfile.mkdtemp()).parent
    >>> [(m.folder.name, m.name) for m in installed_models(models)]
    [('nuclei_bundle', 'deepij demo nuclei U-Net')]
    """
    folder = models_dir_from(models_dir)
    if not folder.is_dir():
        return []
    found = []
    for child in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            descriptor = find_descriptor(child)
        except BundleError:
            continue
        found.append(InstalledModel(child, _descriptor_name(descriptor)))
    return found


def _descriptor_name(descriptor: Path) -> str | None:
    try:
        data = load_yaml_file(descriptor)
    except BundleError:
        return None
    name = data.get("name") if isinstance(data, dict) else None
    return strip_quotes(str(name)) if isinstance(name, (str, int, float)) and str(name).strip() else None


def find_model(name: str, models_dir: str | Path | None = None) -> Path:
    """The folder of the installed bundle called ``name``.

    Matches the descriptor's ``name`` (quotes stripped) first, then the folder name, exactly; when neither
    matches, the same ignoring case and surrounding spaces.

    Parameters
    ----------
    name : str
        As in a macro's ``model=[...]``.
    models_dir : str or Path, optional
        Default ``$DEEPIJ_MODELS_DIR`` or ``~/.deepij/models``; an ImageJ/Fiji folder means its ``models/``.

    Returns
    -------
    Path
        The bundle folder (give it to :func:`deepij.load`).

    Raises
    ------
    ModelNotFoundError
        No match (the message lists the installed models), or several (it lists the candidates).

    Examples
    --------
    >>> import tempfile
    >>> from deepij.bundle import install
    >>> models = install("examples/nuclei_bundle", models_dir=tempfile.mkdtemp()).parent
    >>> find_model("deepij demo nuclei U-Net", models_dir=models) == models / "nuclei_bundle"
    True
    >>> find_model("DEEPIJ DEMO NUCLEI U-NET", models_dir=models).name  # then ignoring case
    'nuclei_bundle'
    """
    require_text(name, "name")
    wanted = strip_quotes(name)
    models = installed_models(models_dir)
    for normalize in (lambda s: s, lambda s: s.strip().casefold()):
        key = normalize(wanted)
        for attribute in ("name", "folder"):
            matches = [
                m
                for m in models
                if _label(m, attribute) is not None and normalize(_label(m, attribute)) == key
            ]
            if len(matches) == 1:
                return matches[0].folder
            if matches:
                listing = "; ".join(f"{m.folder}" for m in matches)
                raise ModelNotFoundError(
                    f"{len(matches)} installed models are called {wanted!r}: {listing}. "
                    "Give the folder name or path instead."
                )
    folder = models_dir_from(models_dir)
    available = ", ".join(repr(m.name or m.folder.name) for m in models) or "none"
    raise ModelNotFoundError(f"no model called {wanted!r} in {folder} (installed: {available})")


def _label(model: InstalledModel, attribute: str) -> str | None:
    return model.name if attribute == "name" else model.folder.name
