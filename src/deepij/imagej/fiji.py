"""A local Fiji.app through pyimagej, offline.

pyimagej builds the ImageJ2 gateway (``net.imagej.ImageJ``) with the legacy layer, so Fiji's plugins and
ImageJ 1.x are there; deepij's own API then works on that ImageJ 1.x exactly as on the embedded one.

Offline: pyimagej would resolve Maven endpoints when it starts the JVM itself (and importing it registers
``net.imglib2:imglib2-imglyb``). deepij therefore starts the JVM itself with the Fiji.app's jars on the class
path and imports pyimagej only afterwards; ``imagej.init`` then sees a running JVM and just creates the
gateway. pyimagej is never imported on the embedded (ij.jar) path.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from deepij.errors import ImageJError


def require_pyimagej() -> None:
    """Fail early, before any JVM starts, when pyimagej is missing."""
    if importlib.util.find_spec("imagej") is None:
        raise ImageJError(
            "fiji: starting a Fiji.app needs pyimagej, which is not installed "
            "(install it with `pip install 'deepij[fiji]'`, or leave fiji unset for the embedded ImageJ)"
        )


def jvm_options(fiji_dir: Path) -> list[str]:
    """Options that make ImageJ see the Fiji.app as its home (plugins, macros, luts)."""
    return [f"-Dplugins.dir={fiji_dir / 'plugins'}", f"-Dij.dir={fiji_dir}", f"-Dimagej.dir={fiji_dir}"]


def create_gateway(fiji_dir: Path, *, headless: bool) -> Any:
    """pyimagej's gateway on the already running JVM (see the module docstring)."""
    try:
        import imagej  # only now, on purpose: the JVM must already be running (see the module docstring)
    except Exception as error:
        raise ImageJError(f"fiji={str(fiji_dir)!r}: pyimagej could not be imported: {error}") from error
    try:
        gateway = imagej.init(str(fiji_dir), mode="headless" if headless else "interactive")
    except Exception as error:
        raise ImageJError(
            f"fiji={str(fiji_dir)!r}: pyimagej could not create the ImageJ2 gateway: {error}"
        ) from error
    check_gateway(gateway, where=f"fiji={str(fiji_dir)!r}")
    return gateway


def check_gateway(gateway: Any, *, where: str = "attach") -> None:
    """Check that ``gateway`` is a pyimagej/ImageJ2 gateway whose ImageJ 1.x (legacy) layer is active."""
    legacy = getattr(gateway, "legacy", None)
    if gateway is None or legacy is None or not hasattr(gateway, "getContext"):
        raise ImageJError(
            f"{where}: expected a pyimagej gateway (what imagej.init() returns), "
            f"found {type(gateway).__name__}"
        )
    service = legacy() if callable(legacy) else legacy
    if service is None or not bool(service.isActive()):
        raise ImageJError(
            f"{where}: the gateway's ImageJ 1.x layer is not active (expected imagej.init(..., "
            "add_legacy=True) with imagej-legacy on the class path); deepij runs ImageJ 1.x macros"
        )
