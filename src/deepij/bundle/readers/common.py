"""Parts every descriptor version shares: metadata, weights, processing ops, file references."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from deepij.bundle.description import (
    AXIS_LETTERS,
    DATA_TYPES,
    MAX_AXIS_SIZE,
    WEIGHTS_FORMATS,
    ArchitectureSpec,
    Citation,
    Person,
    ProcessingOp,
    WeightsEntry,
)
from deepij.bundle.readers._node import Node
from deepij.errors import BundleError

WEIGHTS_ALIASES = {"pytorch_script": "torchscript"}
"""Older names of weights formats -> canonical name."""

_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_FRAMEWORK_VERSION_KEYS = ("pytorch_version", "tensorflow_version")
_AXIS_KWARGS = ("axes", "axis")
_INSTANCE_OPS = ("stardist_postprocessing", "cellpose_flow_dynamics", "custom")

METADATA_KEYS = (
    "format_version",
    "type",
    "name",
    "description",
    "id",
    "version",
    "authors",
    "maintainers",
    "cite",
    "license",
    "documentation",
    "tags",
    "covers",
    "attachments",
    "config",
    "weights",
    "inputs",
    "outputs",
)


def clean_path(path: str) -> str:
    """A bundle-relative path without a leading ``./`` (URLs unchanged).

    Examples
    --------
    >>> clean_path("./exampleImage.tif"), clean_path("https://x.org/a.zip")
    ('exampleImage.tif', 'https://x.org/a.zip')
    """
    path = path.strip()
    if "://" in path:
        return path
    path = path.replace("\\", "/")
    while path.startswith("./"):
        path = path[2:]
    return path


def file_reference(node: Node) -> str | None:
    """A file given as text, or as a 0.5 file description ``{source: ..., sha256: ...}``; None when absent.
    A path that names no file (``./``) is a :class:`BundleError`."""
    if not node.present:
        return None
    if isinstance(node.value, dict):
        node = node.required("source", "a file path or URL")
    path = clean_path(node.required_text("a file path or URL"))
    if not path:
        raise node.error("not a file path", found=node.value, expected="a file path or URL")
    return path


def file_list(node: Node) -> tuple[str, ...]:
    """Files given as a list of texts or of ``{source: ...}``, or as 0.4's ``{files: [...]}``; null and
    empty entries are skipped."""
    if isinstance(node.value, dict):  # 0.3/0.4: {files: [...]} (other keys of it are not files)
        node = node.get("files")
    out = []
    for element in node.elements(allow_scalar=True):
        if isinstance(element.value, str) and not clean_path(element.value):
            continue
        ref = file_reference(element)
        if ref:
            out.append(ref)
    return tuple(out)


DEEPIJ_CONFIG = "deepij"
FILE_SHA256_CONFIG = "file_sha256"
"""``config.deepij.file_sha256``: where deepij writes the sha256 of files in a 0.4 descriptor, whose file
references are plain paths (``{path: sha256}``; ``config`` is the one place 0.4 leaves free)."""


def read_file_sha256(doc: Node, *, tensor_files: bool) -> dict[str, str]:
    """The sha256 the descriptor gives the files it names (path -> digest), weights and architecture files
    aside: from file descriptions ``{source, sha256}`` (0.5; 0.3/0.4 lists written so are read too) and from
    ``config.deepij.file_sha256``. A file given two different digests is a :class:`BundleError`.

    Parameters
    ----------
    doc : Node
        The descriptor, whose fields were read already (their shapes are checked there).
    tensor_files : bool
        Read the tensors' ``test_tensor`` / ``sample_tensor`` (0.5; 0.3/0.4 list them at the top level).
    """
    references = [doc.get("documentation"), *_file_nodes(doc.get("covers"))]
    references += _file_nodes(doc.get("attachments"))
    for _, entry in doc.get("weights").items():
        references += _file_nodes(entry.get("attachments"))
    for key in ("inputs", "outputs") if tensor_files else ():
        for tensor in doc.get(key).elements():
            references += [tensor.get("test_tensor"), tensor.get("sample_tensor")]
    digests: dict[str, str] = {}
    for node in references:
        if isinstance(node.value, dict):
            path = file_reference(node)
            digest = sha256_of(node.get("sha256"))
            if path and digest:
                _add_digest(digests, path, digest, node.get("sha256"))
    listed = doc.get("config").get(DEEPIJ_CONFIG)
    if isinstance(listed.value, dict):
        for path, digest_node in listed.get(FILE_SHA256_CONFIG).items():
            digest = sha256_of(digest_node)
            if digest:
                _add_digest(digests, clean_path(str(path)), digest, digest_node)
    return digests


def _file_nodes(node: Node) -> list[Node]:
    """The elements of a file list, as :func:`file_list` reads it."""
    if isinstance(node.value, dict):
        node = node.get("files")
    return node.elements(allow_scalar=True)


def _add_digest(digests: dict[str, str], path: str, digest: str, where: Node) -> None:
    known = digests.setdefault(path, digest)
    if known != digest:
        raise where.error(
            f"two different sha256 given for the file {path!r}",
            found=digest,
            expected=f"{known} (as given first)",
        )


def config_without_file_sha256(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` without ``deepij.file_sha256`` (read into :attr:`ModelDescription.file_sha256`), and
    without ``deepij`` when nothing else was in it."""
    section = config.get(DEEPIJ_CONFIG)
    if not isinstance(section, dict) or FILE_SHA256_CONFIG not in section:
        return dict(config)
    rest = {k: v for k, v in section.items() if k != FILE_SHA256_CONFIG}
    return {k: rest if k == DEEPIJ_CONFIG else v for k, v in config.items() if k != DEEPIJ_CONFIG or rest}


