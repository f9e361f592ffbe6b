"""Lookup tables and StarDist's post-processing in a headless ImageJ, in its own process (this pytest
process's JVM has a display): the label image is made, a table applies, and asking for ROIs (a window)
stops the macro saying why instead of failing inside ImageJ."""

from __future__ import annotations

import json

SCRIPT = r"""
import json, numpy as np, xarray as xr
import deepij
from deepij.errors import MacroError

session = deepij.imagej(headless=True)
prob = np.zeros((32, 32), np.float32); prob[16, 16] = 0.9
dist = xr.DataArray(np.full((8, 32, 32), 4.0, np.float32), dims=("ch", "row", "col"))
call = ('run("Command From Macro", "command=[de.csbdresden.stardist.StarDist2DNMS], args=[\'prob\':\'p\', '
        "'dist':'d', 'outputType':'OUTPUT'], process=[false]\");")
out = {}
labels = session.run_macro(call.replace("OUTPUT", "Label Image") + 'run("glasbey"); return getTitle();',
                           image={"p": prob, "d": dist})
out["title"], out["max"] = labels.value, int(labels.images["Label Image"].values.max())
try:
    session.run_macro(call.replace("OUTPUT", "Both"), image={"p": prob, "d": dist})
    out["both"] = "ran"
except MacroError as error:
    out["both"] = str(error)
print("RESULT " + json.dumps(out))
"""


def test_headless_label_images_and_a_clear_refusal_for_rois(run_python):
    done = run_python(SCRIPT, env={"DISPLAY": ""})
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(text for text in done.stdout.splitlines() if text.startswith("RESULT "))
    out = json.loads(line[len("RESULT "):])
    assert (out["title"], out["max"]) == ("Label Image", 1)
    assert "the ROI Manager is a window, which a headless ImageJ cannot make" in out["both"]
