"""The session's public ways for code around macros: exclusive(), withdraw_image(); its modules' layering."""

from __future__ import annotations

import ast
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import deepij.errors
import deepij.imagej

PACKAGE = Path(deepij.imagej.__file__).parent


# ------------------------------------------------------------------------------------------ exclusive()
def test_exclusive_keeps_macros_out_while_held(session, handlers):
    # The macro marks its start from a handler on its own thread; it may start only after the block ended.
    marks: dict[str, float] = {}
    handlers("Deepij Test Mark Start", lambda call: marks.setdefault("macro start", time.monotonic()))
    held = threading.Event()

    def hold() -> None:
        with session.exclusive() as inside_macro:
            marks["inside_macro"] = inside_macro
            held.set()
            time.sleep(0.6)
            marks["block end"] = time.monotonic()

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(30)
    result = session.run_macro('run("Deepij Test Mark Start");\nreturn "ran";', timeout=60)
    holder.join(30)
    assert result.value == "ran"
    assert marks["inside_macro"] is False
    assert marks["macro start"] >= marks["block end"]


def test_exclusive_waits_for_a_running_macro(session, handlers):
    started = threading.Event()
    marks: dict[str, float] = {}
    handlers("Deepij Test Started", lambda call: started.set())
    handlers("Deepij Test Mark End", lambda call: marks.setdefault("macro end", time.monotonic()))

    def macro() -> None:
        session.run_macro('run("Deepij Test Started");\nwait(600);\nrun("Deepij Test Mark End");', timeout=60)

    runner = threading.Thread(target=macro)
    runner.start()
    assert started.wait(30)
    with session.exclusive():
        marks["block start"] = time.monotonic()
    runner.join(30)
    assert marks["block start"] >= marks["macro end"]


def test_exclusive_inside_a_command_handler_does_not_wait(session, handlers):
    # Taking the run's lock there would wait for the run that is calling the handler: it must not.
    seen = []

    def handler(call) -> None:
        with call.session.exclusive() as inside_macro:
            seen.append(inside_macro)

    handlers("Deepij Test Exclusive Inside", handler)
    started = time.monotonic()
    result = session.run_macro('run("Deepij Test Exclusive Inside");\nreturn "done";', timeout=20)
    assert result.value == "done" and seen == [True]
    assert time.monotonic() - started < 10


# ------------------------------------------------------------------------------------------ withdraw_image()
@pytest.mark.parametrize("batch_mode", [True, False])
def test_withdrawn_image_leaves_the_macro_and_keeps_its_pixels(session, handlers, batch_mode):
    scratch = np.arange(12, dtype="float32").reshape(3, 4)
    kept = {}

    def make(call, withdraw: bool) -> None:
        imp = call.show(scratch, title="scratch")
        if withdraw:
            call.session.withdraw_image(imp)
        kept["imp"] = imp
        call.show(np.ones((3, 4), "float32"), title="kept")

    handlers("Deepij Test Withdraw", lambda call: make(call, True))
    handlers("Deepij Test Keep", lambda call: make(call, False))
    mode = "" if batch_mode else "setBatchMode(false);\n"
    report = '\nreturn "" + nImages + "|" + isOpen("scratch") + "|" + getTitle();'
    # ImageJ itself counts the images the macro sees: the input, "kept", and "scratch" unless withdrawn
    kept_in = session.run_macro(f'{mode}run("Deepij Test Keep");{report}', image=np.zeros((3, 4), "uint8"))
    assert kept_in.value == "3|1|kept"
    withdrawn = session.run_macro(f'{mode}run("Deepij Test Withdraw");{report}',
                                  image=np.zeros((3, 4), "uint8"))
    assert withdrawn.value == "2|0|kept"
    assert "scratch" not in withdrawn.images
    np.testing.assert_array_equal(session.to_xarray(kept["imp"]).values, scratch)  # not flushed


@pytest.mark.parametrize("outer", ["true", "false"])
def test_batch_mode_read_and_given_back_inside_a_macro(session, handlers, outer):
    # a handler that runs a nested step (which switches batch mode on) gives the macro back its own mode;
    # the macro's is("batch mode") tells what ImageJ's interpreter sees
    seen = []

    def handler(call):
        before = call.session.batch_mode
        seen.append(before)
        call.session.run_macro('setBatchMode(true);\nnewImage("step", "8-bit black", 4, 4, 1);')
        call.session.batch_mode = before

    handlers("Deepij Test Batch Mode", handler)
    code = f'setBatchMode({outer});\nrun("Deepij Test Batch Mode");\nreturn "" + is("batch mode");'
    result = session.run_macro(code)
    assert seen == [outer == "true"]
    assert result.value == ("1" if outer == "true" else "0")
    with pytest.raises(deepij.errors.ArgumentTypeError, match="batch_mode: expected True or False"):
        session.batch_mode = "yes"


# ------------------------------------------------------------------------------------------ layering
def _imported_modules(path: Path) -> set[str]:
    """Every module a file imports, also under ``if TYPE_CHECKING:`` and inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("module", ["commands.py", "macros.py"])
def test_runs_and_commands_do_not_import_the_session(module):
    # session.py builds on them; they name what they need of it as a Protocol (MacroHost, CommandHost)
    imported = _imported_modules(PACKAGE / module)
    assert "deepij.imagej.session" not in imported
    assert "deepij.imagej.session.Session" not in imported


def test_session_satisfies_the_protocols_its_parts_name(session):
    from deepij.imagej.commands import CommandHost
    from deepij.imagej.macros import MacroHost

    for protocol in (CommandHost, MacroHost):
        needed = {n for n in vars(protocol) if not n.startswith("_")} | set(protocol.__annotations__)
        assert all(hasattr(session, name) for name in needed), protocol.__name__
