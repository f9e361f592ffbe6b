"""Java pre/post-processing steps of bundles, run in the real ImageJ (deepij.imagej.java_steps).

The steps are real Java classes written in tests/support/java.py, compiled with javac against ij.jar and
deepImageJ's interfaces, and zipped into jars as bundle authors do. Expected values come from numpy on
hand-made images (rectangles of known areas and centroids), never from the code under test.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import zipfile

import numpy as np
import pytest

from deepij.errors import ArgumentError, ArgumentTypeError, ImageJError, StepError
from deepij.imagej import java_steps, locate
from deepij.imagej.java_steps import class_file_name, interfaces_jar, run_java_step
from support.java import compile_steps, pack_jar

STEPS = ["org.example.seg.ThresholdMeasure", "ScaleFromConfig", "org.example.check.CheckBitDepth",
         "org.example.seg.FailingPost", "org.example.ui.ShowsMessage", "org.example.ui.AsksUser",
         "org.example.slow.Sleeps", "org.example.lib.Gain", "org.example.seg.UsesLibrary"]
#: (x0, y0, width, height) of the objects in the probability map
RECTANGLES = [(4, 6, 10, 5), (30, 3, 7, 12), (12, 40, 20, 9)]


@pytest.fixture(scope="module")
def classes(tmp_path_factory, imagej_session):
    """The steps compiled against deepij's interfaces jar (one javac run for the module)."""
    return compile_steps(tmp_path_factory.mktemp("java") / "classes", STEPS)


@pytest.fixture
def jar(classes, tmp_path):
    """``jar("a.jar", class, ...)``: a new jar of those classes in this test's folder."""
    return lambda name, *class_names: pack_jar(classes, list(class_names), tmp_path / name)


def probability_map() -> np.ndarray:
    rng = np.random.default_rng(7)
    image = rng.uniform(0.0, 0.45, (56, 48)).astype("float32")  # rows, cols
    for x0, y0, width, height in RECTANGLES:
        image[y0:y0 + height, x0:x0 + width] = rng.uniform(0.55, 1.0, (height, width))
    return image


# ------------------------------------------------------------------------------------- interfaces jar
def test_processing_jar_is_on_imagej_class_path_and_current(session):
    import jpype

    jar = java_steps.processing_jar(build=False)
    with zipfile.ZipFile(jar) as archive:
        names = set(archive.namelist())
    assert {"deepimagej/processing/PreProcessingInterface.class",
            "deepimagej/processing/PostProcessingInterface.class"} <= names
    sources = sorted((java_steps.JAVA_SOURCES_DIR).rglob("*.java"), key=lambda p: p.as_posix())
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()
    assert jar.with_name(jar.name + ".sha256").read_text().strip() == digest
    class_path = str(jpype.JClass("java.lang.System").getProperty("java.class.path")).split(os.pathsep)
    assert str(jar) in class_path
    interface = jpype.JClass("java.lang.Class").forName("deepimagej.processing.PostProcessingInterface")
    assert [str(m.getName()) for m in interface.getMethods()] != []
    assert str(interface.getProtectionDomain().getCodeSource().getLocation().getPath()) == str(jar)


def test_processing_jar_built_when_missing_and_only_then(tmp_path, monkeypatch):
    target = tmp_path / "build" / "deepij-processing.jar"
    monkeypatch.setattr(interfaces_jar, "PROCESSING_JAR", target)
    monkeypatch.setattr(interfaces_jar, "_STAMP", target.with_name(target.name + ".sha256"))
    with pytest.raises(ImageJError, match=r"run scripts/setup\.sh"):
        java_steps.processing_jar(build=False)
    built = java_steps.processing_jar()
    with zipfile.ZipFile(built) as archive:
        names = archive.namelist()
    assert names[0] == "META-INF/MANIFEST.MF"
    pre = [n for n in names if n.endswith("PreProcessingInterface.class")]
    assert pre == ["deepimagej/processing/PreProcessingInterface.class"]
    with zipfile.ZipFile(built) as archive:
        major = int.from_bytes(archive.read(pre[0])[6:8], "big")
    assert major == 52  # Java 8 class files: Fiji installations still run Java 8
    first = built.stat().st_mtime_ns
    assert java_steps.processing_jar().stat().st_mtime_ns == first  # up to date: not rebuilt
    target.with_name(target.name + ".sha256").write_text("stale\n")
    java_steps.processing_jar()
    assert target.with_name(target.name + ".sha256").read_text().strip() != "stale"