def sha256_of(node: Node) -> str | None:
    value = node.text()
    if value is None or not value.strip():
        return None
    value = value.strip()
    if not _SHA256.match(value):
        raise node.error("not a sha256 digest", found=value, expected="64 hexadecimal characters")
    return value.lower()


def strip_quotes(text: str) -> str:
    """``'"UNet"'`` -> ``'UNet'``: deepImageJ matches model names with surrounding quotes removed."""
    text = text.strip()
    while len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1].strip()
    return text


# --- metadata --------------------------------------------------------------------------------------------


def read_people(node: Node) -> tuple[Person, ...]:
    people = []
    for element in node.elements():
        if isinstance(element.value, str):
            people.append(Person(name=element.value.strip()))
            continue
        if not element.present:
            continue
        name = element.get("name").text() or element.get("github_user").text()
        if name is None:
            raise element.error("person without a name", found=element.value, expected="name: ...")
        people.append(
            Person(
                name=name,
                affiliation=element.get("affiliation").text(),
                email=element.get("email").text(),
                github_user=element.get("github_user").text(),
                orcid=element.get("orcid").text(),
            )
        )
    return tuple(people)


def read_cite(node: Node) -> tuple[Citation, ...]:
    out = []
    for element in node.elements():
        if isinstance(element.value, str):
            out.append(Citation(text=element.value))
        elif element.present:
            out.append(
                Citation(
                    text=element.get("text").text("") or "",
                    doi=element.get("doi").text(),
                    url=element.get("url").text(),
                )
            )
    return tuple(out)


def read_metadata(doc: Node) -> dict[str, Any]:
    """The descriptive top-level fields, as :class:`ModelDescription` keyword arguments."""
    name = strip_quotes(doc.required("name", "the model's name").required_text("the model's name"))
    return {
        "name": name,
        "description": doc.get("description").text("") or "",
        "id": doc.get("id").text(),
        "version": doc.get("version").text(),
        "authors": read_people(doc.get("authors")),
        "maintainers": read_people(doc.get("maintainers")),
        "cite": read_cite(doc.get("cite")),
        "license": doc.get("license").text(),
        "documentation": file_reference(doc.get("documentation")),
        "tags": doc.get("tags").text_list(),
        "covers": file_list(doc.get("covers")),
        "attachments": file_list(doc.get("attachments")),
    }


def extra_fields(doc: Node, interpreted: tuple[str, ...]) -> dict[str, Any]:
    """Top-level fields the readers do not interpret, kept as found."""
    return {k: v for k, v in doc.mapping().items() if k not in interpreted}


# --- weights ---------------------------------------------------------------------------------------------


def read_weights(node: Node, model_level: Node | None = None) -> dict[str, WeightsEntry]:
    """``weights:`` -> canonical format name -> entry, in descriptor order.

    ``model_level`` is the document of a 0.3 descriptor: 0.3.0-0.3.3 give the ``pytorch_state_dict``
    architecture at the top (``source: file.py::Class``, ``kwargs:``, ``sha256:`` of the file) rather than
    in the weights entry.
    """
    entries: dict[str, WeightsEntry] = {}
    for key, entry_node in node.items():
        fmt = WEIGHTS_ALIASES.get(key, key)
        if fmt not in WEIGHTS_FORMATS:
            raise entry_node.error(
                "unknown weights format",
                found=key,
                expected="one of " + ", ".join((*WEIGHTS_FORMATS, *WEIGHTS_ALIASES)),
            )
        if fmt in entries:
            raise entry_node.error(
                "weights format given twice (pytorch_script is another name of torchscript)",
                found=key,
                expected="each format once",
            )
        if not entry_node.present:
            continue
        entries[fmt] = _read_weights_entry(fmt, entry_node, model_level)
    return entries


