"""The one place that wires bundles, processing, inference and ImageJ together.

``deepij.load(bundle)`` gives a :class:`Model`; ``Model.predict`` runs pre-processing, tiled inference and
post-processing on an image.
"""

from __future__ import annotations

from pathlib import Path

from deepij.bundle.description import ModelDescription


class Model:
    """A bundle, read and ready to run. Loaded networks are kept and reused across calls.

    Parameters
    ----------
    description : ModelDescription
        The normalized description of the bundle.
    """

    def __init__(self, description: ModelDescription) -> None:
        self.description = description

    @property
    def name(self) -> str:
        return self.description.name

    def __repr__(self) -> str:
        return f"Model({self.description.name!r}, format_version={self.description.format_version!r})"


def load(source: str | Path, **options: object) -> Model:
    """Read a bundle (folder, descriptor file or zip) into a :class:`Model`.

    ``options`` are passed to :func:`deepij.bundle.open_bundle`.
    """
    from deepij.bundle import open_bundle

    return Model(open_bundle(source, **options))
