"""The ``config.deepimagej`` section (any descriptor version): tiling flags, TF keys, ImageJ steps."""

from __future__ import annotations

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
    """One ``{spec: ..., kwargs: ...}`` item -> zero or more steps."""
    if isinstance(node.value, str):
        return [_java_or_macro_from_spec(node, node.value)]
    if not node.present:
        return []
    spec = node.get("spec").text()
    files = node.get("kwargs").text_list()
    if files:
        call = spec.strip() if spec and spec.strip() != _MACRO_SPEC else None
        return [_step_for_file(node.get("kwargs"), f, call) for f in files]
    if spec is None or spec.strip().lower() in ("", "null", "none"):
        return []
    return [_java_or_macro_from_spec(node.get("spec"), spec)]


def _java_or_macro_from_spec(node: Node, spec: str) -> ImageJStep:
    """``"File.jar Class::method"``, or a lone macro/jar file name."""
    tokens = spec.split()
    file = next((t for t in tokens if t.lower().endswith(JAVA_SUFFIXES + MACRO_SUFFIXES)), None)
    if file is None:
        raise node.error(
            "processing step names no file",
            found=spec,
            expected="'File.jar Class::method', or {spec: ij.IJ::runMacroFile, kwargs: file.ijm}",
        )
    call = next((t for t in tokens if "::" in t), None)
    return _step_for_file(node, file, call)


def _step_for_file(node: Node, file: str, call: str | None) -> ImageJStep:
    file = clean_path(file)
    suffix = PurePosixPath(file).suffix.lower()
    if suffix in MACRO_SUFFIXES:
        return ImageJStep(kind="macro", file=file)
    if suffix in JAVA_SUFFIXES:
        java_class, _, method = call.partition("::") if call else (None, "", None)
        return ImageJStep(kind="java", file=file, java_class=java_class or None, method=method or None)
    raise node.error(
        "unknown kind of processing file",
        found=file,
        expected="an ImageJ macro (.ijm, .txt) or Java processing (.jar, .class)",
    )