def _read_weights_entry(fmt: str, node: Node, model_level: Node | None) -> WeightsEntry:
    node.mapping()
    source = clean_path(node.required("source", "the weights file or URL").required_text())
    framework_version = next(
        (node.get(k).text() for k in _FRAMEWORK_VERSION_KEYS if node.get(k).present), None
    )
    interpreted = {"source", "sha256", "attachments", "parent", *_FRAMEWORK_VERSION_KEYS}
    architecture = None
    if fmt == "pytorch_state_dict":
        if model_level is not None and not node.get("architecture").present:
            architecture = _read_model_level_architecture(model_level)
        else:
            architecture = _read_architecture(node)
        interpreted |= {"architecture", "architecture_sha256", "kwargs"}
    return WeightsEntry(
        format=fmt,
        source=source,
        sha256=sha256_of(node.get("sha256")),
        attachments=file_list(node.get("attachments")),
        architecture=architecture,
        framework_version=framework_version,
        parent=node.get("parent").text(),
        extra={k: v for k, v in node.mapping().items() if k not in interpreted},
    )


def _read_architecture(node: Node) -> ArchitectureSpec:
    arch = node.required("architecture", "the network class: 'file.py:Class' or {source, callable}")
    kwargs_node = node.get("kwargs")
    if isinstance(arch.value, dict):
        # 0.5: {source, sha256, callable, kwargs} or {import_from, callable, kwargs}
        source_node = arch.first_of("source", "import_from")
        source = source_node.required_text("the architecture's Python file or importable module")
        callable_name = arch.required("callable", "the class or function name").required_text()
        sha256 = sha256_of(arch.get("sha256"))
        kwargs_node = arch.get("kwargs")
    else:
        source, callable_name = _split_architecture(arch)
        sha256 = sha256_of(node.get("architecture_sha256"))
    kwargs = kwargs_node.mapping(allow_missing=True)
    return ArchitectureSpec(
        source=clean_path(source), callable=callable_name, kwargs=dict(kwargs), sha256=sha256
    )


MODEL_LEVEL_ARCHITECTURE_KEYS = ("source", "kwargs", "sha256")
"""Top-level fields of a 0.3 descriptor that describe its ``pytorch_state_dict`` architecture."""


def _read_model_level_architecture(doc: Node) -> ArchitectureSpec:
    source_node = doc.get("source")
    if not source_node.present:
        raise BundleError(
            "missing required field",
            file=doc.file,
            field="weights.pytorch_state_dict.architecture",
            expected="the network class: 'architecture: file.py:Class' in the weights entry, or "
            "(descriptor 0.3) 'source: file.py::Class' with 'kwargs:' at the top of the descriptor",
        )
    source, callable_name = _split_architecture(source_node)
    return ArchitectureSpec(
        source=clean_path(source),
        callable=callable_name,
        kwargs=dict(doc.get("kwargs").mapping(allow_missing=True)),
        sha256=sha256_of(doc.get("sha256")),
    )


def _split_architecture(node: Node) -> tuple[str, str]:
    """``file.py::Class`` (0.3), ``file.py:Class`` (0.4) or ``package.module.Class`` -> (source, callable)."""
    text = node.required_text("'file.py:Class' or 'package.module.Class'").strip()
    if "::" in text:
        source, _, callable_name = text.rpartition("::")
    elif ".py:" in text:
        source, _, callable_name = text.rpartition(":")
    else:
        source, _, callable_name = text.rpartition(".")
    if not source.strip() or not callable_name.strip() or not callable_name.strip().isidentifier():
        raise node.error(
            "architecture names no callable",
            found=text,
            expected="'file.py:Class', 'file.py::Class' or 'module.Class'",
        )
    return source.strip(), callable_name.strip()


# --- processing ops --------------------------------------------------------------------------------------


