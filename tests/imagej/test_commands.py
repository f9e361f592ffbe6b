"""Python handlers for ImageJ commands (the seam for run("DeepImageJ Run", ...))."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deepij.errors import ArgumentError, ArgumentTypeError, DeepijError, ImageJError, MacroError
from deepij.imagej.commands import format_options


def test_handler_gets_options_and_image_and_shows_results(session, handlers):
    seen = {}

    def double(call):
        seen["options"] = call.options
        seen["factor"] = call.option("factor")
        seen["title"] = call.option("title")
        image = call.image_xarray()
        call.show(image * float(call.option("factor")), title="doubled")
        call.show_table(pd.DataFrame({"Sum": [float(image.sum())]}), title="Stats")
        call.show_table(pd.DataFrame({"Max": [float(image.max())]}))

    handlers("Deepij Test Double", double)
    result = session.run_macro(
        'run("Deepij Test Double", "factor=2 title=[a b]");\nprint(getTitle());',
        image=np.full((4, 5), 3, "float32"),
    )
    assert seen == {"options": "factor=2 title=[a b]", "factor": "2", "title": "a b"}
    np.testing.assert_array_equal(result.images["doubled"].values, 6.0)
    assert result.current == "doubled" and result.log.strip() == "doubled"
    assert result.tables["Stats"]["Sum"].tolist() == [60.0]
    assert result.tables["Results"]["Max"].tolist() == [3.0]


def test_failing_handler_stops_the_macro_with_its_error(session, handlers):
    def broken(call):
        raise ValueError("model not found: nope")

    handlers("Deepij Test Broken", broken)
    with pytest.raises(MacroError, match="model not found: nope") as caught:
        session.run_macro('print("a");\nrun("Deepij Test Broken");\nprint("never");')
    assert caught.value.line == 2
    assert isinstance(caught.value.__cause__, ValueError)
    assert session.run_macro('return "ok";').value == "ok"


@pytest.mark.parametrize("raised", [
    ArgumentError("sigma: expected a number, found 'wide'"),
    ArgumentTypeError("model: expected a name (str), found int"),
    ImageJError("no such table: 'Counts'"),
    KeyError("tile"),
])
def test_every_handler_error_is_a_macro_error_at_the_calling_line(session, handlers, raised):
    # the macro's author wrote the options the handler could not take: the error belongs to that line
    def handler(call):
        raise raised

    handlers("Deepij Test Bad Option", handler)
    with pytest.raises(MacroError) as caught:
        session.run_macro('print("a");\nrun("Deepij Test Bad Option", "sigma=wide");\nprint("never");')
    error = caught.value
    assert not isinstance(error, ValueError | TypeError | LookupError)
    assert type(error) is MacroError and error.line == 2
    assert error.__cause__ is raised
    original = str(raised) if isinstance(raised, DeepijError) else f"KeyError: {raised}"
    assert error.macro_message == f"Deepij Test Bad Option: {original}"
    assert session.run_macro('return "ok";').value == "ok"


def test_a_handlers_own_macro_error_keeps_its_text(session, handlers):
    def handler(call):
        raise MacroError("Deepij Test Refuses: not with these options")

    handlers("Deepij Test Refuses", handler)
    with pytest.raises(MacroError) as caught:
        session.run_macro('x = 1;\nx = 2;\nrun("Deepij Test Refuses");')
    assert caught.value.macro_message == "Deepij Test Refuses: not with these options"
    assert caught.value.line == 3


def test_handler_without_image_gets_a_clear_error(session, handlers):
    handlers("Deepij Test Needs Image", lambda call: call.image_xarray())
    with pytest.raises(MacroError) as caught:
        session.run_macro('run("Deepij Test Needs Image");')
    # named once: CommandCall's own errors already start with the command
    assert caught.value.macro_message.startswith("Deepij Test Needs Image: there is no image open")


def test_handler_can_run_a_nested_macro(session, handlers):
    def preprocess(call):
        inner = call.session.run_macro('run("Multiply...", "value=10");\nrename("scaled");')
        assert "scaled" in inner.images

    handlers("Deepij Test Nested", preprocess)
    code = 'run("Deepij Test Nested");\nreturn getTitle();'
    result = session.run_macro(code, image=np.ones((3, 3), "float32"))
    assert result.value == "scaled"
    np.testing.assert_array_equal(result.image.values, 10.0)


def test_unregistered_command_goes_back_to_imagej(session, handlers):
    handlers("Invert", lambda call: None)  # intercept a real command...
    image = np.zeros((2, 2), "uint8")
    assert session.run_macro('run("Invert");', image=image).image.values.max() == 0
    session.commands.unregister("Invert")  # ...and give it back
    assert session.run_macro('run("Invert");', image=image).image.values.max() == 255


def test_register_checks_its_arguments(session):
    with pytest.raises(ArgumentError, match="command: expected a non-empty command name"):
        session.commands.register("", lambda call: None)
    with pytest.raises(ArgumentTypeError, match=r"command: expected a command name \(str\), found int"):
        session.commands.register(5, lambda call: None)
    with pytest.raises(ArgumentTypeError, match="handler: expected a callable"):
        session.commands.register("X", "not callable")


def test_format_options():
    assert format_options(None) == ""
    assert format_options("sigma=2") == "sigma=2"
    options = {"a": 1, "b": "x y", "c": True, "d": False, "e": None, "f": ""}
    assert format_options(options) == "a=1 b=[x y] c f=[]"


def test_java_exception_window_fails_the_run(session, handlers):
    from deepij.imagej._java import jc

    def crash(call):
        # What ImageJ's Executer does when a command throws: it opens an "Exception" window with the stack
        # trace and lets the macro go on. deepij must turn that window into an error, not carry on.
        trace = "java.lang.IllegalStateException: boom\n\tat Some.plugin(Some.java:1)"
        jc.TextWindow("Exception", trace, 400, 200)

    handlers("Deepij Test Crash", crash)
    with pytest.raises(MacroError, match=r"threw a Java exception:\njava\.lang\.IllegalStateException: boom"):
        session.run_macro('run("Deepij Test Crash");\nwait(2000);\nprint("never");', timeout=30)
    assert session.run_macro('return "" + isOpen("Exception");').value == "0"


def test_error_in_a_nested_macro_fails_the_outer_run(session, handlers):
    handlers("Deepij Test Nested Error", lambda call: call.session.run_macro("x = nothing();"))
    with pytest.raises(MacroError, match="Undefined identifier"):
        session.run_macro('run("Deepij Test Nested Error");')
    assert session.run_macro('return "fine";').value == "fine"
