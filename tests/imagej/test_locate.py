"""Finding ij.jar, Java and Fiji.app on disk (no JVM needed)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from deepij.errors import ArgumentError, ImageJError
from deepij.imagej import locate


@pytest.fixture
def no_env(monkeypatch, tmp_path):
    """Neither DEEPIJ_IJ_JAR nor DEEPIJ_FIJI; an empty jars/ folder instead of the repository's."""
    monkeypatch.delenv("DEEPIJ_IJ_JAR", raising=False)
    monkeypatch.delenv("DEEPIJ_FIJI", raising=False)
    empty = tmp_path / "repo-jars"
    empty.mkdir()
    monkeypatch.setattr(locate, "REPO_JARS_DIR", empty)
    return empty


def _jar(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(b"PK\x05\x06" + b"\0" * 18)  # an empty zip: only the lookup is under test
    return path


def test_lookup_order_argument_env_repo_system(no_env, tmp_path, monkeypatch):
    system = _jar(tmp_path / "usr-share-java", "ij.jar")
    monkeypatch.setattr(locate, "SYSTEM_IJ_JAR", system)
    assert locate.find_ij_jar() == system.resolve()

    _jar(no_env, "ij-1.52a.jar")
    newest = _jar(no_env, "ij-1.54f.jar")
    _jar(no_env, "imagej-legacy-1.0.jar")  # not an ImageJ 1.x jar name
    assert locate.find_ij_jar() == newest.resolve()

    from_env = _jar(tmp_path / "env", "my-ij.jar")
    monkeypatch.setenv("DEEPIJ_IJ_JAR", str(from_env))
    assert locate.find_ij_jar() == from_env.resolve()

    explicit = _jar(tmp_path / "explicit", "ij.jar")
    assert locate.find_ij_jar(explicit) == explicit.resolve()


def test_missing_explicit_or_env_jar_is_an_error_never_a_fallback(no_env, tmp_path, monkeypatch):
    # the argument is the caller's mistake (ArgumentError); the environment is a setting (ImageJError)
    with pytest.raises(ArgumentError, match=r"ij_jar argument: ImageJ jar '.*nothere\.jar' does not exist"):
        locate.find_ij_jar(tmp_path / "nothere.jar")
    monkeypatch.setenv("DEEPIJ_IJ_JAR", str(tmp_path / "gone.jar"))
    with pytest.raises(ImageJError, match=r"DEEPIJ_IJ_JAR: ImageJ jar .*gone.jar' does not exist"):
        locate.find_ij_jar()
    not_a_jar = tmp_path / "ij.txt"
    not_a_jar.write_text("x")
    with pytest.raises(ArgumentError, match=r"is not a .jar file"):
        locate.find_ij_jar(not_a_jar)


def test_a_linked_jar_keeps_its_folder(no_env, tmp_path):
    real = _jar(tmp_path / "elsewhere", "ij-1.54f.jar")
    link = tmp_path / "mine" / "ij.jar"
    link.parent.mkdir()
    link.symlink_to(real)
    # its folder's plugins/ are the ones ImageJ loads, so the link is not replaced by its target
    assert locate.find_ij_jar(link) == link


def test_a_jar_linked_into_the_repository_jars_keeps_that_folder(no_env, tmp_path):
    # what the missing-command advice suggests: link Debian's ij.jar into jars/, plugins into jars/plugins/
    real = _jar(tmp_path / "usr-share-java", "ij.jar")
    (no_env / "ij.jar").symlink_to(real)
    found = locate.find_ij_jar()
    assert found == no_env / "ij.jar" and found.parent / "plugins" == no_env / "plugins"


def test_no_jar_anywhere_says_how_to_get_one(no_env, tmp_path, monkeypatch):
    monkeypatch.setattr(locate, "SYSTEM_IJ_JAR", tmp_path / "absent" / "ij.jar")
    with pytest.raises(ImageJError, match=r"apt-get install libij-java"):
        locate.find_ij_jar()


def test_java_home_from_java_home_or_the_java_on_path(monkeypatch, tmp_path):
    real = locate.find_java_home()
    assert (real / "bin" / "java").exists()
    assert locate.find_libjvm(real).name == "libjvm.so"
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))  # no libjvm there: the java on PATH wins
    assert locate.find_java_home() == Path(shutil.which("java")).resolve().parent.parent
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ImageJError, match=r"no Java runtime found"):
        locate.find_java_home()


def _fake_fiji(root: Path) -> Path:
    for name in ("ij-1.54f.jar", "imagej-2.14.0.jar", "imagej-legacy-1.2.1.jar", "win64/native.jar",
                 "linux64/native.jar"):
        _jar(root / "jars" / Path(name).parent, Path(name).name)
    _jar(root / "plugins", "Some_Plugin.jar")
    return root


def test_fiji_folder_checks_name_what_is_missing(tmp_path):
    with pytest.raises(ArgumentError, match=r"fiji argument: .* does not exist"):
        locate.check_fiji_dir(tmp_path / "nowhere")
    file = tmp_path / "Fiji.app"
    file.write_text("")
    with pytest.raises(ArgumentError, match=r"is a file, not a folder"):
        locate.check_fiji_dir(file)
    empty = tmp_path / "Empty.app"
    empty.mkdir()
    with pytest.raises(ArgumentError, match=r"not a Fiji.app: it has no jars/ folder"):
        locate.check_fiji_dir(empty)
    partial = tmp_path / "Partial.app"
    _jar(partial / "jars", "ij-1.54f.jar")
    missing = r"missing jars/imagej-<version>\.jar, jars/imagej-legacy-\*\.jar"
    with pytest.raises(ArgumentError, match=missing):
        locate.check_fiji_dir(partial)


def test_fiji_folder_and_its_classpath(tmp_path, monkeypatch):
    fiji = _fake_fiji(tmp_path / "Fiji.app")
    assert locate.check_fiji_dir(fiji) == fiji.resolve()
    names = {p.relative_to(fiji).as_posix() for p in locate.fiji_classpath(fiji)}
    assert names == {"jars/ij-1.54f.jar", "jars/imagej-2.14.0.jar", "jars/imagej-legacy-1.2.1.jar",
                     "jars/linux64/native.jar", "plugins/Some_Plugin.jar"}
    monkeypatch.delenv("DEEPIJ_FIJI", raising=False)
    assert locate.find_fiji_dir(None) is None
    monkeypatch.setenv("DEEPIJ_FIJI", str(tmp_path / "missing"))
    with pytest.raises(ImageJError, match=r"DEEPIJ_FIJI: .*missing' does not exist"):
        locate.find_fiji_dir(None)
    monkeypatch.setenv("DEEPIJ_FIJI", os.fspath(fiji))
    assert locate.find_fiji_dir(None) == fiji.resolve()
