"""What ``deepij validate`` compares: pairs of (reference, test) images from arrays, files or folders.

- two arrays (numpy, xarray) or two files (TIFF, ``.npy``, any image ImageJ opens): one pair;
- two folders: the images of the reference folder, each paired with the test image of the same name
  (``test_suffix`` allows ``cells_output.tif`` for ``cells.tif``, as ``deepij run`` names its outputs);
  extensions may differ (``cells.tif`` against ``cells.npy``).

Images are read only when a pair is measured (:meth:`ImagePair.load`), so a folder of many large images
is compared one pair at a time. Singleton axes are dropped; what remains must be 2-D or 3-D.

Examples
--------
>>> import tempfile
>>> root = Path(tempfile.mkdtemp())
>>> for folder, name in [("truth", "cells_01.npy"), ("truth", "cells_02.npy"),
...                      ("predicted", "cells_01_output.npy"), ("predicted", "cells_02_output.npy")]:
...     (root / folder).mkdir(exist_ok=True)
...     np.save(root / folder / name, np.zeros((8, 8)))
>>> [p.name for p in image_pairs(root / "truth", root / "predicted", test_suffix="_output")]
['cells_01', 'cells_02']
>>> image_pairs(np.zeros((8, 8)), np.ones((8, 8)))[0].name
'image'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepij.errors import ArgumentError, ArgumentTypeError, InputError

PathLike = str | Path


@dataclass(frozen=True)
class ImagePair:
    """One reference image and the test image compared with it (files or arrays, read by :meth:`load`).

    Attributes
    ----------
    name : str
        The pair's name in the results: the reference file's name without extension, a named xarray's
        name, or ``"image"``.
    reference, test : Path or array
        A file to read, or the image itself.
    """

    name: str
    reference: Any
    test: Any

    @property
    def reference_label(self) -> str:
        """How the results name the reference: its file name (or xarray name), else ``"reference"``."""
        return _label(self.reference, "reference")

    @property
    def test_label(self) -> str:
        """How the results name the test image: its file name (or xarray name), else ``"test"``."""
        return _label(self.test, "test")

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        """Both images as arrays of the same 2-D or 3-D shape (singleton axes dropped).

        Raises
        ------
        InputError
            A file that cannot be read, an image that is not 2-D or 3-D, non-finite pixels, or shapes that
            differ (the message names both files).
        """
        reference = _read(self.reference, "reference")
        test = _read(self.test, "test")
        if reference.shape != test.shape:
            raise InputError(
                f"test: {_where(self.test, 'test')} has shape {test.shape}, the reference "
                f"{_where(self.reference, 'reference')} has {reference.shape} (expected the same shape)"
            )
        return reference, test

    def describe(self) -> str:
        """``reference 'X', test 'Y'`` for messages (``reference and test arrays`` for arrays)."""
        if not (_label(self.reference, "") or _label(self.test, "")):
            return "reference and test arrays"
        return f"reference {_where(self.reference, 'reference')}, test {_where(self.test, 'test')}"


def image_pairs(reference: Any, test: Any, *, test_suffix: str = "") -> list[ImagePair]:
    """The pairs to compare (see the module docstring), in the reference folder's name order.

    Raises
    ------
    ArgumentError
        A path that does not exist, a folder against a file, an empty folder, reference images without a
        test image of the same name (or test images without a reference), or two test files for one name.
    ArgumentTypeError
        Something that is neither a path nor an array.
    """
    if not isinstance(test_suffix, str):
        raise ArgumentTypeError(f"test_suffix: expected a str, found {type(test_suffix).__name__}")
    if _is_path(reference) or _is_path(test):
        reference_path = _existing(reference, "reference")
        test_path = _existing(test, "test")
        if reference_path.is_dir() != test_path.is_dir():
            kind = {True: "a folder", False: "a file"}
            raise ArgumentError(
                f"test: {str(test_path)!r} is {kind[test_path.is_dir()]} but the reference "
                f"{str(reference_path)!r} is {kind[reference_path.is_dir()]} "
                "(expected two files or two folders)"
            )
        if reference_path.is_dir():
            return _folder_pairs(reference_path, test_path, test_suffix)
        return [ImagePair(_stem(reference_path), reference_path, test_path)]
    reference_image, test_image = _array(reference, "reference"), _array(test, "test")
    return [ImagePair(_label(reference_image, "image"), reference_image, test_image)]


def _folder_pairs(reference: Path, test: Path, test_suffix: str) -> list[ImagePair]:
    references = _images_in(reference, "reference")
    tests = _images_in(test, "test")
    by_name: dict[str, list[Path]] = {}
    for path in tests:
        by_name.setdefault(_stem(path), []).append(path)
    pairs: list[ImagePair] = []
    missing: list[str] = []
    used: set[Path] = set()
    for path in references:
        wanted = _stem(path) + test_suffix
        found = by_name.get(wanted, [])
        if len(found) > 1:
            raise ArgumentError(
                f"test: folder {str(test)!r} holds {', '.join(p.name for p in found)} for reference "
                f"{path.name} (expected one test image named {wanted}.*)"
            )
        if not found:
            missing.append(path.name)
            continue
        pairs.append(ImagePair(_stem(path), path, found[0]))
        used.add(found[0])
    extra = [p.name for p in tests if p not in used]
    if missing or extra:
        problems = []
        if missing:
            suffix = f" + {test_suffix!r}" if test_suffix else ""
            problems.append(f"no test image in {str(test)!r} for {_listing(missing)} (looked for the same "
                            f"name{suffix}, any image extension)")
        if extra:
            problems.append(f"no reference image in {str(reference)!r} for {_listing(extra)}")
        raise ArgumentError("test: unmatched images: " + "; ".join(problems))
    return pairs


def _images_in(folder: Path, argument: str) -> list[Path]:
    from deepij.pipeline.batch import IMAGE_SUFFIXES

    files = sorted(
        (p for p in folder.iterdir()
         if p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(IMAGE_SUFFIXES)),
        key=lambda p: p.name,
    )
    if not files:
        raise ArgumentError(
            f"{argument}: folder {str(folder)!r} holds no image file (expected files ending in "
            f"{', '.join(IMAGE_SUFFIXES)})"
        )
    return files


def _listing(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".ome.tiff", ".ome.tif"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _is_path(value: Any) -> bool:
    return isinstance(value, str | Path)


def _existing(value: Any, argument: str) -> Path:
    if not _is_path(value):
        raise ArgumentTypeError(
            f"{argument}: expected a file or folder path like the other image, found {type(value).__name__}"
        )
    path = Path(value).expanduser()
    if not path.exists():
        raise ArgumentError(f"{argument}: {str(path)!r} does not exist (expected an image file or a folder)")
    return path


def _array(value: Any, argument: str) -> Any:
    if hasattr(value, "dims") and hasattr(value, "values"):
        return value
    if isinstance(value, np.ndarray | list | tuple):
        return np.asarray(value)
    raise ArgumentTypeError(
        f"{argument}: expected an image (numpy array, xarray, file or folder path), "
        f"found {type(value).__name__}"
    )


def _label(source: Any, default: str) -> str:
    """A file's name, a named xarray's name (an ImageJ image's title), else ``default``."""
    if isinstance(source, Path):
        return source.name
    name = getattr(source, "name", None)
    return name if isinstance(name, str) and name else default


def _where(source: Any, default: str) -> str:
    if isinstance(source, Path):
        return repr(str(source))
    name = _label(source, "")
    return f"image {name!r}" if name else f"({default} array)"


def _read(source: Any, argument: str) -> np.ndarray:
    if isinstance(source, Path):
        from deepij.pipeline.image_files import read_image_file

        values = np.asarray(read_image_file(source, session=_session).values)
    else:
        values = np.asarray(getattr(source, "values", source))
    if values.dtype == object or values.dtype.kind not in "biuf":
        raise InputError(f"{argument}: {_where(source, argument)} holds {values.dtype} values "
                         "(expected a real-valued image)")
    image = values.squeeze() if values.ndim > 2 else values
    if image.ndim not in (2, 3):
        raise InputError(
            f"{argument}: {_where(source, argument)} has shape {values.shape} (expected a 2-D image or a 3-D "
            "stack once axes of size 1 are dropped)"
        )
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        raise InputError(f"{argument}: {_where(source, argument)} holds NaN or infinite pixels "
                         "(expected finite values)")
    return image


def _session() -> Any:
    """ImageJ, for image formats only it reads (PNG, JPEG...)."""
    from deepij.imagej import imagej

    return imagej()


SCALE_RATIO = 10.0
"""Value ranges (maximum minus minimum) of a pair that differ by this factor or more get a note."""


def scale_mismatch(reference: np.ndarray, test: np.ndarray) -> tuple[str, str] | None:
    """When the two images' value ranges differ by :data:`SCALE_RATIO` or more: a short note for the table
    and the full one; else None.

    Examples
    --------
    >>> scale_mismatch(np.array([[0.0, 255.0]]), np.array([[0.0, 1.0]]))[0]
    'scales differ: reference 0..255, test 0..1'
    >>> scale_mismatch(np.array([[0.0, 1.0]]), np.array([[0.1, 0.9]])) is None
    True
    """
    spans = []
    for image in (reference, test):
        finite = np.asarray(image, dtype=np.float64)
        finite = finite[np.isfinite(finite)]
        spans.append((float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0))
    (r_low, r_high), (t_low, t_high) = spans
    r_span, t_span = r_high - r_low, t_high - t_low
    if r_span <= 0 or t_span <= 0 or max(r_span, t_span) / min(r_span, t_span) < SCALE_RATIO:
        return None
    ratio = max(r_span, t_span) / min(r_span, t_span)
    how = "more" if t_span > r_span else "less"
    short = f"scales differ: reference {r_low:.3g}..{r_high:.3g}, test {t_low:.3g}..{t_high:.3g}"
    full = (
        f"the reference's values span {r_low:.3g} to {r_high:.3g}, the test's {t_low:.3g} to {t_high:.3g} "
        f"({ratio:.3g} times {how}): the images are on different scales (e.g. 0..255 against 0..1), so the "
        "intensity metrics (SSIM, PSNR, RMSE...) measure the scale, not the model; rescale one of them "
        f"(the {'test' if how == 'more' else 'reference'} by about 1/{ratio:.3g}) and measure again"
    )
    return short, full
