"""Answering the questions a macro asks (``getDirectory``, ``getString``, ``Dialog.*``...) from a mapping.

Workshop macros ask for folders and values: ``getDirectory("Choose input folder")``, ``getString("Name",
"cells")``, ``getNumber("Sigma", 2)``, ``Dialog.create(...)``/``Dialog.add...``/``Dialog.show()``,
``File.openDialog("Choose a model")``, ``getBoolean("Continue?")``. Under deepij nobody can click them, so
``run_macro(..., answers={...})`` answers them by their prompt text: the prompt of ``getDirectory``,
``getString``, ``getNumber``, ``getBoolean`` and ``File.openDialog``, and each field's label in a
``Dialog`` (a command's own dialog too, when it runs without options). Labels match without regard to case,
spacing or a trailing colon. In a dialog with several fields, those without an answer keep the value the
dialog shows (as pressing OK would); a dialog none of whose fields is answered stops the run with a
:class:`~deepij.errors.MacroTimeoutError` (a MacroError) that lists them and shows what would answer them.

Values: text for text fields, folders and files (``str`` or a path), a number (or its text) for number
fields, ``True``/``False`` (or ``"true"``, ``"yes"``, ``"no"``...) for checkboxes and ``getBoolean``, one
of the offered items for choices and radio buttons.

Examples
--------
>>> normalize_answers({"Choose input folder:": "/data", "Sigma": 2})
{'choose input folder': ('Choose input folder:', '/data'), 'sigma': ('Sigma', 2)}
>>> print(answer_hint({"Choose input folder": "/path/to/folder"}))
answers={"Choose input folder": "/path/to/folder"} in Python, or --answer ...
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from deepij.errors import ArgumentError, ArgumentTypeError, MacroTimeoutError
from deepij.imagej import dialogs
from deepij.imagej._java import jc, jstr, private_field

#: Normalized label -> (the label as the caller wrote it, the value).
Answers = dict[str, tuple[str, Any]]

_TRUE = {"true", "yes", "y", "1", "on", "ok"}
_FALSE = {"false", "no", "n", "0", "off"}


@dataclass
class Field:
    """One question of a dialog: its label, what kind of value it takes, the value it shows."""

    label: str
    kind: str  # "number", "text", "checkbox", "choice", "radio", "folder", "file", "yes/no"
    default: str
    options: tuple[str, ...] = ()
    component: Any = None


@dataclass
class Prompt:
    """What a dialog asks: how the macro asked it (``"getDirectory"``, ``"Dialog"``...) and its fields."""

    asked_by: str
    title: str
    fields: list[Field] = field(default_factory=list)


def normalize_answers(answers: Mapping[str, Any] | None) -> Answers:
    """Check ``answers`` and key it by normalized label (see the module docstring)."""
    if answers is None:
        return {}
    if not isinstance(answers, Mapping):
        raise ArgumentTypeError(
            f"answers: expected a mapping of prompt text -> value, e.g. {{'Choose input folder': '/data'}}, "
            f"found {type(answers).__name__}"
        )
    normalized: Answers = {}
    for label, value in answers.items():
        if not isinstance(label, str) or not _key(label):
            raise ArgumentTypeError(f"answers: keys are prompt texts (non-empty str), found {label!r}")
        if not isinstance(value, str | bool | int | float | os.PathLike):
            raise ArgumentTypeError(f"answers[{label!r}]: expected text, a number, True/False or a path, "
                                    f"found {type(value).__name__}")
        normalized[_key(label)] = (label, value)
    return normalized


def _key(label: str) -> str:
    return " ".join(label.split()).rstrip(":").strip().casefold()


# ------------------------------------------------------------------------------------------- reading
def read_prompt(window: Any) -> Prompt | None:
    """What ``window`` asks, or None for a dialog that takes no answer (``waitForUser``)."""
    title = jstr(window.getTitle()) or ""
    if isinstance(window, jc.GenericDialog):
        fields = _generic_fields(window)
        numeric = bool(fields) and fields[0].kind == "number"
        asked_by = "Dialog" if title else ("getNumber" if numeric else "getString")
        return Prompt(asked_by, title, fields)
    chooser = _find_chooser(window)
    if chooser is not None:
        folders = int(chooser.getFileSelectionMode()) == int(chooser.DIRECTORIES_ONLY)
        current = chooser.getCurrentDirectory()
        default = jstr(current.getPath()) if current is not None else ""
        kind = "folder" if folders else "file"
        return Prompt("getDirectory" if folders else "File.openDialog", title,
                      [Field(title, kind, default or "", component=chooser)])
    if isinstance(window, jc.YesNoCancelDialog):
        question = dialogs.window_text(window).strip()
        return Prompt("getBoolean", title, [Field(question, "yes/no", "")])
    return None


def _generic_fields(dialog: Any) -> list[Field]:
    """The fields of a GenericDialog in the order shown, each with the label shown before it."""
    numbers = _identities(dialog.getNumericFields())
    texts = _identities(dialog.getStringFields())
    boxes = _identities(dialog.getCheckboxes())
    choices = _identities(dialog.getChoices())
    groups = {dialogs.window_key(g): g for g in (dialog.getRadioButtonGroups() or [])}
    fields: list[Field] = []
    seen_groups: set[int] = set()
    label = ""
    components = _flatten(dialog)
    for index, component in enumerate(components):
        key = dialogs.window_key(component)
        if isinstance(component, jc.Label):
            label = jstr(component.getText()) or ""
        elif key in numbers:
            fields.append(Field(label, "number", jstr(component.getText()) or "", component=component))
        elif key in texts:
            browse = index + 1 < len(components) and isinstance(components[index + 1], jc.Button)
            kind = "folder" if browse and "older" in label else ("file" if browse else "text")
            fields.append(Field(label, kind, jstr(component.getText()) or "", component=component))
        elif key in choices:
            items = tuple(jstr(component.getItem(i)) or "" for i in range(int(component.getItemCount())))
            fields.append(Field(label, "choice", jstr(component.getSelectedItem()) or "", items, component))
        elif key in boxes:
            fields.append(Field(jstr(component.getLabel()) or "", "checkbox",
                                "true" if component.getState() else "false", component=component))
        elif isinstance(component, jc.Checkbox) and component.getCheckboxGroup() is not None:
            group = component.getCheckboxGroup()
            group_key = dialogs.window_key(group)
            if group_key in groups and group_key not in seen_groups:
                seen_groups.add(group_key)
                items = tuple(jstr(c.getLabel()) or "" for c in _group_members(dialog, group))
                selected = group.getSelectedCheckbox()
                default = jstr(selected.getLabel()) if selected is not None else ""
                fields.append(Field(label, "radio", default or "", items, group))
    return fields


def _group_members(dialog: Any, group: Any) -> list[Any]:
    """The radio buttons (Checkboxes) of a CheckboxGroup, in the order shown."""
    key = dialogs.window_key(group)
    return [c for c in _flatten(dialog) if isinstance(c, jc.Checkbox) and c.getCheckboxGroup() is not None
            and dialogs.window_key(c.getCheckboxGroup()) == key]


def _identities(items: Any) -> set[int]:
    return {dialogs.window_key(item) for item in (items or [])}


def _flatten(container: Any) -> list[Any]:
    found: list[Any] = []
    for child in container.getComponents():
        found.append(child)
        if isinstance(child, jc.Container):
            found.extend(_flatten(child))
    return found


def _find_chooser(window: Any) -> Any:
    for component in _flatten(window) if isinstance(window, jc.Container) else []:
        if isinstance(component, jc.JFileChooser):
            return component
    return None


# ------------------------------------------------------------------------------------------- answering
def answer(dialog: dialogs.OpenDialog, answers: Answers, answered: dict[str, str]) -> bool:
    """Answer ``dialog`` from ``answers`` and press OK; False when none of its questions is answered.

    ``answered`` gets label -> the value the dialog was given (answers, and defaults kept beside them).

    Raises
    ------
    ArgumentError
        An answer the field cannot take (a choice not offered, text where a number is asked...).
    """
    prompt = read_prompt(dialog.window)
    if prompt is None or not prompt.fields:
        return False
    given = {id(f): answers[_key(f.label)] for f in prompt.fields if _key(f.label) in answers}
    if not given:
        return False
    values = {}
    for item in prompt.fields:
        if id(item) in given:
            written, value = given[id(item)]
            values[id(item)] = _value_for(item, written, value)
        else:
            values[id(item)] = item.default
        answered[item.label] = values[id(item)]
    dialogs.act(dialog, lambda window: _submit(window, prompt, values))
    return True


def _value_for(item: Field, written: str, value: Any) -> str:
    where = f"answers[{written!r}]"
    if item.kind in ("checkbox", "yes/no"):
        return "true" if _boolean(value, where) else "false"
    if isinstance(value, bool):
        raise ArgumentTypeError(f"{where}: {item.label!r} asks for {item.kind}, found {value!r}")
    text = os.fspath(value) if isinstance(value, os.PathLike) else str(value)
    if item.kind == "number":
        try:
            number = float(text)
        except ValueError:
            raise ArgumentError(f"{where}: {item.label!r} asks for a number, found {value!r}") from None
        if not math.isfinite(number):
            raise ArgumentError(f"{where}: {item.label!r} asks for a finite number, found {value!r}")
    if item.kind in ("choice", "radio") and text not in item.options:
        offered = ", ".join(map(repr, item.options))
        raise ArgumentError(f"{where}: {item.label!r} offers {offered}; found {text!r}")
    return text


def _boolean(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().casefold() in _TRUE | _FALSE:
        return value.strip().casefold() in _TRUE
    raise ArgumentError(f"{where}: expected True or False (or 'yes'/'no'), found {value!r}")


def _submit(window: Any, prompt: Prompt, values: dict[int, str]) -> None:
    """On the event thread: fill every field, then press OK (Yes/No, Approve) as a user would."""
    from jpype import JClass

    if prompt.asked_by == "getBoolean":
        button = "yesB" if values[id(prompt.fields[0])] == "true" else "noB"
        source = private_field("ij.gui.YesNoCancelDialog", button).get(window)
        window.actionPerformed(JClass("java.awt.event.ActionEvent")(source, 1001, ""))
        return
    if prompt.asked_by in ("getDirectory", "File.openDialog"):
        chooser = prompt.fields[0].component
        chooser.setSelectedFile(JClass("java.io.File")(values[id(prompt.fields[0])]))
        chooser.approveSelection()
        return
    for item in prompt.fields:
        value = values[id(item)]
        if item.kind == "checkbox":
            item.component.setState(value == "true")
        elif item.kind == "choice":
            item.component.select(value)
        elif item.kind == "radio":
            for component in _group_members(window, item.component):
                if jstr(component.getLabel()) == value:
                    item.component.setSelectedCheckbox(component)
        else:
            item.component.setText(value)
    okay = private_field("ij.gui.GenericDialog", "okay").get(window)
    window.actionPerformed(JClass("java.awt.event.ActionEvent")(okay, 1001, "  OK"))


# ------------------------------------------------------------------------------------------- unanswered
def unanswered_error(dialog: dialogs.OpenDialog) -> MacroTimeoutError:
    """The error for a dialog that waits for input no answer covers: what it asks, what would answer it."""
    prompt = read_prompt(dialog.window)
    kind = jstr(dialog.window.getClass().getSimpleName())
    if prompt is None or not prompt.fields:
        detail = f": {dialog.text.strip()!r}" if dialog.text.strip() else ""
        return MacroTimeoutError(
            f"the macro waits for user input that will never come: {kind} {dialog.title!r}{detail}; deepij "
            "cancelled it (macros run unattended: pass values as arguments instead)"
        )
    examples = {f.label.rstrip(": ") or f.label: _example(f) for f in prompt.fields}
    if prompt.asked_by == "Dialog":
        listed = "; ".join(_describe(f) for f in prompt.fields)
        asked = f'Dialog "{prompt.title}" asks for {listed}'
    else:
        asked = f'{prompt.asked_by}("{prompt.fields[0].label}") asks for {_describe(prompt.fields[0])}'
    return MacroTimeoutError(
        f"the macro asks a question nobody can answer here: {asked}. deepij cancelled it; answer it with "
        f"{answer_hint(examples)}"
    )


def _describe(item: Field) -> str:
    if item.kind in ("choice", "radio"):
        return f"{item.label!r} (one of {', '.join(map(repr, item.options))}; shown: {item.default!r})"
    if item.kind in ("folder", "file"):
        return f"{item.label!r} (a {item.kind})"
    if item.kind == "yes/no":
        return f"{item.label!r} (yes or no)"
    return f"{item.label!r} ({item.kind}, shown: {item.default!r})"


def _example(item: Field) -> Any:
    if item.kind == "folder":
        return "/path/to/folder"
    if item.kind == "file":
        return "/path/to/file"
    if item.kind in ("checkbox", "yes/no"):
        return item.default != "false"
    if item.kind == "number":
        try:
            number = float(item.default)
        except ValueError:
            return 0
        return int(number) if number.is_integer() else number
    return item.default


def answer_hint(examples: Mapping[str, Any]) -> str:
    """How to pass ``examples`` (label -> value): the Python mapping and the command-line options."""
    python = "answers={" + ", ".join(f"{json.dumps(k)}: {_python_value(v)}" for k, v in examples.items())
    python += "}"
    cli = " ".join(f'--answer "{k}={_cli_value(v)}"' for k, v in examples.items())
    return f"{python} in Python, or {cli} on the command line"


def _python_value(value: Any) -> str:
    if isinstance(value, bool | int | float):
        return repr(value)
    return json.dumps(str(value))


def _cli_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
