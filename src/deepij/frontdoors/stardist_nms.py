"""StarDist's Fiji post-processing without Fiji, served in every macro deepij runs:
``run("Command From Macro", "command=[de.csbdresden.stardist.StarDist2DNMS], args=[...], process=[false]")``.

deepImageJ's StarDist bundles end their post-processing macro with this line (after splitting the network's
output into a probability image and a distance image): Fiji's StarDist plugin runs its non-maximum
suppression on the two images named in ``args`` and leaves

- the ROI Manager, emptied, then one polygon ROI per object kept, most probable first (``outputType``
  ``'ROI Manager'`` or ``'Both'``), named by ImageJ from its centre;
- a 16-bit image titled ``Label Image``, the objects drawn as labels 1, 2... in that order (the more probable
  on top where they overlap), the probability image's calibration, a label lookup table shown from 0 to the
  number of objects; it becomes the current image (``'Label Image'`` or ``'Both'``).

deepij does the same with the ``stardist`` package's own NMS
(:func:`~deepij.processing.instances.stardist_polygons`, the C code StarDist's Python package runs),
ImageJ's polygon filling for the labels (as the plugin draws them) and vertices kept to 0.01 pixel (as the
plugin keeps them). The ``args`` are the plugin's:

=================  ========================  ======================================================
key                default                   meaning
=================  ========================  ======================================================
``prob``           (required)                title of the probability image: 2-D, or a time-lapse
``dist``           (required)                title of the distances: a channel per ray (>= 3), same
                                             size (and frames)
``probThresh``     0.5                       candidates need a probability above it
``nmsThresh``      0.4                       overlap (intersection / smaller area) that suppresses
``outputType``     ``Both``                  ``Both``, ``Label Image``, ``ROI Manager``, ``Polygons``
                                             (nothing shown)
``excludeBoundary``  2                       pixels at each border where no candidate is taken
``roiPosition``    ``Stack``                 a time-lapse's ROIs on stack positions or hyperstack frames
``verbose``        false                     candidates and kept objects counted in the Log
=================  ========================  ======================================================

Keys are read as Fiji reads them (single or double quotes, bare numbers). The plugin's output keys
(``label``, ``polygons``) are accepted and ignored, as Fiji ignores them; any other key stops the macro with
an error naming it (Fiji would ignore it with a warning, and a misspelt threshold silently take its default).
When ``roiPosition`` is left out, ``Stack`` is used (Fiji's own default, ``Automatic``, is refused by this
plugin's checks). Other commands than ``StarDist2DNMS`` are refused, saying what to run instead.

Examples
--------
>>> parse_command_args("'prob':'scores', \\"dist\\":'distances', 'probThresh':0.7, 'verbose':'false'")
{'prob': 'scores', 'dist': 'distances', 'probThresh': '0.7', 'verbose': 'false'}
>>> nms_request(parse_command_args("'prob':'p', 'dist':'d', 'excludeBoundary':'3'")).exclude_boundary
3
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from deepij.errors import ArgumentError, InputError

if TYPE_CHECKING:
    from deepij.imagej.commands import CommandCall
    from deepij.imagej.session import Session

COMMAND = "Command From Macro"
NMS_CLASS = "de.csbdresden.stardist.StarDist2DNMS"
NMS_MENU_NAME = "StarDist 2D NMS (postprocessing only)"
LABEL_TITLE = "Label Image"
OUTPUT_TYPES = ("Both", "Label Image", "ROI Manager", "Polygons")
ROI_POSITIONS = ("Stack", "Hyperstack")
_INPUT_KEYS = (
    "prob", "dist", "probThresh", "nmsThresh", "outputType", "excludeBoundary", "roiPosition", "verbose"
)
_OUTPUT_KEYS = ("label", "polygons")
_MAX_LABEL = 65535
_ITEM = re.compile(
    r"""\s*(?:'(?P<k1>(?:[^'\\]|\\.)*)'|"(?P<k2>(?:[^"\\]|\\.)*)"|(?P<k3>[^:,'"]+?))\s*:\s*"""
    r"""(?:'(?P<v1>(?:[^'\\]|\\.)*)'|"(?P<v2>(?:[^"\\]|\\.)*)"|(?P<v3>[^,'"]*?))\s*(?:,|$)"""
)


def parse_command_args(text: str) -> dict[str, str]:
    """The ``args=[...]`` of Command From Macro (a JSON-like map, keys and values quoted with ``'`` or
    ``"``, or bare) as strings by key.

    Raises
    ------
    ArgumentError
        Text that is not such a map (the message quotes where reading stopped).
    """
    found: dict[str, str] = {}
    position = 0
    text = text.strip()
    while position < len(text):
        match = _ITEM.match(text, position)
        if match is None or match.end() == position:
            raise ArgumentError(
                f"{COMMAND}: args=[{text}]: cannot read {text[position:]!r}; expected 'key':'value' items "
                "separated by commas"
            )
        key = next(g for g in (match["k1"], match["k2"], match["k3"]) if g is not None)
        value = next((g for g in (match["v1"], match["v2"], match["v3"]) if g is not None), "")
        found[_unescaped(key.strip())] = _unescaped(value.strip())
        position = match.end()
    return found


