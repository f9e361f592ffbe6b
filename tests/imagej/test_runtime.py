"""Getting the session: callable module, argument checks, Fiji and attach paths, clean exit, shutdown."""

from __future__ import annotations

import json
import time
import types

import psutil
import pytest

import deepij
from deepij.errors import ArgumentError, ArgumentTypeError, ImageJError
from deepij.imagej import fiji, locate


def test_imagej_is_a_package_and_a_function(session):
    import deepij.imagej.images  # importing a submodule must not replace the callable

    assert isinstance(deepij.imagej, types.ModuleType)
    assert deepij.imagej() is session and deepij.imagej.get_session() is session
    assert deepij.imagej.current_session() is session
    assert session.mode == "embedded" and session.ij_jar == locate.find_ij_jar()
    assert session.version.startswith("1.")
    assert callable(deepij.attach) and callable(deepij.run_macro)
    assert "embedded" in repr(session)


def test_settings_that_differ_from_the_running_session_are_refused(session):
    with pytest.raises(ImageJError, match=r"already running in this process with other settings: headless="):
        deepij.imagej(headless=True)
    with pytest.raises(ImageJError, match=r"JVM options \['-Xmx2048m'\]"):
        deepij.imagej(max_memory="2g")
    assert deepij.imagej(headless=False) is session  # the same settings are fine


def test_bad_arguments_are_named(session, tmp_path):
    with pytest.raises(ArgumentError, match=r"ij_jar argument: ImageJ jar '.*nope\.jar' does not exist"):
        deepij.imagej(tmp_path / "nope.jar")
    with pytest.raises(ArgumentError, match="ij_jar and fiji were both given"):
        deepij.imagej(locate.find_ij_jar(), fiji=tmp_path)
    with pytest.raises(ArgumentError, match=r"fiji argument: .* is not a Fiji\.app: it has no jars/ folder"):
        deepij.imagej(fiji=tmp_path)
    with pytest.raises(ArgumentError, match="contradict"):
        deepij.imagej(headless=True, virtual_display=True)
    with pytest.raises(ArgumentError, match="max_memory: cannot read 'lots' as a memory size"):
        deepij.imagej(max_memory="lots")


@pytest.mark.parametrize("arguments, names", [
    ({"headless": "yes"}, r"headless: expected True, False or None, found 'yes' \(str\)"),
    ({"virtual_display": 1}, r"virtual_display: expected True, False or None, found 1 \(int\)"),
    ({"jvm_options": "-Xmx2g"}, r"jvm_options: expected a list of strings"),
    ({"jvm_options": ["-Xss4m", 5]}, r"jvm_options: expected a list of strings"),
    ({"jvm_options": 7}, r"jvm_options: expected a list of strings"),
    ({"max_memory": [8]}, r"max_memory: expected a size such as '2GB'"),
    ({"max_memory": True}, r"max_memory: expected a size"),
    ({"ij_jar": 3}, r"ij_jar: expected a path"),
    ({"fiji": 3.5}, r"fiji: expected a path"),
])
def test_arguments_of_the_wrong_type_are_named(session, arguments, names):
    with pytest.raises(ArgumentTypeError, match=names) as caught:
        deepij.imagej(**arguments)
    assert isinstance(caught.value, TypeError) and isinstance(caught.value, deepij.DeepijError)


def test_a_fiji_folder_conflicts_with_the_running_embedded_imagej(session, tmp_path):
    for name in ("ij-1.54f.jar", "imagej-2.14.0.jar", "imagej-legacy-1.2.1.jar"):
        (tmp_path / "jars").mkdir(exist_ok=True)
        (tmp_path / "jars" / name).write_bytes(b"")
    with pytest.raises(ImageJError, match=r"fiji=.* \(running: embedded ImageJ\)"):
        deepij.imagej(fiji=tmp_path)


def test_attach_refuses_what_is_not_a_legacy_gateway(session):
    with pytest.raises(ImageJError, match="already has an ImageJ session"):
        deepij.attach(object())
    with pytest.raises(ImageJError, match=r"expected a pyimagej gateway .* found object"):
        fiji.check_gateway(object())

    # A real pyimagej gateway needs ImageJ2, which these machines cannot have: this stand-in only exercises
    # deepij's check of the legacy layer (the one branch that needs a gateway-shaped object).
    class InactiveLegacy:
        def isActive(self):
            return False

    class GatewayWithoutLegacy:
        def getContext(self):
            return None

        def legacy(self):
            return InactiveLegacy()

    with pytest.raises(ImageJError, match=r"ImageJ 1\.x layer is not active"):
        fiji.check_gateway(GatewayWithoutLegacy())