def test_processing_jar_without_javac_says_how_to_get_it(tmp_path, monkeypatch):
    target = tmp_path / "deepij-processing.jar"
    monkeypatch.setattr(interfaces_jar, "PROCESSING_JAR", target)
    monkeypatch.setattr(interfaces_jar, "_STAMP", target.with_name(target.name + ".sha256"))
    # a Java home with a JVM but no compiler (a JRE), and nothing on PATH
    real = locate.find_libjvm(locate.find_java_home())
    jre = tmp_path / "jre"
    (jre / "lib" / "server").mkdir(parents=True)
    (jre / "lib" / "server" / "libjvm.so").symlink_to(real)
    monkeypatch.setenv("JAVA_HOME", str(jre))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ImageJError, match=r"no javac.*apt-get install openjdk-17-jdk"):
        java_steps.processing_jar()
    assert not target.exists()
    assert java_steps.startup_classpath() == []  # ImageJ still starts, without Java steps


# ------------------------------------------------------------------------------------- running steps
def test_post_step_thresholds_and_measures_objects(session, jar):
    image = probability_map()
    out = run_java_step(session, jar("post.jar", "org.example.seg.ThresholdMeasure"), None, "post",
                        {"output": image})
    assert set(out) == {"mask", "objects"}
    mask = session.to_xarray(out["mask"]).values
    np.testing.assert_array_equal(mask, np.where(image > 0.5, 255, 0).astype("uint8"))
    objects = session.to_dataframe(out["objects"]).sort_values("Area")
    expected = sorted((w * h, x0 + w / 2, y0 + h / 2) for x0, y0, w, h in RECTANGLES)
    np.testing.assert_allclose(objects[["Area", "X", "Y"]].to_numpy(), np.array(expected))


def test_pre_step_gets_absolute_config_files_and_scales(session, jar, tmp_path, monkeypatch):
    (tmp_path / "scale.txt").write_text("// parameters of the pre-processing\nscale=2.5\n")
    (tmp_path / "notes.md").write_text("not a config\n")
    monkeypatch.chdir(tmp_path)
    image = np.arange(12 * 9, dtype="uint16").reshape(12, 9)
    imp = session.to_imageplus(image, title="input")
    out = run_java_step(session, jar("pre.jar", "ScaleFromConfig"), "ScaleFromConfig", "pre",
                        {"input": imp}, config_files=["scale.txt", tmp_path / "notes.md"])
    np.testing.assert_allclose(session.to_xarray(out["input"]).values, image.astype("float32") * 2.5)
    received = str(out["input"].getProperty("config_files")).split("\n")
    assert received == [str(tmp_path / "scale.txt"), str(tmp_path / "notes.md")]
    assert session.to_xarray(imp).dtype == np.uint16  # the input image itself is left as it was


def test_class_loader_is_kept_until_the_jar_changes(session, jar, tmp_path):
    (tmp_path / "scale.txt").write_text("scale=1\n")
    step = jar("reuse.jar", "ScaleFromConfig")

    def instances() -> str:
        out = run_java_step(session, step, None, "pre", {"input": np.ones((4, 4), "float32")},
                            config_files=[tmp_path / "scale.txt"])
        return str(out["input"].getProperty("instances"))

    # the class's static counter survives between calls only if its class is not loaded again
    assert [instances(), instances()] == ["1", "2"]
    jar("reuse.jar", "ScaleFromConfig")  # rebuilt: a new file
    later = step.stat().st_mtime_ns + 1_000_000_000
    os.utime(step, ns=(later, later))
    assert [instances(), instances()] == ["1", "2"]


