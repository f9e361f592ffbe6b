"""What a folder run reports: one :class:`ImageOutcome` per image, the :class:`BatchReport` of them all
(a summary table for people, a pandas table, the exit status), and the progress bar shown meanwhile."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Status = Literal["done", "already done", "failed"]


@dataclass
class ImageOutcome:
    """What happened to one image of a batch."""

    source: Path
    status: Status
    seconds: float = 0.0
    outputs: list[Path] = field(default_factory=list)
    error: str | None = None
    exception: BaseException | None = field(default=None, repr=False)
    note: str | None = None
    """Why the image ran again although a record of it was there (``resume=True``)."""


@dataclass
class BatchReport:
    """What :func:`run_batch` did, image by image.

    Attributes
    ----------
    outcomes : list of ImageOutcome
        One per input image, in order.
    output : Path
        The output folder.
    """

    outcomes: list[ImageOutcome]
    output: Path

    @property
    def failed(self) -> list[ImageOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def exit_code(self) -> int:
        """0 when every image is done, 1 when some failed (the command's exit status)."""
        return 1 if self.failed else 0

    def table(self) -> Any:
        """The outcomes as a pandas DataFrame (image, status, seconds, outputs, error, note)."""
        import pandas as pd

        return pd.DataFrame(
            {
                "image": [o.source.name for o in self.outcomes],
                "status": [o.status for o in self.outcomes],
                "seconds": [round(o.seconds, 3) for o in self.outcomes],
                "outputs": [" ".join(p.name for p in o.outputs) for o in self.outcomes],
                "error": [o.error or "" for o in self.outcomes],
                "note": [o.note or "" for o in self.outcomes],
            }
        )

    def summary(self) -> str:
        """A table for people: one line per image, then the counts."""
        rows = [("image", "status", "seconds", "outputs / error")]
        for o in self.outcomes:
            detail = o.error.splitlines()[0] if o.error else " ".join(p.name for p in o.outputs)
            if o.note:
                detail += f" (ran again: {o.note})"
            rows.append((o.source.name, o.status, f"{o.seconds:.2f}", detail or ""))
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = ["  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3] for r in rows]
        counts = {s: sum(o.status == s for o in self.outcomes) for s in ("done", "already done", "failed")}
        lines.append(
            f"{len(self.outcomes)} images: {counts['done']} done, {counts['already done']} already done, "
            f"{counts['failed']} failed"
        )
        return "\n".join(lines)


def tell(
    outcome: ImageOutcome,
    on_image: Callable[[ImageOutcome], None] | None,
    advance: Callable[[str, str], None],
) -> None:
    """Make an image's outcome known: to ``on_image`` and to the progress bar (:func:`progress_bar`)."""
    if on_image is not None:
        on_image(outcome)
    advance(outcome.source.name, outcome.status)


@contextlib.contextmanager
def progress_bar(total: int, show: bool | None) -> Iterator[Callable[[str, str], None]]:
    """``advance(name, status)`` for each image: a tqdm bar on a terminal, nothing otherwise."""
    if show is None:
        show = sys.stderr.isatty()
    if not show:
        yield lambda name, status: None
        return
    from tqdm import tqdm

    bar = tqdm(total=total, unit="image", file=sys.stderr, dynamic_ncols=True)
    failed = 0

    def advance(name: str, status: str) -> None:
        nonlocal failed
        failed += status == "failed"
        bar.set_postfix_str(f"{name}: {status}" + (f", {failed} failed" if failed else ""), refresh=False)
        bar.update(1)

    try:
        yield advance
    finally:
        bar.close()
