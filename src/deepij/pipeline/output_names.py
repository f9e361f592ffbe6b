"""File names for outputs: the one rule that turns input file names, output names and ImageJ titles into file
names that are unique within a run and the same on every run with the same inputs.

:func:`unique_stems` is that rule; ``deepij run`` (the prefix of each image's outputs, and the outputs of one
image), ``Prediction.save`` and ``deepij macro --output`` (the titles a macro leaves) all use it:

1. each name is cleaned: characters a file name cannot safely hold (``/ : # * ? " < > |``...) become ``_``,
   leading and trailing dots and spaces go, and a known extension is dropped (``a.tif`` -> ``a``);
2. names that still agree (compared without case: a folder on macOS or Windows would make ``A`` and ``a``
   one file) keep their extension instead (``a.tif``, ``a.png`` -> ``a_tif``, ``a_png``);
3. names that agree even so (``well#1.tif`` and ``well_1.tif``; ``a/b`` and ``a:b``; ``a.tif`` next to
   ``a.png`` and ``a_tif.npy``) get a short hash of their original name (``well_1-2fc55124``), which depends
   on nothing else;
4. if two still agree (a name made to look like another's hash), the run is refused, naming both.

No rule depends on the order names come in or on the files already in the output folder, so a run and its
``--resume`` agree on every name. :func:`claim_names` then takes each image's names as its outputs are
written (in input order, :mod:`deepij.pipeline.batch`): a name another image took, or a run's input in the
output folder (:func:`protected_inputs`), fails that image before anything is written.

Examples
--------
>>> unique_stems(["a.tif", "a.png", "b.ome.tif"], extensions=(".tif", ".png", ".ome.tif"))
{'a.tif': 'a_tif', 'a.png': 'a_png', 'b.ome.tif': 'b'}
>>> unique_stems(["a/b", "a:b", "res"])
{'a/b': 'a_b-c14cddc0', 'a:b': 'a_b-6783a31e', 'res': 'res'}
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from deepij.errors import ArgumentError

_UNSAFE = re.compile(r"[^\w.\- ()+,=]+")
_LONGEST = 150
"""Bytes a cleaned name keeps (file names hold 255; prefixes and suffixes are added to it)."""


def clean_name(text: str, fallback: str = "output") -> str:
    """``text`` as a file name: unsafe characters as ``_``, no leading or trailing dots or spaces, at most
    150 bytes (a longer one is cut and ends in a hash of the whole), ``fallback`` when nothing is left.

    Examples
    --------
    >>> clean_name("my model/output: 1"), clean_name(".."), clean_name("../../etc/passwd")
    ('my model_output_ 1', 'output', '_.._etc_passwd')
    """
    cleaned = _UNSAFE.sub("_", str(text)).strip(" .") or fallback
    if len(cleaned.encode("utf-8")) > _LONGEST:
        cut = cleaned.encode("utf-8")[: _LONGEST - 9].decode("utf-8", "ignore").rstrip(" .")
        cleaned = f"{cut}-{_short_hash(text)}"
    return cleaned


def without_extension(name: str, extensions: Sequence[str]) -> str:
    """``name`` without the longest of ``extensions`` it ends with (case-insensitive).

    Examples
    --------
    >>> without_extension("cells.OME.TIF", (".tif", ".ome.tif")), without_extension("notes", (".tif",))
    ('cells', 'notes')
    """
    lowered = name.lower()
    for extension in sorted(extensions, key=len, reverse=True):
        if extension and lowered.endswith(extension.lower()) and len(name) > len(extension):
            return name[: -len(extension)]
    return name


def unique_stems(
    names: Iterable[str], *, extensions: Sequence[str] = (), fallback: str = "output"
) -> dict[str, str]:
    """Distinct ``names`` -> file name stems, unique without regard to case (module notes: the rule).

    Parameters
    ----------
    names : iterable of str
        The original names (file names, output names, ImageJ titles); each is given once.
    extensions : sequence of str
        Extensions dropped from a name when that leaves it unique (``(".tif", ".png")``).
    fallback : str
        The stem of a name with nothing usable in it.

    Raises
    ------
    ArgumentError
        A name given twice, or two names no rule separates.

    Examples
    --------
    >>> unique_stems(["a.tif", "a.png", "a_tif.npy"], extensions=(".tif", ".png", ".npy"))
    {'a.tif': 'a-ed4cf50d', 'a.png': 'a_png', 'a_tif.npy': 'a_tif-7ecbbf35'}
    >>> unique_stems(["well#1.tif", "well_1.tif"], extensions=(".tif",))
    {'well#1.tif': 'well_1-2fc55124', 'well_1.tif': 'well_1-27c6c0c8'}
    """
    originals = list(names)
    repeated = sorted({n for n in originals if originals.count(n) > 1})
    if repeated:
        raise ArgumentError(f"names: {repeated[0]!r} is given more than once (expected distinct names)")

    def base(name: str) -> str:
        return clean_name(without_extension(name, extensions), fallback)

    stems = {n: base(n) for n in originals}
    stems = _resolve(stems, lambda n: clean_name(n.replace(".", "_"), fallback))
    stems = _resolve(stems, lambda n: f"{base(n)}-{_short_hash(n)}")
    clash = _clashes(stems)
    if clash:
        first, second = sorted(clash[0])[:2]
        raise ArgumentError(
            f"names: {first!r} and {second!r} would both be written as {stems[first]!r} (expected names "
            "that differ in more than case and characters a file name cannot hold); rename one of them"
        )
    return stems


def _resolve(stems: dict[str, str], rename: Callable[[str], str]) -> dict[str, str]:
    """``stems`` with every name whose stem another name shares renamed by ``rename``."""
    renamed = dict(stems)
    for group in _clashes(stems):
        for name in group:
            renamed[name] = rename(name)
    return renamed


def _clashes(stems: dict[str, str]) -> list[list[str]]:
    groups: dict[str, list[str]] = {}
    for name, stem in stems.items():
        groups.setdefault(stem.casefold(), []).append(name)
    return [group for group in groups.values() if len(group) > 1]


def _short_hash(text: str) -> str:
    return hashlib.sha256(str(text).encode("utf-8")).hexdigest()[:8]


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path.absolute()


def claim_names(
    names: Sequence[str],
    source: Path,
    folder: Path,
    protected: frozenset[str],
    claimed: dict[str, Path] | None,
) -> None:
    """Take the file names ``source``'s outputs will have in ``folder``, before anything is written.

    Parameters
    ----------
    names : sequence of str
        The file names.
    source : Path
        The image they are the outputs of.
    folder : Path
        The output folder.
    protected : frozenset of str
        Case-folded names no output may have: the run's inputs in ``folder``.
    claimed : dict, optional
        Case-folded names other images of this run took, by image; ``names`` are added.

    Raises
    ------
    ArgumentError
        A name is a protected input's or another image's (compared without case).
    """
    for name in names:
        key = name.casefold()
        if key in protected:
            raise ArgumentError(
                f"output: {name!r} would replace the input file of that name in {str(folder)!r} "
                "(expected outputs that replace no input): choose another output folder"
            )
        owner = claimed.get(key) if claimed is not None else None
        if owner is not None and owner != source:
            raise ArgumentError(
                f"output: {name!r} is already an output of {owner.name!r} in this run (expected names unique "
                "in the run): rename one of the two images"
            )
    if claimed is not None:
        claimed.update({name.casefold(): source for name in names})


def protected_inputs(files: Sequence[Path], folder: Path) -> frozenset[str]:
    """Case-folded names of the ``files`` that lie in ``folder`` (no output may replace them)."""
    here = _resolved(folder)
    return frozenset(f.name.casefold() for f in files if _resolved(f.parent) == here)