def test_fiji_without_pyimagej_fails_before_any_jvm_starts(run_python, tmp_path):
    for name in ("ij-1.54f.jar", "imagej-2.14.0.jar", "imagej-legacy-1.2.1.jar"):
        (tmp_path / "jars").mkdir(exist_ok=True)
        (tmp_path / "jars" / name).write_bytes(b"")
    done = run_python(f"""
        import importlib.util, json, jpype, deepij
        from deepij.errors import ImageJError
        out = {{"pyimagej": importlib.util.find_spec("imagej") is not None}}
        try:
            deepij.imagej(fiji={str(tmp_path)!r})
        except ImageJError as error:
            out["error"] = str(error)
        try:
            deepij.attach(object())
        except ImageJError as error:
            out["attach"] = str(error)
        out["jvm"] = jpype.isJVMStarted()
        print("RESULT " + json.dumps(out))
    """, env={"DEEPIJ_FIJI": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.split("RESULT ", 1)[1])
    if out["pyimagej"]:
        pytest.skip("pyimagej is installed here: the missing-pyimagej path cannot be seen")
    assert "needs pyimagej" in out["error"] and "deepij[fiji]" in out["error"]
    assert "expected a pyimagej gateway" in out["attach"]
    assert out["jvm"] is False


EXIT_SCRIPT = """
    import threading, time
    import deepij
    session = deepij.imagej()
    session.run_macro('newImage("s", "32-bit random", 128, 128, 6);\\n'
                      'run("Gaussian Blur 3D...", "x=2 y=2 z=2");\\n'
                      'setBatchMode(false);\\nnewImage("shown", "8-bit", 32, 32, 1);')
    # a macro that never ends, on a thread of its own: exit must not wait for it
    threading.Thread(target=lambda: session.run_macro("while (true) { wait(10); }"), daemon=True).start()
    time.sleep(0.5)
    print("GUARD", session.virtual_display.guard_pid, flush=True)
"""


def test_interpreter_exits_promptly_and_takes_its_display_along(run_python):
    started = time.monotonic()
    done = run_python(EXIT_SCRIPT, timeout=60, env={"DISPLAY": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    guard = int(done.stdout.split("GUARD ", 1)[1].split()[0])
    assert time.monotonic() - started < 30
    deadline = time.monotonic() + 5
    while psutil.pid_exists(guard) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not psutil.pid_exists(guard) or psutil.Process(guard).status() == psutil.STATUS_ZOMBIE


def test_faulthandler_turned_off_after_the_jvm_started_does_not_crash_it(run_python):
    # pytest turns faulthandler on before the JVM starts and off at its end, which put back the SIGSEGV
    # handler from before the JVM: the JVM, which relies on that signal, then died at exit (exit status 139
    # after a passing test run). Java work enough for the JIT and a few garbage collections, then exit.
    done = run_python("""
        import faulthandler
        faulthandler.enable()
        import deepij, jpype
        session = deepij.imagej()
        faulthandler.disable()
        system = jpype.JClass("java.lang.System")
        for _ in range(200):
            session.run_macro('newImage("a", "32-bit", 256, 256, 1); run("Gaussian Blur...", "sigma=2");')
            system.gc()
        print("done", flush=True)
    """, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "done", (done.returncode, done.stderr[-2000:])


def test_a_handler_stuck_past_its_macros_time_limit_does_not_keep_the_process_alive(run_python):
    # a handler in one long C call (no Python bytecode to stop it at) outlives its stopped run; the process
    # must still end when its script does (it once waited for the handler, removing ImageJ's listener)
    # (stopped once the handler runs, as a time limit stops it, so that nothing depends on speed)
    done = run_python("""
        import threading, time
        import deepij
        from deepij.errors import MacroTimeoutError

        session = deepij.imagej()
        entered = threading.Event()

        def sleep(call):
            entered.set()
            time.sleep(600)

        def stop_when_entered():
            entered.wait(120)
            session.runner.fail_current(MacroTimeoutError("the macro ran past its time limit of 1 s"))

        session.commands.register("Deepij Test Sleep", sleep)
        threading.Thread(target=stop_when_entered, daemon=True).start()
        try:
            session.run_macro('run("Deepij Test Sleep");')
        except MacroTimeoutError as error:
            print("TIMEOUT", error, flush=True)
    """, timeout=240, env={"DISPLAY": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "TIMEOUT macro, line 1: the macro ran past its time limit of 1 s" in done.stdout
    assert "command listener is left in place at exit" in done.stderr


def test_explicit_shutdown_is_final(run_python):
    done = run_python("""
        import json, deepij
        from deepij.errors import ImageJError
        session = deepij.imagej()
        session.run_macro('print("x");')
        deepij.imagej.shutdown()
        out = {"xvfb_running": session.virtual_display.running, "closed": session.closed}
        for name, call in {"start": deepij.imagej, "run": lambda: session.run_macro("x=1;")}.items():
            try:
                call()
            except ImageJError as error:
                out[name] = str(error)
        print("RESULT " + json.dumps(out))
    """, env={"DISPLAY": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.split("RESULT ", 1)[1])
    assert out["xvfb_running"] is False and out["closed"] is True
    assert "cannot start again" in out["start"] and "was shut down" in out["run"]