def _unescaped(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


@dataclass(frozen=True)
class NmsRequest:
    """The checked ``args`` of one StarDist2DNMS call (defaults: Fiji's)."""

    prob: str
    dist: str
    prob_thresh: float = 0.5
    nms_thresh: float = 0.4
    output_type: str = "Both"
    exclude_boundary: int = 2
    roi_position: str = "Stack"
    verbose: bool = False


def nms_request(args: dict[str, str]) -> NmsRequest:
    """Check the ``args`` of a StarDist2DNMS call (see the module notes); ArgumentError names the key."""
    unknown = [k for k in args if k not in _INPUT_KEYS + _OUTPUT_KEYS]
    if unknown:
        raise ArgumentError(
            f"{COMMAND} {NMS_CLASS}: unknown argument {unknown[0]!r} in args=[...]; expected "
            f"{', '.join(repr(k) for k in _INPUT_KEYS)}"
        )
    for key in ("prob", "dist"):
        if not args.get(key):
            raise ArgumentError(
                f"{COMMAND} {NMS_CLASS}: args=[...] lacks {key!r} (the title of an open image)"
            )
    nms = _number(args, "nmsThresh", 0.4)
    if not 0.0 <= nms <= 1.0:
        raise ArgumentError(f"{COMMAND} {NMS_CLASS}: 'nmsThresh':'{args['nmsThresh']}'; expected 0 to 1")
    return NmsRequest(
        prob=args["prob"],
        dist=args["dist"],
        prob_thresh=_number(args, "probThresh", 0.5),
        nms_thresh=nms,
        output_type=_choice(args, "outputType", OUTPUT_TYPES, "Both"),
        exclude_boundary=_boundary(args),
        roi_position=_choice(args, "roiPosition", ROI_POSITIONS, "Stack"),
        verbose=_flag(args, "verbose"),
    )


def _number(args: dict[str, str], key: str, default: float) -> float:
    if key not in args:
        return default
    try:
        return float(args[key])
    except ValueError:
        raise ArgumentError(f"{COMMAND} {NMS_CLASS}: '{key}':'{args[key]}'; expected a number") from None


def _boundary(args: dict[str, str]) -> int:
    value = _number(args, "excludeBoundary", 2)
    if value != int(value) or value < 0:
        raise ArgumentError(
            f"{COMMAND} {NMS_CLASS}: 'excludeBoundary':'{args['excludeBoundary']}'; expected an integer >= 0"
        )
    return int(value)


def _choice(args: dict[str, str], key: str, choices: tuple[str, ...], default: str) -> str:
    value = args.get(key, default)
    if value not in choices:
        raise ArgumentError(
            f"{COMMAND} {NMS_CLASS}: '{key}':'{value}'; expected one of {', '.join(choices)}"
        )
    return value


def _flag(args: dict[str, str], key: str) -> bool:
    value = args.get(key, "false").lower()
    if value not in ("true", "false"):
        raise ArgumentError(f"{COMMAND} {NMS_CLASS}: '{key}':'{args[key]}'; expected true or false")
    return value == "true"


# --- the command -------------------------------------------------------------------------------------------


def command_from_macro(call: CommandCall) -> None:
    """The handler of ``run("Command From Macro", ...)`` (see the module notes)."""
    command = call.option("command")
    if command is None:
        raise ArgumentError(f"{COMMAND}: command=[...] is missing (expected command=[{NMS_CLASS}])")
    if command not in (NMS_CLASS, NMS_MENU_NAME):
        raise ArgumentError(
            f"{COMMAND}: command=[{command}] is not served by deepij, which serves command=[{NMS_CLASS}] "
            "(StarDist's post-processing). StarDist's other Fiji commands run their own network: run the "
            'model with run("DeepImageJ StarDist", "model=...") or run("DeepImageJ Run", ...), or start '
            "deepij on a Fiji that has StarDist (deepij.imagej(fiji=...))"
        )
    process = (call.option("process") or "false").lower()
    if process not in ("true", "false"):
        raise ArgumentError(f"{COMMAND}: process=[{process}]; expected true or false")
    request = nms_request(parse_command_args(call.option("args") or ""))
    run_nms(call, request)


def run_nms(call: CommandCall, request: NmsRequest) -> None:
    """StarDist2DNMS on the two open images ``request`` names: ROIs and/or the label image."""
    from deepij.imagej import rois
    from deepij.imagej._java import jc

    prob_imp, prob, dist = _inputs(request)
    frames = prob.shape[0]
    manager_ready = False
    label_imp = None
    next_label, drawn = 1, 0
    for frame in range(frames):
        polygons, candidates = _nms(prob[frame], dist[frame], request)
        if request.verbose:
            where = f"frame {frame:03d}: " if frames > 1 else ""
            jc.IJ.log(f"{where}{candidates} polygon candidates, {len(polygons)} remain after non-maximum "
                      "suppression")
        found = [rois.polygon_roi(p) for p in polygons]
        if request.output_type in ("ROI Manager", "Both"):
            for roi in found:
                if frames > 1:
                    rois.set_position(roi, frame + 1, request.roi_position)
            rois.add_rois(found, reset=not manager_ready)
            manager_ready = True
        if request.output_type in ("Label Image", "Both"):
            if label_imp is None:
                label_imp = jc.IJ.createImage(LABEL_TITLE, "16-bit black", prob.shape[2], prob.shape[1], 1, 1,
                                              frames)
            next_label = rois.fill_labels(label_imp.getStack().getProcessor(frame + 1), found, next_label)
            drawn += len(found)
    if label_imp is not None:
        _show_label_image(call, label_imp, prob_imp, drawn)


def _inputs(request: NmsRequest) -> tuple[Any, np.ndarray, np.ndarray]:
    """The probability ImagePlus, then the probability ``(t, y, x)`` and distances ``(t, y, x, rays)``,
    checked as the plugin checks them."""
    from deepij.imagej._java import jc
    from deepij.imagej.images import to_xarray

    imps = {}
    for key, title in (("prob", request.prob), ("dist", request.dist)):
        imp = jc.WindowManager.getImage(title)
        if imp is None:
            raise InputError(f"{COMMAND} {NMS_CLASS}: '{key}':'{title}': no open image has that title")
        imps[key] = imp
    prob = to_xarray(imps["prob"], squeeze=False)  # dims t, pln, row, col, ch
    dist = to_xarray(imps["dist"], squeeze=False)
    if prob.sizes["pln"] != 1 or prob.sizes["ch"] != 1:
        raise InputError(f"{COMMAND} {NMS_CLASS}: '{request.prob}' must be a 2-D image or a time-lapse "
                         f"(found {_sizes(prob)})")
    if dist.sizes["pln"] != 1 or dist.sizes["ch"] < 3:
        raise InputError(f"{COMMAND} {NMS_CLASS}: '{request.dist}' must be a 2-D image or time-lapse with at "
                         f"least three channels, one per ray (found {_sizes(dist)})")
    if (prob.sizes["row"], prob.sizes["col"]) != (dist.sizes["row"], dist.sizes["col"]):
        raise InputError(f"{COMMAND} {NMS_CLASS}: width or height of '{request.prob}' ({_sizes(prob)}) and "
                         f"'{request.dist}' ({_sizes(dist)}) differ")
    if prob.sizes["t"] != dist.sizes["t"]:
        raise InputError(f"{COMMAND} {NMS_CLASS}: numbers of frames of '{request.prob}' and "
                         f"'{request.dist}' differ ({prob.sizes['t']} and {dist.sizes['t']})")
    if request.output_type == "Polygons" and prob.sizes["t"] > 1:
        raise InputError(f"{COMMAND} {NMS_CLASS}: 'outputType':'Polygons' is not for time-lapses")
    probability = np.asarray(prob.isel(pln=0, ch=0).transpose("t", "row", "col").values, np.float32)
    distances = np.asarray(dist.isel(pln=0).transpose("t", "row", "col", "ch").values, np.float32)
    return imps["prob"], probability, distances


def _sizes(image: Any) -> str:
    names = {"t": "frames", "pln": "slices", "ch": "channels", "row": "height", "col": "width"}
    return ", ".join(f"{names[str(d)]} {n}" for d, n in image.sizes.items())


def _nms(prob: np.ndarray, dist: np.ndarray, request: NmsRequest) -> tuple[np.ndarray, int]:
    """The kept polygons ``(n, rays, 2)`` as ``(y, x)``, and how many candidates there were."""
    from deepij.processing.instances import stardist_polygons

    b = request.exclude_boundary
    inner = prob[b : prob.shape[0] - b, b : prob.shape[1] - b] if b else prob
    candidates = int(np.count_nonzero(inner > request.prob_thresh))
    if candidates == 0:
        return np.zeros((0, dist.shape[-1], 2)), 0
    _, _, _, polygons = stardist_polygons(
        prob, dist, prob_threshold=request.prob_thresh, nms_threshold=request.nms_thresh, b=b
    )
    return polygons, candidates


def _show_label_image(call: CommandCall, label_imp: Any, prob_imp: Any, drawn: int) -> None:
    from deepij.imagej import luts
    from deepij.imagej._java import jc

    if drawn > _MAX_LABEL:
        jc.IJ.log(f"{NMS_CLASS}: found more than {_MAX_LABEL} objects: the label image repeats some labels "
                  "(the ROI Manager holds them all)")
    label_imp.setCalibration(prob_imp.getCalibration().copy())
    label_imp.setT(1)
    luts.show_labels(label_imp, drawn)
    call.show(label_imp)


def install(session: Session) -> None:
    """Serve ``run("Command From Macro", ...)`` (StarDist2DNMS) on ``session`` (a session hook), unless
    ImageJ has the command itself (a Fiji with StarDist: its own plugin runs)."""
    from deepij.imagej.luts import imagej_has_command

    if not imagej_has_command(COMMAND):
        session.commands.register(COMMAND, command_from_macro)
