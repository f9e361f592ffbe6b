"""The ``config.deepimagej`` section (any descriptor version): tiling flags, TF keys, ImageJ steps."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from deepij.bundle.description import DeepImageJConfig, ImageJStep
from deepij.bundle.readers._node import Node
from deepij.bundle.readers.common import clean_path

DEFAULT_TF_TAG = "serve"
DEFAULT_TF_SIGNATURE = "serving_default"

# TF1 Python constant names that model.yaml files carry instead of the values.
_TF_CONSTANTS = {
    "tag_constants.serving": "serve",
    "saved_model.serving": "serve",
    "tag_constants.training": "train",
    "saved_model.training": "train",
    "tag_constants.gpu": "gpu",
    "tag_constants.tpu": "tpu",
    "signature_constants.default_serving_signature_def_key": "serving_default",
    "saved_model.default_serving_signature_def_key": "serving_default",
}
_TAG_KEYS = ("tensorflow_model_tag", "model_tag", "tensorflow_tag", "tag")
# "siganture" is what deepImageJ 2.x wrote; the other spellings are seen in hand-edited files.
_SIGNATURE_KEYS = (
    "tensorflow_siganture_def",
    "tensorflow_signature_def",
    "signature_definition",
    "tensorflow_signature",
    "signature_def",
)
MACRO_SUFFIXES = (".ijm", ".txt", ".macro")
JAVA_SUFFIXES = (".jar", ".class")
_MACRO_SPEC = "ij.IJ::runMacroFile"
# What deepImageJ 2.0/2.1 wrote after "::" for its own Java steps; it always called the interface's method.
_INTERFACE_LABELS = frozenset({"preprocessingroutineusingimage", "postprocessingroutineusingimage"})
_INTERPRETED = ("pyramidal_model", "allow_tiling", "model_keys", "test_information", "prediction")


def resolve_tf_constant(value: str | None, default: str) -> str:
    """A raw TF tag/signature value from what a descriptor wrote.

    Examples
    --------
    >>> resolve_tf_constant("tf.saved_model.tag_constants.SERVING", "serve")
    'serve'
    >>> resolve_tf_constant("my_signature", "serving_default")
    'my_signature'
    """
    if value is None or not str(value).strip() or str(value).strip().lower() in ("null", "none"):
        return default
    text = str(value).strip()
    lowered = text.lower()
    for suffix, raw in _TF_CONSTANTS.items():
        if lowered.endswith(suffix):
            return raw
    if lowered.startswith("tf."):  # an unknown TF constant name: deepImageJ falls back the same way
        return default
    return text


def read_deepimagej(config: Node) -> DeepImageJConfig:
    """``config.deepimagej`` -> :class:`DeepImageJConfig` (defaults when the section is absent)."""
    section = config.get("deepimagej")
    if not section.present:
        return DeepImageJConfig()
    section.mapping()
    tag, signature = _read_model_keys(section.get("model_keys"))
    preprocess, postprocess = _read_prediction(section.get("prediction"))
    return DeepImageJConfig(
        pyramidal_model=section.get("pyramidal_model").boolean(False),
        allow_tiling=section.get("allow_tiling").boolean(True),
        tensorflow_tag=tag,
        tensorflow_signature=signature,
        preprocess=preprocess,
        postprocess=postprocess,
        test_information=dict(section.get("test_information").mapping(allow_missing=True)),
        extra={k: v for k, v in section.mapping().items() if k not in _INTERPRETED},
    )


def _read_model_keys(node: Node) -> tuple[str | None, str | None]:
    if not node.present:
        return None, None
    if not isinstance(node.value, dict):
        raise node.error("wrong type", found=node.value, expected="a mapping with tensorflow_model_tag, ...")
    tag = node.first_of(*_TAG_KEYS).text()
    signature = node.first_of(*_SIGNATURE_KEYS).text()
    return resolve_tf_constant(tag, DEFAULT_TF_TAG), resolve_tf_constant(signature, DEFAULT_TF_SIGNATURE)


def _read_prediction(node: Node) -> tuple[tuple[ImageJStep, ...], tuple[ImageJStep, ...]]:
    pre: list[ImageJStep] = []
    post: list[ImageJStep] = []
    for key, steps in node.items():
        # deepImageJ takes every key containing "preprocess"/"postprocess", in file order
        target = pre if "preprocess" in key else post if "postprocess" in key else None
        if target is None:
            continue
        for element in steps.elements(allow_scalar=True):
            target.extend(_read_step(element))
    return tuple(pre), tuple(post)


def _read_step(node: Node) -> list[ImageJStep]:
    """One ``{spec: ..., kwargs: ...}`` item -> zero or more steps.

    ``{spec: ij.IJ::runMacroFile, kwargs: [a.ijm, b.txt]}`` is one macro step per file. A spec naming a
    ``.jar``/``.class`` (``"File.jar Class::method"``, ``"File.jar Class"``, ``"File.jar"``) is one Java step
    whose ``kwargs`` are its config files, whatever their suffix (``config.ijm`` and ``.txt`` included).
    """
    if isinstance(node.value, str):
        return [_step_from_spec(node, node.value)]
    if not node.present:
        return []
    spec_node, kwargs_node = node.get("spec"), node.get("kwargs")
    spec = spec_node.text()
    files = kwargs_node.text_list()
    blank = spec is None or spec.strip().lower() in ("", "null", "none")
    if spec is not None and not blank and _named_file(spec, JAVA_SUFFIXES) is not None:
        return [_step_from_spec(spec_node, spec, tuple(clean_path(f) for f in files))]
    if files:
        call = spec.strip() if spec and not blank and spec.strip() != _MACRO_SPEC else None
        return [_step_for_file(kwargs_node, f, call) for f in files]
    if spec is None or blank:
        return []
    return [_step_from_spec(spec_node, spec)]


def _named_file(spec: str, suffixes: tuple[str, ...]) -> str | None:
    """The first word of ``spec`` that is a file with one of ``suffixes``."""
    return next((t for t in spec.split() if t.lower().endswith(suffixes)), None)


def _step_from_spec(node: Node, spec: str, config_files: tuple[str, ...] = ()) -> ImageJStep:
    """``"File.jar Class::method"`` (the call may be missing or partial), or a lone macro/jar file name."""
    file = _named_file(spec, JAVA_SUFFIXES + MACRO_SUFFIXES)
    if file is None:
        raise node.error(
            "processing step names no file",
            found=spec,
            expected="'File.jar Class::method', or {spec: ij.IJ::runMacroFile, kwargs: file.ijm}",
        )
    words = spec.split()
    words.remove(file)
    return _step_for_file(node, file, " ".join(words) or None, config_files)


def _step_for_file(node: Node, file: str, call: str | None, config_files: tuple[str, ...] = ()) -> ImageJStep:
    file = clean_path(file)
    suffix = PurePosixPath(file).suffix.lower()
    if suffix in MACRO_SUFFIXES:
        return ImageJStep(kind="macro", file=file)
    if suffix in JAVA_SUFFIXES:
        java_class, method = java_call(call)
        return ImageJStep("java", file, java_class, method, config_files)
    raise node.error(
        "unknown kind of processing file",
        found=file,
        expected="an ImageJ macro (.ijm, .txt) or Java processing (.jar, .class)",
    )


def java_call(call: str | None) -> tuple[str | None, str | None]:
    """The class and method a Java step's spec names after its file: ``"Class::method"``, ``"Class"``,
    ``"Class::"``, ``"::method"`` or nothing.

    deepImageJ 2.x wrote the class as Java prints a list (``"[Class]"``); a list of several classes (it
    listed every class of the bundle's steps) names none: deepImageJ itself takes the one class of the file
    implementing the stage's interface, and so does deepij. The labels its writers put after ``::``
    (``preProcessingRoutineUsingImage``, ``postProcessingRoutineUsingImage``) were never called by name:
    they mean the interface's method (None).

    Examples
    --------
    >>> java_call("my.pkg.Normalize::deepimagejPreprocessing")
    ('my.pkg.Normalize', 'deepimagejPreprocessing')
    >>> java_call("Normalize"), java_call(None)
    (('Normalize', None), (None, None))
    >>> java_call("[Normalize]::preProcessingRoutineUsingImage"), java_call("[Normalize, Threshold]")
    (('Normalize', None), (None, None))
    """
    if not call or not call.strip():
        return None, None
    names_text, _, label = call.rpartition("::") if "::" in call else (call, "", "")
    names = [n for n in re.split(r"[\s,\[\]]+", names_text) if n]
    java_class = names[0] if len(names) == 1 else None
    method = label.strip() or None
    return java_class, None if method is not None and method.lower() in _INTERFACE_LABELS else method