def test_jar_compiled_against_deepimagej_links_against_ours(session, tmp_path):
    # compiled against deepImageJ's interface declarations, which the jar also packs, as some authors did
    both = ["org.example.seg.ThresholdMeasure", "ScaleFromConfig"]
    classes = compile_steps(tmp_path / "classes", both, against="deepimagej")
    step = pack_jar(classes, both, tmp_path / "bundle.jar", with_interfaces=True)
    (tmp_path / "scale.txt").write_text("scale=0.5\n")
    image = probability_map()
    pre = run_java_step(session, step, None, "pre", {"input": image}, [tmp_path / "scale.txt"])
    scaled = session.to_xarray(pre["input"]).values
    np.testing.assert_allclose(scaled, image * 0.5, rtol=1e-6)
    post = run_java_step(session, step, None, "post", {"output": image})
    assert len(session.to_dataframe(post["objects"])) == len(RECTANGLES)


def test_old_style_step_gets_its_config_file_through_set_config_file(session, tmp_path):
    classes = compile_steps(tmp_path / "classes", ["org.example.old.OldStylePost"], against="deepimagej-2.0")
    step = pack_jar(classes, ["org.example.old.OldStylePost"], tmp_path / "old.jar")
    config = tmp_path / "postprocessing_config.ijm"
    config.write_text("// threshold=0.5\n")
    out = run_java_step(session, step, "org.example.old.OldStylePost", "post",
                        {"output": np.zeros((4, 4), "float32")}, config_files=[config])
    assert str(out["output"].getProperty("config_file")) == str(config)


def test_class_name_without_package_and_named_method(session, jar):
    step = jar("named.jar", "org.example.seg.ThresholdMeasure", "org.example.seg.FailingPost")
    image = probability_map()
    out = run_java_step(session, step, "ThresholdMeasure", "post", {"output": image},
                        method="deepimagejPostprocessing")
    assert len(session.to_dataframe(out["objects"])) == len(RECTANGLES)
    with pytest.raises(StepError, match=r"no public method postprocess\(HashMap\)"):
        run_java_step(session, step, "ThresholdMeasure", "post", {"output": image}, method="postprocess")


def test_library_jar_among_config_files_is_on_the_step_class_path(session, jar):
    step = jar("step.jar", "org.example.seg.UsesLibrary")
    library = jar("gain-lib.jar", "org.example.lib.Gain")
    image = np.arange(6, dtype="float32").reshape(2, 3)
    with pytest.raises(StepError, match=r"NoClassDefFoundError: org/example/lib/Gain"):
        run_java_step(session, step, None, "pre", {"input": image})
    out = run_java_step(session, step, None, "pre", {"input": image}, config_files=[library])
    np.testing.assert_allclose(session.to_xarray(out["input"]).values, image * len("input"))


def test_interfaces_from_deepij_jar_when_imagej_class_path_lacks_them(run_python, classes, tmp_path):
    # A Fiji without deepImageJ, or an adopted gateway, has no interfaces on ImageJ's class path; the
    # start-up here leaves deepij's jar off the class path to be in that situation (headless: faster).
    step = pack_jar(classes, ["org.example.check.CheckBitDepth"], tmp_path / "check.jar")
    done = run_python(f"""
        import jpype, numpy as np
        from deepij.imagej import java_steps
        java_steps.startup_classpath = lambda ij_jar=None: []
        import deepij
        session = deepij.imagej(headless=True)
        try:
            jpype.JClass("java.lang.Class").forName("deepimagej.processing.PreProcessingInterface")
            print("on the class path")
        except Exception as error:
            print("not on the class path:", type(error).__name__)
        out = java_steps.run_java_step(session, {str(step)!r}, None, "pre",
                                       {{"input": np.ones((3, 3), "float32")}})
        print("bit depth", out["input"].getBitDepth())
        try:
            java_steps.run_java_step(session, {str(step)!r}, None, "pre",
                                     {{"input": np.ones((3, 3), "uint8")}})
        except deepij.errors.StepError as error:
            print("error:", error)
    """, timeout=180)
    assert done.returncode == 0, done.stderr
    assert "not on the class path: java.lang.ClassNotFoundException" in done.stdout
    assert "bit depth 32" in done.stdout
    assert "found a 8-bit image" in done.stdout


