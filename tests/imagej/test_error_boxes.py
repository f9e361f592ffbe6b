"""Error boxes stop the macro; the author's own message boxes do not (real ImageJ, real boxes)."""

from __future__ import annotations

import numpy as np
import pytest

from deepij.errors import CommandNotFoundError, MacroError
from deepij.imagej._java import jc
from deepij.imagej.missing_commands import PROVIDERS, command_not_found


def test_open_of_a_missing_file_stops_the_macro_there(session, tmp_path):
    missing = tmp_path / "absent.tif"
    code = f'print("before");\nopen("{missing}");\nprint("after");\nnewImage("later", "8-bit", 4, 4, 1);'
    with pytest.raises(MacroError) as caught:
        session.run_macro(code)
    assert "File not found" in caught.value.macro_message and str(missing) in caught.value.macro_message
    assert caught.value.line == 2
    assert f'open("{missing}");' in caught.value.macro_message  # the line, as the user wrote it
    assert session.run_macro('return "" + nImages;').value == "0"  # nothing of it was left behind


def test_an_earlier_redirect_of_error_messages_does_not_hide_the_next_runs_errors(session, tmp_path):
    # IJ.redirectErrorMessages() lasts until the next error; save_tiff and macros can leave it set
    session.save_tiff(np.zeros((4, 4), "uint8"), tmp_path / "saved.tif")
    session.run_macro('call("ij.IJ.redirectErrorMessages");')
    with pytest.raises(MacroError, match="File not found"):
        session.run_macro(f'open("{tmp_path / "absent.tif"}");')


def test_open_of_a_file_imagej_cannot_read_is_an_error(session, tmp_path):
    notes = tmp_path / "scan"
    notes.write_bytes(bytes(range(256)) * 8)  # no extension, no format ImageJ knows
    with pytest.raises(MacroError, match=r"(Unsupported format|File is not in a supported format)") as caught:
        session.run_macro(f'open("{notes}");\nprint("after");')
    assert caught.value.line == 1


def test_select_window_of_a_missing_title_is_an_error(session):
    code = 'newImage("cells", "8-bit", 8, 8, 1);\nselectWindow("nuclei");\nrun("Invert");'
    with pytest.raises(MacroError, match=r'No window with the title "nuclei" found') as caught:
        session.run_macro(code)
    assert caught.value.line == 2


def test_the_authors_own_boxes_are_messages_whatever_their_title(session):
    code = ('showMessage("Error", "check the folder");\nshowMessage("Macro Error", "only a note");\n'
            'print("went on");\nexit("done");')
    result = session.run_macro(code)
    assert result.messages == ["check the folder", "only a note", "done"]
    assert result.log.strip() == "went on"


def test_ij_error_from_a_command_stops_the_macro(session, handlers):
    # What plugins do on bad input: IJ.error(title, message). Here from a command served in Python, which
    # runs on the macro thread exactly as a Java plugin's run() would.
    handlers("Deepij Test IJ Error", lambda call: jc.IJ.error("My Plugin", "the input must be 8-bit"))
    with pytest.raises(MacroError, match="the input must be 8-bit") as caught:
        session.run_macro('print("a");\nrun("Deepij Test IJ Error");\nprint("never");')
    assert caught.value.line == 2


def test_a_commands_box_with_an_error_title_stops_the_macro(session, handlers):
    handlers("Deepij Test Error Box", lambda call: jc.IJ.showMessage("Segmentation Error", "no cells found"))
    handlers("Deepij Test Note Box", lambda call: jc.IJ.showMessage("Segmentation", "42 cells found"))
    result = session.run_macro('run("Deepij Test Note Box");\nreturn "went on";')
    assert result.value == "went on" and result.messages == ["42 cells found"]
    with pytest.raises(MacroError, match="no cells found"):
        session.run_macro('run("Deepij Test Error Box");\nprint("never");')


def test_a_dialog_nobody_waits_for_is_not_blamed_on_the_macro(session, handlers):
    """The race behind a spurious MacroTimeoutError ("GenericDialog ''") in a plain macro line.

    A dialog that is on screen while the macro runs, but that the macro thread does not wait in (built and
    shown by another thread, or caught half-built or half-closed), used to stop the macro at whatever line
    it was on. Here one appears on the event thread for a moment, as a command's own window would.
    """
    shown = []

    def flash(call):
        def show_then_close():
            dialog = jc.GenericDialog("")
            dialog.setModal(False)
            dialog.setVisible(True)
            shown.append(dialog)

        jc.EventQueue.invokeAndWait(_runnable(show_then_close))

    handlers("Deepij Test Flash", flash)
    code = 'run("Deepij Test Flash");\nrun("Divide...", "value=2");\nwait(300);\nreturn "" + getPixel(0, 0);'
    result = session.run_macro(code, image=np.full((4, 4), 8, "float32"))
    assert result.value == "4"
    assert shown and not shown[0].isShowing()  # it was up during the run, and cleaned away after it