def read_processing(node: Node, name_key: str, axis_letters: Mapping[str, str]) -> tuple:
    """Spec pre/post-processing steps with ``axes``/``axis`` kwargs turned into axis letters.

    Parameters
    ----------
    node : Node
        The ``preprocessing`` / ``postprocessing`` list.
    name_key : str
        ``"name"`` (0.3/0.4) or ``"id"`` (0.5).
    axis_letters : mapping
        The tensor's axis ids (and letters) -> letter.
    """
    ops = []
    for element in node.elements():
        if isinstance(element.value, str):  # tolerate a bare op name
            ops.append(ProcessingOp(name=element.value.strip(), kwargs={}))
            continue
        name_node = element.first_of(name_key, "id" if name_key == "name" else "name")
        name = name_node.required_text(f"the op's {name_key} (scale_range, zero_mean_unit_variance, ...)")
        kwargs_node = element.get("kwargs")
        kwargs = dict(kwargs_node.mapping(allow_missing=True))
        if name in _INSTANCE_OPS:  # their kwargs name no axes; deepij.processing.instances checks them
            ops.append(ProcessingOp(name=name, kwargs=kwargs, code=_custom_code(element, kwargs)))
            continue
        for key in _AXIS_KWARGS:
            if kwargs.get(key) is not None:
                kwargs[key] = _axes_as_letters(kwargs_node.get(key), axis_letters)
        ops.append(ProcessingOp(name=name, kwargs=kwargs))
    return tuple(ops)


def _custom_code(element: Node, kwargs: dict[str, Any]) -> ArchitectureSpec | None:
    """A ``custom`` op's Python file and callable (0.5: ``source``, ``sha256``, ``callable`` by ``id``)."""
    if element.get("id").text() != "custom" and element.get("name").text() != "custom":
        return None
    source_node = element.required("source", "the op's Python file in the bundle (source: my_op.py)")
    source = source_node.get("source") if isinstance(source_node.value, dict) else source_node
    sha256 = element.get("sha256").text() or (
        source_node.get("sha256").text() if isinstance(source_node.value, dict) else None
    )
    return ArchitectureSpec(
        source=clean_path(source.required_text("a file path")),
        callable=element.required("callable", "the class or factory name").required_text(),
        kwargs=kwargs,
        sha256=sha256,
    )


def _axes_as_letters(node: Node, axis_letters: Mapping[str, str]) -> str:
    value = node.value
    ids = list(value) if isinstance(value, str) else [e.text() for e in node.elements(allow_scalar=True)]
    letters = []
    for axis_id in ids:
        letter = axis_letters.get(str(axis_id).lower())
        if letter is None:
            raise node.error(
                "processing names an axis the tensor does not have",
                found=value,
                expected="axes of the tensor: " + ", ".join(sorted(set(axis_letters))),
            )
        letters.append(letter)
    return "".join(letters)


def letters_map(axes: str) -> dict[str, str]:
    """Axis names a processing op may use for a tensor with these letters (0.5 ids included)."""
    long_names = {"b": "batch", "c": "channel", "i": "index", "t": "time"}
    out = {}
    for letter in axes:
        out[letter] = letter
        if letter in long_names:
            out[long_names[letter]] = letter
    return out


def check_axes_letters(node: Node, axes: str) -> str:
    """Validate a 0.3/0.4 axes string: letters from ``bitczyx``, each once."""
    bad = [a for a in axes if a not in AXIS_LETTERS]
    if bad or not axes:
        raise node.error("wrong axes letters", found=node.value, expected=f"letters from {AXIS_LETTERS!r}")
    if len(set(axes)) != len(axes):
        raise node.error("an axis letter appears twice", found=node.value, expected="each letter once")
    return axes


def check_dtype(node: Node, default: str = "float32") -> str:
    dtype = (node.text(default) or default).strip().lower()
    if dtype not in DATA_TYPES:
        raise node.error("unknown data type", found=node.value, expected="one of " + ", ".join(DATA_TYPES))
    return dtype


def check_size_bound(node: Node, value: float, what: str) -> None:
    """Refuse a size, min, step, offset, halo or scale whose magnitude is above
    :data:`~deepij.bundle.description.MAX_AXIS_SIZE` (it would end in an allocation failure, not a run).

    Examples
    --------
    >>> from pathlib import Path
    >>> check_size_bound(Node(512, "inputs[0].axes[2].size", Path("rdf.yaml")), 512, "axis size")
    >>> node = Node(2**40, "inputs[0].axes[2].size", Path("rdf.yaml"))
    >>> check_size_bound(node, 2**40, "axis size")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    deepij.errors.BundleError: rdf.yaml: inputs[0].axes[2].size: axis size too large ...
    """
    if abs(value) > MAX_AXIS_SIZE:
        raise node.error(
            f"{what} too large for a tensor axis",
            found=node.value,
            expected=f"at most {MAX_AXIS_SIZE} (2**20): a descriptor states what one pass of the network "
            "takes",
        )