def test_folder_and_class_files(session, classes, tmp_path):
    image = np.full((5, 6), 3, "float32")
    checked = run_java_step(session, classes, "org.example.check.CheckBitDepth", "pre", {"input": image})
    np.testing.assert_array_equal(session.to_xarray(checked["input"]).values, image)
    packaged = classes / "org" / "example" / "check" / "CheckBitDepth.class"
    assert class_file_name(packaged.read_bytes()) == "org.example.check.CheckBitDepth"
    run_java_step(session, packaged, None, "pre", {"input": image})
    (tmp_path / "scale.txt").write_text("scale=3\n")
    out = run_java_step(session, classes / "ScaleFromConfig.class", None, "pre", {"input": image},
                        [tmp_path / "scale.txt"])
    np.testing.assert_allclose(session.to_xarray(out["input"]).values, image * 3)
    misplaced = tmp_path / "CheckBitDepth.class"
    misplaced.write_bytes(packaged.read_bytes())
    with pytest.raises(StepError, match=r"only from <folder>/org/example/check/CheckBitDepth\.class"):
        run_java_step(session, misplaced, None, "pre", {"input": image})


# ------------------------------------------------------------------------------------- failures
def test_error_message_of_the_step_becomes_step_error(session, jar):
    step = jar("check.jar", "org.example.check.CheckBitDepth")
    with pytest.raises(StepError) as caught:
        run_java_step(session, step, None, "pre", {"input": np.zeros((4, 4), "uint8")})
    text = str(caught.value)
    assert "check.jar" in text and "org.example.check.CheckBitDepth" in text
    assert "the model needs a 32-bit image, found a 8-bit image" in text
    out = run_java_step(session, step, None, "pre", {"input": np.zeros((4, 4), "float32")})
    assert out["input"].getBitDepth() == 32


def test_java_exception_becomes_step_error_with_stack_and_imagej_keeps_working(session, jar):
    step = jar("failing.jar", "org.example.seg.FailingPost")
    with pytest.raises(StepError) as caught:
        run_java_step(session, step, None, "post", {"output": probability_map()})
    text = str(caught.value)
    assert "failing.jar: org.example.seg.FailingPost" in text
    assert "java.lang.IllegalStateException: no objects above the threshold in 'output'" in text
    assert "at org.example.seg.FailingPost.countObjects(FailingPost.java" in text
    assert "org.jpype" not in text  # the stack stops where the step's code starts
    result = session.run_macro('run("Add...", "value=1");', np.zeros((3, 3), "float32"))
    np.testing.assert_array_equal(result.image.values, np.ones((3, 3), "float32"))
    again = run_java_step(session, jar("post.jar", "org.example.seg.ThresholdMeasure"), None, "post",
                          {"output": probability_map()})
    assert len(session.to_dataframe(again["objects"])) == len(RECTANGLES)


@pytest.mark.parametrize("case, stage, class_name, pattern", [
    ("missing", "pre", None, r"does not exist"),
    ("not a zip", "pre", None, r"is not a jar"),
    ("no implementation", "post", None,
     r"no class implements deepimagej\.processing\.PostProcessingInterface.*"
     r"org\.example\.check\.CheckBitDepth"),
    ("several", "post", None,
     r"several classes implement .*org\.example\.seg\.(ThresholdMeasure|FailingPost), "
     r"org\.example\.seg\.(ThresholdMeasure|FailingPost)"),
    ("wrong interface", "post", "org.example.check.CheckBitDepth",
     r"CheckBitDepth does not implement deepimagej\.processing\.PostProcessingInterface \(it implements "
     r"deepimagej\.processing\.PreProcessingInterface"),
    ("unknown class", "post", "org.example.Nope", r"cannot load class 'org\.example\.Nope'"),
])
def test_code_that_cannot_be_loaded(session, jar, tmp_path, case, stage, class_name, pattern):
    paths = {
        "missing": tmp_path / "absent.jar",
        "not a zip": tmp_path / "broken.jar",
        "no implementation": jar("pre-only.jar", "org.example.check.CheckBitDepth"),
        "several": jar("two.jar", "org.example.seg.ThresholdMeasure", "org.example.seg.FailingPost"),
        "wrong interface": jar("pre-only.jar", "org.example.check.CheckBitDepth"),
        "unknown class": jar("pre-only.jar", "org.example.check.CheckBitDepth"),
    }
    (tmp_path / "broken.jar").write_bytes(b"<html>404 Not Found</html>")
    with pytest.raises(StepError, match=pattern) as caught:
        run_java_step(session, paths[case], class_name, stage, {"input": np.zeros((4, 4), "float32")})
    assert paths[case].name in str(caught.value)


