"""Macros in the real ImageJ: options honoured, results collected, errors, dialogs, time limits, isolation."""

from __future__ import annotations

import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import deepij
from deepij.errors import ArgumentError, ArgumentTypeError, DeepijError, MacroError, MacroTimeoutError
from deepij.imagej import macros
from deepij.imagej._java import jc

RNG = np.random.default_rng(11)


def _java_gaussian(session, image: np.ndarray, sigma: float) -> np.ndarray:
    """ImageJ's own Java API, as the "Gaussian Blur..." command calls it for a 32-bit image."""
    imp = session.to_imageplus(image)
    jc_blur = __import__("jpype").JClass("ij.plugin.filter.GaussianBlur")()
    jc_blur.blurGaussian(imp.getProcessor(), sigma, sigma, 0.0002)
    return session.to_xarray(imp).values


def test_gaussian_blur_honours_sigma_7(session):
    image = RNG.random((96, 80)).astype("float32")
    result = session.run_macro('run("Gaussian Blur...", "sigma=7");', image=image)
    blurred = result.image.values
    np.testing.assert_array_equal(blurred, _java_gaussian(session, image, 7.0))
    assert not np.allclose(blurred, _java_gaussian(session, image, 2.0), atol=1e-3)  # not the default


def test_analyze_particles_counts_synthetic_discs(session):
    image = np.zeros((200, 200), "uint8")
    yy, xx = np.mgrid[:200, :200]
    centres = [(30 + 45 * (i % 4), 30 + 60 * (i // 4)) for i in range(11)]
    for cy, cx in centres:
        image[(yy - cy) ** 2 + (xx - cx) ** 2 <= 10**2] = 255
    result = session.run_macro(
        'setThreshold(128, 255);\nrun("Analyze Particles...", "size=50-Infinity display clear");', image=image
    )
    table = result.tables["Results"]
    assert len(table) == 11
    np.testing.assert_allclose(table["Area"], np.pi * 10**2, rtol=0.05)


def test_images_tables_log_value_and_current_image(session):
    result = session.run_macro("""
        print("start");
        newImage("ramp", "32-bit ramp", 16, 8, 1);
        newImage("black", "8-bit black", 4, 4, 3);
        selectImage("ramp");
        Table.create("Counts");
        Table.set("n", 0, 5, "Counts");
        Table.update("Counts");
        print("end " + getArgument());
        return "value:" + nImages;
    """, args="go")
    assert list(result.images) == ["ramp", "black"]
    assert result.images["black"].dims == ("pln", "row", "col") and result.images["black"].shape == (3, 4, 4)
    assert result.current == "ramp" and result.image.name == "ramp"
    np.testing.assert_allclose(result.image.values[0], np.arange(16) / 16)
    assert result.tables["Counts"]["n"].tolist() == [5.0]
    assert result.log.splitlines() == ["start", "end go"]
    assert result.value == "value:2"
    assert int(result.imageplus["ramp"].getWidth()) == 16


def test_several_input_images_by_title_and_dict_args(session):
    a = np.full((4, 4), 3, "uint8")
    b = xr.DataArray(np.full((4, 4), 10, "uint8"), dims=("row", "col"))
    result = session.run_macro("""
        args = getArgument();
        current = getTitle();
        imageCalculator("Add create", "first", "second");
        rename("sum");
        return current + "|" + args;
    """, image={"first": a, "second": b}, args={"mode": "fast", "label": "two words", "flag": True})
    assert result.value == "second|mode=fast label=[two words] flag"
    assert set(result.images) == {"first", "second", "sum"}
    assert result.images["sum"].values.max() == 13


# --- tables= : Results and named tables open when the macro starts -----------------------------------------

MEASUREMENTS = pd.DataFrame({"Area": [12.0, 30.0, 7.5], "Mean": [101.0, 88.5, 240.0]})
SUM_AND_EXTEND_RESULTS = """// what a lab macro does with the measurements it finds in the Results table
n = nResults;
total = 0;
for (i = 0; i < n; i++)
    total = total + getResult("Area", i);
setResult("Area", n, total);
setResult("Mean", n, getResult("Mean", 2) / 2);
updateResults();
return "" + n + " " + total;
"""


def test_a_macro_reads_and_extends_the_given_results(session):
    result = session.run_macro(SUM_AND_EXTEND_RESULTS, tables={"Results": MEASUREMENTS})
    assert result.value == "3 49.5"  # 12 + 30 + 7.5
    table = result.tables["Results"]
    assert table["Area"].tolist() == [12.0, 30.0, 7.5, 49.5]
    assert table["Mean"].tolist() == [101.0, 88.5, 240.0, 120.0]
    assert MEASUREMENTS["Area"].tolist() == [12.0, 30.0, 7.5]  # the caller's frame is not touched


def test_a_macro_reads_and_changes_a_named_table(session):
    wells = pd.DataFrame({"well": ["B2", "C7"], "dilution": [4.0, 16.0]})
    result = session.run_macro("""
        selectWindow("plate layout");
        first = Table.get("dilution", 1, "plate layout");
        Table.set("dilution", 0, first * 2, "plate layout");
        Table.set("done", 1, 1, "plate layout");
        Table.update("plate layout");
        return "" + Table.size("plate layout") + " " + Table.getString("well", 1, "plate layout") + " "
            + isOpen("plate layout");
    """, tables={"plate layout": wells})
    assert result.value == "2 C7 1"
    changed = result.tables["plate layout"]
    assert changed["well"].tolist() == ["B2", "C7"]
    assert changed["dilution"].tolist() == [32.0, 16.0]
    assert changed["done"].tolist() == [0.0, 1.0]  # ImageJ fills a new column's other rows with 0
    assert "Results" not in result.tables  # only the named table was given and none was measured


def test_results_and_named_tables_together_with_an_image(session):
    image = np.arange(16, dtype="float32").reshape(4, 4)
    counts = pd.DataFrame({"objects": [3.0]})
    result = session.run_macro("""
        scale = Table.get("factor", 0, "calibration");
        run("Multiply...", "value=" + scale);
        return "" + getResult("objects", 0) + " " + getPixel(3, 3) + " " + getTitle();
    """, image={"cells": image}, tables={"Results": counts, "calibration": pd.DataFrame({"factor": [0.5]})})
    assert result.value == "3 7.5 cells"  # pixel (3, 3) is 15, halved
    np.testing.assert_array_equal(result.images["cells"].values, image * 0.5)
    assert list(result.tables) == ["Results", "calibration"]


def test_a_given_resultstable_is_copied(session):
    mine = session.to_resultstable(pd.DataFrame({"Area": [1.0, 2.0]}))
    result = session.run_macro('setResult("Area", 0, 99);\nupdateResults();', tables={"Results": mine})
    assert result.tables["Results"]["Area"].tolist() == [99.0, 2.0]
    assert session.to_dataframe(mine)["Area"].tolist() == [1.0, 2.0]  # ImageJ was cleaned; ours is intact


def test_given_tables_do_not_outlive_their_run(session):
    session.run_macro("x = 1;", tables={"Results": MEASUREMENTS, "plate layout": MEASUREMENTS})
    assert session.run_macro('return "" + nResults + " " + isOpen("plate layout");').value == "0 0"


def test_a_table_window_activated_after_its_run_is_not_the_next_runs_results(session):
    # ImageJ's event thread can deliver a table window's activation after the run that showed it ended (and
    # its window was closed): ImageJ then makes that closed window its front table again, and getResult
    # falls back to the front table when Results is empty. Here the late activation is done by hand, as
    # the event thread's handler does it (WindowManager.setWindow).
    left = session.run_macro('Table.create("layout");\nTable.set("Mean", 0, 5);\nTable.update("layout");')
    assert left.tables["layout"]["Mean"].tolist() == [5.0]
    closed = next(w for w in jc.Window.getWindows() if str(getattr(w, "getTitle", lambda: "")()) == "layout")
    jc.WindowManager.setWindow(jc.Frame @ closed)
    with pytest.raises(MacroError, match="No results found"):
        session.run_macro('mean = getResult("Mean", nResults - 1);')


@pytest.mark.parametrize("tables, error, names", [
    ([("Results", MEASUREMENTS)], ArgumentTypeError, r"tables: expected a dict of table title -> pandas"),
    ({3: MEASUREMENTS}, ArgumentTypeError, r"tables: dict keys are table titles \(non-empty str\), found 3"),
    ({" ": MEASUREMENTS}, ArgumentError, r"tables: dict keys are table titles \(non-empty str\), found ' '"),
    ({"counts": [1, 2]}, ArgumentTypeError,
     r"tables\['counts'\]: expected a pandas DataFrame or ij.measure.ResultsTable, found list"),
    ({"counts": pd.DataFrame([[1.0, 2.0]], columns=["a", "a"])}, ArgumentError,
     r"tables\['counts'\]: repeated column names \['a'\]"),
    ({"counts": pd.DataFrame({"when": [object()]})}, ArgumentError,
     r"tables\['counts'\]\['when'\] row 0: object .* cannot go into a ResultsTable"),
])
def test_bad_tables_are_named(session, tables, error, names):
    with pytest.raises(error, match=names):
        session.run_macro("x = 1;", tables=tables)


def test_module_level_run_macro_takes_tables(session):
    result = deepij.run_macro('return "" + nResults + " " + getResult("Mean", 1);',
                              tables={"Results": MEASUREMENTS})
    assert result.value == "3 88.5"


def test_imageplus_input_is_processed_in_place(session):
    imp = session.to_imageplus(np.zeros((5, 5), "uint8"), title="mine")
    result = session.run_macro('run("Invert");', image=imp)
    assert result.imageplus["mine"] is imp or int(result.imageplus["mine"].getID()) == int(imp.getID())
    assert int(imp.getProcessor().getPixel(0, 0)) == 255


def test_macro_from_a_file_and_errors_name_it(session, tmp_path):
    good = tmp_path / "double.ijm"
    good.write_text('run("Multiply...", "value=2");\n')
    result = session.run_macro(good, image=np.ones((3, 3), "float32"))
    np.testing.assert_array_equal(result.image.values, 2.0)
    assert session.run_macro(str(good), image=np.ones((3, 3), "float32")).image.values.max() == 2.0
    bad = tmp_path / "bad.ijm"
    bad.write_text('x = 1;\n\ny = undefinedThing(x);\n')
    with pytest.raises(MacroError) as caught:
        session.run_macro(bad)
    assert caught.value.line == 3 and caught.value.source == str(bad)
    assert "Undefined identifier" in caught.value.macro_message
    assert "undefinedThing" in caught.value.macro_message
    with pytest.raises(ArgumentError, match=r"macro: file '.*missing\.ijm' does not exist"):
        session.run_macro(tmp_path / "missing.ijm")


def test_command_errors_and_wrong_image_types_are_macro_errors(session):
    with pytest.raises(MacroError, match="There are no images open") as caught:
        session.run_macro('x = 1;\nrun("8-bit");')
    assert caught.value.line == 2
    with pytest.raises(MacroError, match="RGB images do not use LUTs"):
        session.run_macro('newImage("c", "RGB black", 8, 8, 1);\nrun("Invert LUT");')
    with pytest.raises(MacroError, match="Unrecognized command"):
        session.run_macro('run("No Such Command Anywhere");')


def test_exit_and_messages_do_not_fail_the_run(session):
    code = 'showMessage("Title", "note to user");\nprint("after");\nexit("bye");\nprint("no");'
    result = session.run_macro(code)
    assert result.messages == ["note to user", "bye"]
    assert result.log.splitlines() == ["after"]


@pytest.mark.parametrize("code, shows, says", [
    ('waitForUser("click OK");\nprint("never");', "click OK", "waits for user input that will never come"),
    ('name = getString("Your name?", "anne");\nprint(name);', "Your name?", 'answers={"Your name?": "anne"}'),
    ('Dialog.create("Settings");\nDialog.addNumber("sigma", 2);\nDialog.show();\nprint("never");', "sigma",
     '--answer "sigma=2"'),
    ('ok = getBoolean("Continue?");', "Continue?", 'answers={"Continue?": True}'),
    ('Dialog.createNonBlocking("Live");\nDialog.addMessage("adjust, then OK");\nDialog.show();', "adjust",
     "waits for user input that will never come"),
    ('dir = getDirectory("Choose a folder");', "Choose a folder", '"Choose a folder": "/path/to/folder"'),
])
def test_dialogs_waiting_for_a_user_stop_at_once(session, code, shows, says):
    started = time.monotonic()
    with pytest.raises(MacroTimeoutError) as caught:
        session.run_macro(code)
    assert time.monotonic() - started < 5
    assert shows in str(caught.value) and says in str(caught.value)
    assert caught.value.line is not None
    assert "never" not in session.run_macro('print("fresh");').log


def test_time_limit_stops_a_busy_macro(session):
    started = time.monotonic()
    with pytest.raises(MacroTimeoutError, match=r"time limit of 0.5 s"):
        session.run_macro("i = 0;\nwhile (true) { i++; }", timeout=0.5)
    assert time.monotonic() - started < 4
    assert session.run_macro("return \"\" + (1 + 1);").value == "2"


def test_time_limit_stops_java_code_that_ignores_the_interpreter(session, monkeypatch):
    monkeypatch.setattr(macros, "STOP_GRACE_S", 0.5)
    started = time.monotonic()
    with pytest.raises(MacroTimeoutError):
        session.run_macro("wait(60000);", timeout=0.3)  # one Java sleep, deaf to the stop flag
    assert time.monotonic() - started < 10
    assert session.run_macro("return \"\" + 6 * 7;").value == "42"


def test_log_lines_are_handed_out_while_the_macro_runs(session, handlers):
    # the macro waits in a command until the line it printed before has reached on_log: it arrives while the
    # macro runs, not at its end (the wait gives up after a minute, so a failure cannot hang the tests)
    got = []
    arrived = threading.Event()

    def on_log(line):
        got.append(line)
        if line == "first":
            arrived.set()

    handlers("Deepij Test Wait For Log", lambda call: got.append(f"seen while running: {arrived.wait(60)}"))
    code = ('print("first");\nrun("Deepij Test Wait For Log");\nprint("second");\n'
            'print("\\\\Update:second, updated");\nprint("last");')
    result = session.run_macro(code, on_log=on_log)
    assert got[:2] == ["first", "seen while running: True"]
    assert got[-1] == "last" and got[-2] == "second, updated"  # "second" may come too, before its update
    assert set(got[2:-2]) <= {"second"}
    assert result.log == "first\nsecond, updated\nlast\n"


def test_a_stopped_run_stops_the_python_code_of_the_handler_it_is_in(session, handlers):
    # ImageJ's stop flag and Java interrupts never reach Python code (a handler predicting with a network):
    # the stop is raised inside it. The run is stopped once the handler runs (as its time limit would stop
    # it, through the same path), so that nothing depends on how fast the machine is; the handler's loop
    # gives up after two minutes, so a failure cannot hang the tests.
    seen = []
    entered = threading.Event()

    def busy(call):
        entered.set()
        deadline = time.monotonic() + 120
        try:
            while time.monotonic() < deadline:
                sum(range(1000))
        except BaseException as stop:
            seen.append(type(stop).__name__)
            raise
        seen.append("ran out")

    def stop_when_entered():
        entered.wait(120)
        session.runner.fail_current(MacroTimeoutError("the macro ran past its time limit of 1 s"))

    handlers("Deepij Test Busy Python", busy)
    threading.Thread(target=stop_when_entered, daemon=True).start()
    with pytest.raises(MacroTimeoutError, match=r"time limit of 1 s") as caught:
        session.run_macro('print("a");\nrun("Deepij Test Busy Python");\nprint("b");')
    assert seen == ["RunStopped"] and caught.value.line == 2
    # ImageJ's commands work again: the stopped handler no longer holds the command listeners' lock
    result = session.run_macro('run("Invert");', image=np.zeros((4, 4), "uint8"))
    assert int(result.image.min()) == 255


@pytest.mark.parametrize("arguments, error, names", [
    ({"timeout": 0}, ArgumentError, "timeout: expected a number of seconds > 0"),
    ({"timeout": -1.5}, ArgumentError, "timeout: expected a number of seconds > 0"),
    ({"timeout": float("nan")}, ArgumentError, "timeout: expected a number of seconds > 0"),
    ({"timeout": "abc"}, ArgumentTypeError, r"timeout: .* found 'abc' \(str\)"),
    ({"timeout": True}, ArgumentTypeError, r"timeout: .* found True \(bool\)"),
    ({"image": {"a": [1, 2]}}, ArgumentTypeError, r"image\['a'\]: expected a numpy array, xarray.DataArray"),
    ({"image": "picture.tif"}, ArgumentTypeError, "image: expected a numpy array"),
    ({"image": {"": np.zeros((2, 2))}}, ArgumentError, "image: dict keys are image titles"),
    ({"image": {3: np.zeros((2, 2))}}, ArgumentTypeError, "image: dict keys are image titles"),
    ({"image": np.zeros((2, 2, 2, 2))}, ArgumentError, r"image: data: a numpy array of 4 dims needs dims"),
    ({"args": 5}, ArgumentTypeError, "args: expected a str or a dict"),
    ({"answers": ["x"]}, ArgumentTypeError, "answers: expected a mapping"),
    ({"answers": {"Folder": object()}}, ArgumentTypeError, r"answers\['Folder'\]: expected text"),
    ({"answers": {"": "x"}}, ArgumentTypeError, "answers: keys are prompt texts"),
])
def test_bad_arguments_are_named(session, arguments, error, names):
    with pytest.raises(error, match=names) as caught:
        session.run_macro("x=1;", **arguments)
    assert isinstance(caught.value, DeepijError)


def test_a_macro_that_is_neither_code_nor_a_path_is_refused(session):
    with pytest.raises(ArgumentTypeError, match="macro: expected macro code"):
        session.run_macro(42)


def test_no_run_leaks_into_the_next(session):
    polluting = """
        newImage("left", "8-bit black", 32, 32, 1);
        makeRectangle(2, 2, 10, 10);
        roiManager("add");
        run("Set Measurements...", "area mean centroid redirect=left decimal=5");
        run("Measure");
        setOption("BlackBackground", FLIPPED);
        run("Options...", "iterations=3 count=2");
        Table.create("leftover");
        run("Conversions...", "scale weighted");
        call("ij.Prefs.set", "deepij.test.key", "leaked");
        setBatchMode(false);
        newImage("shown", "8-bit white", 8, 8, 1);
        print("old log line");
    """
    black_background, weighted = bool(jc.Prefs.blackBackground), bool(jc.Prefs.weightedColor)
    polluting = polluting.replace("FLIPPED", "false" if black_background else "true")
    session.run_macro(polluting)
    probe = """
        return "" + nImages + "," + nResults + "," + roiManager("count") + "," + isOpen("leftover") + ","
            + isOpen("shown") + "," + lengthOf(getInfo("log")) + ","
            + call("ij.Prefs.get", "deepij.test.key", "-");
    """
    baseline = session.run_macro(probe).value
    assert baseline == "0,0,0,0,0,0,-"
    assert bool(jc.Prefs.weightedColor) == weighted
    assert bool(jc.Prefs.blackBackground) == black_background
    measured = session.run_macro('newImage("m", "8-bit black", 4, 4, 1);\nrun("Measure");').tables["Results"]
    assert "X" not in measured.columns  # centroid was switched on by the polluting run only
    with pytest.raises(MacroError):
        session.run_macro(polluting + "\nfail here;")
    assert session.run_macro(probe).value == baseline
    assert bool(jc.Prefs.blackBackground) == black_background


def test_binary_options_are_restored(session):
    image = np.zeros((20, 20), "uint8")
    image[5:15, 5:15] = 255
    code = 'setOption("BlackBackground", true);\nrun("Convert to Mask");\nrun("Erode");'
    first = session.run_macro(code, image=image).image.values
    session.run_macro('run("Options...", "iterations=4 count=1 black");')
    np.testing.assert_array_equal(session.run_macro(code, image=image).image.values, first)


def test_calls_from_several_threads_are_serialized(session):
    # Each macro marks its start and end through commands served in Python (on the macro's own thread,
    # inside the interpreter's run): the intervals of the twelve runs must not overlap.
    spans: list[tuple[float, float, int]] = []
    inside = []
    lock = threading.Lock()

    def enter(call):
        with lock:
            inside.append(time.monotonic())

    def leave(call):
        with lock:
            spans.append((inside.pop(), time.monotonic(), len(inside)))

    session.commands.register("Deepij Test Enter", enter)
    session.commands.register("Deepij Test Leave", leave)

    def work(seed: int) -> bool:
        image = np.full((16, 16), float(seed), "float32")
        code = (f'run("Deepij Test Enter");\nrun("Add...", "value={seed}");\nwait(20);\n'
                'v = getPixel(0, 0);\nrun("Deepij Test Leave");\nreturn "" + v;')
        result = session.run_macro(code, image=image)
        return result.value == str(2 * seed) and list(result.images) == ["image"]

    try:
        with ThreadPoolExecutor(4) as pool:
            assert all(pool.map(work, range(1, 13)))
    finally:
        session.commands.unregister("Deepij Test Enter")
        session.commands.unregister("Deepij Test Leave")
    assert len(spans) == 12
    assert all(others == 0 for _, _, others in spans)  # nobody else was inside while one run was
    ordered = sorted(spans)
    assert all(earlier[1] <= later[0] for earlier, later in itertools.pairwise(ordered))


def test_module_level_run_macro_uses_the_session(session):
    result = deepij.run_macro('run("Invert");', np.zeros((4, 4), "uint8"))
    assert int(result.image.values.max()) == 255
    assert deepij.imagej() is session


def test_quit_is_refused(session):
    with pytest.raises(MacroError, match="would end the ImageJ"):
        session.run_macro('run("Quit");')
    assert jc.IJ.getInstance() is not None
    assert session.run_macro("return \"3\";").value == "3"


def test_a_failing_thread_does_not_block_the_others(session):
    errors = []

    def failing():
        try:
            session.run_macro("waitForUser;")
        except MacroTimeoutError as error:
            errors.append(error)

    thread = threading.Thread(target=failing)
    thread.start()
    assert session.run_macro("return \"5\";").value == "5"
    thread.join(10)
    assert len(errors) == 1
