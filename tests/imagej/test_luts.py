"""Fiji's lookup tables served as commands in the real ImageJ (deepij.imagej.luts): every name applies, with
colours that come from colorcet and matplotlib themselves (the oracles here), where ImageJ applies tables.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from deepij.errors import CommandNotFoundError
from deepij.imagej.lut_colours import LUT_NAMES, lut_colours

READ_LUT = (
    'getLut(r, g, b); s = ""; for (i = 0; i < 256; i++) s = s + r[i] + " " + g[i] + " " + b[i] + " "; '
    "return s;"
)


def _table(value: str) -> np.ndarray:
    return np.array(value.split(), np.int64).reshape(256, 3)


def _applied(session, name: str) -> np.ndarray:
    """The table ImageJ reports on an 8-bit image after run(name)."""
    return _table(session.run_macro(f'newImage("a", "8-bit ramp", 8, 8, 1); run("{name}"); {READ_LUT}').value)


def _hex(colours: list[str]) -> np.ndarray:
    return np.array([[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in colours])


@pytest.mark.parametrize("name", LUT_NAMES)
def test_every_table_applies_to_the_current_image(session, name):
    np.testing.assert_array_equal(_applied(session, name), lut_colours(name))


def test_glasbey_tables_are_colorcets_and_viridis_is_matplotlibs(session):
    colorcet = pytest.importorskip("colorcet")
    colormaps = pytest.importorskip("matplotlib").colormaps
    on_dark = _applied(session, "glasbey_on_dark")
    assert on_dark[0].tolist() == [0, 0, 0]
    np.testing.assert_array_equal(on_dark[1:], _hex(colorcet.glasbey_light[:255]))
    glasbey = _applied(session, "glasbey")
    assert glasbey[0].tolist() == [255, 255, 255]
    np.testing.assert_array_equal(glasbey[1:], _hex(colorcet.glasbey[:255]))
    viridis = _applied(session, "mpl-viridis")
    expected = np.rint(colormaps["viridis"](np.linspace(0, 1, 256))[:, :3] * 255)
    np.testing.assert_array_equal(viridis, expected)


def test_a_16bit_image_keeps_its_display_range_and_stack_slices_share_the_table(session):
    result = session.run_macro(
        'newImage("a", "16-bit ramp", 32, 32, 3); setMinAndMax(100, 2000); run("royal"); setSlice(3); '
        'getMinAndMax(low, high); getLut(r, g, b); return "" + low + " " + high + " " + r[255] + " " + b[0];'
    )
    low, high, red, blue = result.value.split()
    royal = lut_colours("royal")
    assert (float(low), float(high)) == (100, 2000)
    assert (int(red), int(blue)) == (royal[255, 0], royal[0, 2])


def test_a_grayscale_composite_becomes_colour_with_the_table_on_every_channel(session):
    result = session.run_macro(
        'newImage("c", "8-bit ramp", 16, 16, 3, 1, 1); run("Make Composite"); '
        'Stack.setDisplayMode("grayscale"); run("16_colors"); Stack.getDisplayMode(m); Stack.setChannel(2); '
        'getLut(r, g, b); return m + " " + r[255] + " " + g[255];'
    )
    mode, red, green = result.value.split()
    assert mode == "color" and (int(red), int(green)) == (255, 255)


def test_without_an_image_a_ramp_named_after_the_table_opens(session):
    result = session.run_macro('run("Thermal"); return getTitle() + " " + getWidth() + " " + getHeight();')
    assert result.value == "Thermal 256 32"
    np.testing.assert_array_equal(result.image.values[0], np.arange(256))


def test_rgb_images_keep_their_colours_and_the_macro_goes_on(session):
    macro = 'newImage("rgb", "RGB ramp", 16, 16, 1); run("glasbey"); return "" + bitDepth();'
    result = session.run_macro(macro)
    assert result.value == "24"
    assert "glasbey: lookup tables cannot be assigned to RGB images (rgb is RGB)" in result.log


def test_a_missing_colour_package_is_logged_and_the_macro_goes_on(session, monkeypatch):
    # colorcet is installed here; None in sys.modules makes `import colorcet` fail as if it were not
    monkeypatch.setitem(sys.modules, "colorcet", None)
    result = session.run_macro('newImage("a", "8-bit ramp", 8, 8, 1); run("glasbey_on_dark"); return "done";')
    assert result.value == "done"
    assert "glasbey_on_dark: the lookup table was left as it was" in result.log
    assert "pip install 'deepij[luts]'" in result.log


def test_served_tables_win_over_the_missing_command_hint(session):
    session.run_macro('newImage("a", "8-bit ramp", 8, 8, 1); run("glasbey_inverted");')
    with pytest.raises(CommandNotFoundError, match='"gem"'):  # a Fiji table deepij does not make
        session.run_macro('newImage("a", "8-bit ramp", 8, 8, 1); run("gem");')


def test_unknown_table_names_are_refused_with_the_known_ones():
    from deepij.errors import ArgumentError

    with pytest.raises(ArgumentError, match="expected one of glasbey, glasbey_on_dark"):
        lut_colours("glasbee")


LUT_FILE_SCRIPT = r"""
import json, sys
import deepij
session = deepij.imagej()
macro = ('newImage("a", "8-bit ramp", 8, 8, 1); run("NAME"); getLut(r, g, b); '
         'return "" + r[9] + " " + g[9] + " " + b[9];')
out = {name: session.run_macro(macro.replace("NAME", name)).value for name in ("glasbey", "glasbey_on_dark")}
print("RESULT " + json.dumps(out))
"""


def test_a_lut_file_of_imagejs_own_wins_over_deepijs_table(tmp_path, run_python):
    """An ImageJ folder (ij.jar, plugins/, luts/) whose luts/ has its own glasbey.lut (all red here,
    ImageJ's raw 768-byte format): ImageJ's command runs; the names it lacks are still deepij's."""
    from deepij.imagej.locate import find_ij_jar

    (tmp_path / "ij.jar").symlink_to(find_ij_jar())
    (tmp_path / "plugins").mkdir()
    (tmp_path / "luts").mkdir()
    (tmp_path / "luts" / "glasbey.lut").write_bytes(bytes([255] * 256 + [0] * 512))
    done = run_python(LUT_FILE_SCRIPT, env={"DEEPIJ_IJ_JAR": str(tmp_path / "ij.jar")})
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(text for text in done.stdout.splitlines() if text.startswith("RESULT "))
    out = json.loads(line[len("RESULT "):])
    assert out["glasbey"] == "255 0 0"
    assert out["glasbey_on_dark"].split() == [str(v) for v in lut_colours("glasbey_on_dark")[9]]