def test_bad_arguments(session, jar, tmp_path):
    step = jar("check.jar", "org.example.check.CheckBitDepth")
    image = np.zeros((4, 4), "float32")
    with pytest.raises(ArgumentError, match="stage: expected 'pre' or 'post', found 'middle'"):
        run_java_step(session, step, None, "middle", {"input": image})  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match="tensors: expected a mapping"):
        run_java_step(session, step, None, "pre", [image])  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match=r"tensors\['input'\]: expected an ij.ImagePlus.*found str"):
        run_java_step(session, step, None, "pre", {"input": "image.tif"})
    with pytest.raises(StepError, match=r"config file .*absent\.txt.* does not exist"):
        run_java_step(session, step, None, "pre", {"input": image}, [tmp_path / "absent.txt"])
    with pytest.raises(ArgumentTypeError, match="config_files: expected a list of paths"):
        run_java_step(session, step, None, "pre", {"input": image}, "scale.txt")


# ------------------------------------------------------------------------------------- windows, threads
def test_message_box_is_answered_and_logged(session, jar, caplog):
    image = np.zeros((4, 4), "float32")
    with caplog.at_level(logging.WARNING, logger="deepij.imagej"):
        out = run_java_step(session, jar("message.jar", "org.example.ui.ShowsMessage"), None, "post",
                            {"output": image})
    assert set(out) == {"output"}
    assert "Objects counted: 1" in caplog.text


def test_dialog_waiting_for_input_fails_the_step(session, jar):
    with pytest.raises(StepError, match=r"AsksUser.*waits for user input.*'Normalization'"):
        run_java_step(session, jar("asks.jar", "org.example.ui.AsksUser"), None, "pre",
                      {"input": np.zeros((4, 4), "float32")})
    result = session.run_macro("return 'still here';")
    assert result.value == "still here"


def test_time_limit_stops_a_step(session, jar):
    step = jar("sleeps.jar", "org.example.slow.Sleeps")
    with pytest.raises(StepError, match=r"ran past its time limit of 0\.5 s"):
        run_java_step(session, step, None, "pre", {"input": np.zeros((4, 4), "float32")}, timeout=0.5)
    out = run_java_step(session, jar("check.jar", "org.example.check.CheckBitDepth"), None, "pre",
                        {"input": np.zeros((4, 4), "float32")})
    assert set(out) == {"input"}


def test_step_waits_for_a_running_macro(session, jar):
    started, finished = threading.Event(), threading.Event()
    session.commands.register("Java Steps Test Started", lambda call: started.set())
    try:
        def macro() -> None:
            session.run_macro('run("Java Steps Test Started"); wait(1500);', timeout=60)
            finished.set()

        thread = threading.Thread(target=macro)
        thread.start()
        assert started.wait(60)
        run_java_step(session, jar("check.jar", "org.example.check.CheckBitDepth"), None, "pre",
                      {"input": np.zeros((4, 4), "float32")})
        assert finished.is_set()  # the step could only start once the macro was done
        thread.join(60)
    finally:
        session.commands.unregister("Java Steps Test Started")


def test_step_from_a_command_handler_inside_a_macro(session, jar, tmp_path):
    # what run("DeepImageJ Run", ...) does when a bundle has a Java step: it runs on the macro's thread
    (tmp_path / "scale.txt").write_text("scale=4\n")
    step = jar("pre.jar", "ScaleFromConfig")

    def handler(call) -> None:
        out = run_java_step(call.session, step, None, "pre", {"input": call.image},
                            [tmp_path / "scale.txt"])
        call.show(out["input"], title="scaled")

    session.commands.register("Java Steps Test Scale", handler)
    try:
        image = np.arange(20, dtype="float32").reshape(4, 5)
        result = session.run_macro('run("Java Steps Test Scale");', image, timeout=60)
    finally:
        session.commands.unregister("Java Steps Test Scale")
    np.testing.assert_allclose(result.images["scaled"].values, image * 4)
