"""The headless mode, in its own process (this pytest process's JVM has a display and cannot restart)."""

from __future__ import annotations

import json

SCRIPT = r"""
import json, numpy as np
import deepij
from deepij.errors import HeadlessError, MacroError
from deepij.imagej._java import jc

out = {}
session = deepij.imagej(headless=True)
out["headless"] = session.headless and bool(jc.GraphicsEnvironment.isHeadless())
out["display"] = session.display

image = np.random.default_rng(0).integers(0, 255, (32, 40), dtype="uint8")
streamed = []
result = session.run_macro('print("hello");\nrun("Invert");\nrun("Smooth");', image=image,
                           on_log=streamed.append)
out["streamed"] = streamed
reference = session.to_imageplus(image)
reference.getProcessor().invert()
reference.getProcessor().smooth()
expected = session.to_xarray(reference).values
out["invert_smooth_equal_java"] = bool(np.array_equal(result.image.values, expected))
out["log"] = result.log

for name, code in {
    "gaussian": 'x = 1;\nrun("Gaussian Blur...", "sigma=7");',
    "particles": 'setThreshold(1, 255);\nrun("Analyze Particles...", "display");',
}.items():
    try:
        session.run_macro(code, image=image)
        out[name] = "ran"
    except HeadlessError as error:
        out[name] = str(error)

try:
    session.run_macro('waitForUser("hi");')
    out["wait"] = "ran"
except HeadlessError as error:
    out["wait"] = str(error)

try:
    session.run_macro('x = 1;\ny = nothing(2);')
except MacroError as error:
    out["error_line"] = error.line
    out["error_message"] = error.macro_message

measured = session.run_macro('newImage("r", "32-bit ramp", 8, 8, 1);\nrun("Measure");')
out["measure_columns"] = list(measured.tables["Results"].columns)
out["measure_mean"] = float(measured.tables["Results"]["Mean"].iloc[0])
pure = session.run_macro('setResult("A", 0, 7);\nnewImage("n", "8-bit white", 3, 3, 1);\n'
                         'return "" + getPixel(1, 1);')
out["pure_value"] = pure.value
out["pure_table"] = pure.tables["Results"]["A"].tolist()
print("RESULT " + json.dumps(out))
"""


def test_headless_mode_runs_what_it_can_and_refuses_the_rest(run_python):
    done = run_python(SCRIPT, env={"DISPLAY": ""})
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(text for text in done.stdout.splitlines() if text.startswith("RESULT "))
    out = json.loads(line[len("RESULT "):])
    assert out["headless"] is True and out["display"] is None
    assert out["invert_smooth_equal_java"] is True
    assert out["log"].strip() == "hello"  # a headless ImageJ prints its log to stdout: captured
    assert out["streamed"] == ["hello"]  # and followed (on_log)
    assert "run('Gaussian Blur...') cannot run faithfully in a headless ImageJ" in out["gaussian"]
    assert "(macro, line 2)" in out["gaussian"]
    assert "Analyze Particles..." in out["particles"]
    assert "needs a window or dialog" in out["wait"]
    assert out["error_line"] == 2 and "Undefined identifier" in out["error_message"]
    assert out["measure_columns"][:2] == ["Area", "Mean"] and abs(out["measure_mean"] - 0.4375) < 1e-6
    assert out["pure_value"] == "255" and out["pure_table"] == [7.0]