def test_unrecognized_commands_name_the_component(session):
    with pytest.raises(CommandNotFoundError) as caught:
        session.run_macro('x = 1;\nrun("Morphological Filters", "operation=Opening element=Disk radius=2");')
    error = caught.value
    assert isinstance(error, MacroError) and error.line == 2
    assert error.command == "Morphological Filters" and error.component == "MorphoLibJ"
    assert 'Unrecognized command: "Morphological Filters"' in str(error)
    assert 'deepij.imagej(fiji="/path/Fiji.app")' in str(error) and "jars/plugins/" in str(error)
    # deepij serves the lookup tables it can make (glasbey, viridis...); "thal" is one of Fiji's it cannot
    with pytest.raises(CommandNotFoundError, match="Fiji lookup tables") as caught:
        session.run_macro('newImage("labels", "8-bit ramp", 8, 8, 1);\nrun("thal");')
    assert caught.value.command == "thal"
    with pytest.raises(CommandNotFoundError, match="does not know which plugin provides it") as caught:
        session.run_macro('run("Frobnicate Cells");')
    assert caught.value.command == "Frobnicate Cells" and caught.value.component is None


def test_imagej2_commands_are_not_sent_to_the_plugins_folder(session, handlers):
    # deepij serves "Command From Macro" for StarDist's NMS (a session hook), so the advice for an ImageJ
    # without it is asked of ImageJ's own message
    caught = command_not_found('Unrecognized command: "Command From Macro"', line=1)
    text = str(caught)
    assert caught.command == "Command From Macro" and "ImageJ2" in text
    assert "cannot run ImageJ2 commands" in text and "in Fiji" in text and "plugins/ folder can add" in text
    assert ".jar into the plugins/" not in text  # a jar there cannot register an ImageJ2 command

    # a command deepij serves wins over the hint
    handlers("Command From Macro", lambda call: call.show(np.full((2, 2), 7, "uint8"), title="served"))
    result = session.run_macro('run("Command From Macro", "command=[de.csbdresden.stardist.StarDist2D]");')
    assert int(result.images["served"].max()) == 7


def test_a_lookup_table_put_where_the_hint_says_is_run(run_python, tmp_path):
    # the .lut file goes into the luts/ folder the error names (of the ImageJ started here: the folder of
    # its jar, as plugins/ is there), and run("thal") then applies it, with no restart
    from deepij.imagej import locate

    (tmp_path / "plugins").mkdir()
    (tmp_path / "ij.jar").symlink_to(locate.find_ij_jar())
    done = run_python("""
        import re
        from pathlib import Path
        import numpy as np
        import deepij
        from deepij.errors import CommandNotFoundError

        session = deepij.imagej()
        code = ('newImage("labels", "8-bit ramp", 8, 8, 1); run("thal"); getLut(r, g, b); '
                'return "" + r[3] + " " + g[3] + " " + b[3];')
        try:
            session.run_macro(code)
        except CommandNotFoundError as error:
            print("ERROR", error)
            folder = Path(re.search("put the file thal[.]lut .*? into (/.*?/): ", str(error)).group(1))
        folder.mkdir(exist_ok=True)
        ramp = np.arange(256, dtype=np.uint8)
        (folder / "thal.lut").write_bytes(np.concatenate([ramp[::-1], ramp, ramp // 2]).tobytes())
        print("FOLDER", folder)
        print("LUT", session.run_macro(code).value)
    """, env={"DEEPIJ_IJ_JAR": str(tmp_path / "ij.jar"), "DISPLAY": ""})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Fiji lookup tables" in done.stdout and "can also be removed" in done.stdout
    assert f"FOLDER {tmp_path}" in done.stdout
    assert "LUT 252 3 1" in done.stdout  # the file's red, green and blue of index 3


def test_every_command_in_the_table_is_missing_from_plain_imagej(session):
    # the table must only hold what this ImageJ lacks; asked of ImageJ's own command table
    commands = jc.Menus.getCommands()
    present = [name for name in PROVIDERS if commands.get(name) is not None]
    assert present == []


def test_a_plugin_jar_next_to_the_imagej_jar_is_loaded(run_python, tmp_path):
    # a compiled plugin in <folder of the ImageJ jar>/plugins/, the folder the missing-command advice names
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    source = plugins / "Deepij_Probe.java"
    source.write_text('public class Deepij_Probe implements ij.plugin.PlugIn {\n'
                      '    public void run(String arg) { ij.IJ.log("probe ran"); }\n}\n')
    import subprocess

    from deepij.imagej import locate

    system_jar = locate.find_ij_jar()
    compiled = subprocess.run(["javac", "-cp", str(system_jar), "-d", str(plugins), str(source)],
                              capture_output=True, text=True)
    if compiled.returncode != 0:
        pytest.skip(f"javac is not usable here: {compiled.stderr[-300:]}")
    source.unlink()
    (tmp_path / "ij.jar").symlink_to(system_jar)
    done = run_python("""
        import deepij
        print("LOG", deepij.imagej().run_macro('run("Deepij Probe");').log.strip())
    """, env={"DEEPIJ_IJ_JAR": str(tmp_path / "ij.jar"), "DISPLAY": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "LOG probe ran" in done.stdout


def _runnable(action):
    from jpype import JImplements, JOverride

    @JImplements("java.lang.Runnable")
    class _Action:
        @JOverride
        def run(self):
            action()

    return _Action()

