"""Editor widgets generated from param specs, with parsing and bound checks (Qt + plain logic)."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QLineEdit, QSpinBox

from nodegraph.editing.doctext import doc_text
from nodegraph.editing.model import MISSING

INT_LIMIT = 2**31 - 1


class ParamError(ValueError):
    """A value typed into an inspector field does not fit its param spec."""


def _check_bounds(spec: dict, value) -> None:
    lo, hi = spec.get("min"), spec.get("max")
    if lo is not None and value < lo:
        raise ParamError(f"{spec['name']} must be ≥ {lo}")
    if hi is not None and value > hi:
        raise ParamError(f"{spec['name']} must be ≤ {hi}")


def _token(text: str):
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        return text


def parse_value(spec: dict, text: str):
    """Text typed for param *spec* → its JSON value (MISSING for an empty optional)."""
    kind = spec["kind"]
    text = text.strip()
    if text == "" and (spec.get("optional") or spec.get("default") is None):
        return MISSING
    if text.startswith("$"):
        return text  # a layer-parameter reference inside a layer definition
    if kind == "int":
        try:
            value = int(text)
        except ValueError:
            raise ParamError(f"{spec['name']} must be a whole number") from None
        _check_bounds(spec, value)
        return value
    if kind == "float":
        try:
            value = float(text)
        except ValueError:
            raise ParamError(f"{spec['name']} must be a number") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ParamError(f"{spec['name']} must be finite")
        _check_bounds(spec, value)
        return value
    if kind in ("shape", "target_shape", "ints", "strings"):
        parts = [p for p in text.replace("×", ",").replace("[", "").replace("]", "").split(",")
                 if p.strip()]
        if kind == "strings":
            return [p.strip() for p in parts]
        values = [_token(p) for p in parts]
        if kind == "ints" and not all(isinstance(v, int) for v in values):
            raise ParamError(f"{spec['name']} must be whole numbers separated by commas")
        return values
    return text


def format_text(value) -> str:
    if value is None or value is MISSING:
        return ""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


class TextParam(QLineEdit):
    """Any kind as text; invalid input turns the border red and is not applied."""

    committed = Signal(object)

    def __init__(self, spec: dict, value) -> None:
        super().__init__(format_text(value))
        self.spec = spec
        if spec.get("default") is not None:
            self.setPlaceholderText(format_text(spec["default"]))
        self.editingFinished.connect(self._commit)

    def _commit(self) -> None:
        try:
            value = parse_value(self.spec, self.text())
        except ParamError as exc:
            self.setProperty("invalid", True)
            self.setToolTip(str(exc))
            self.style().polish(self)
            return
        self.setProperty("invalid", False)
        self.setToolTip(doc_text(self.spec.get("doc", "")))
        self.style().polish(self)
        self.committed.emit(value)


def make_widget(spec: dict, value, on_commit):
    """A widget for param *spec* showing *value*; *on_commit(value)* is called on edits."""
    kind = spec["kind"]
    plain = not (isinstance(value, str) and value.startswith("$"))
    if kind == "bool" and plain:
        w = QCheckBox()
        w.setChecked(bool(value))
        w.toggled.connect(lambda v: on_commit(bool(v)))
    elif kind == "choice" and plain and spec.get("choices"):
        w = QComboBox()
        w.addItems([str(c) for c in spec["choices"]])
        if value in spec["choices"]:
            w.setCurrentIndex(spec["choices"].index(value))
        w.currentIndexChanged.connect(lambda i: on_commit(spec["choices"][i]))
    elif kind == "int" and plain and not spec.get("optional") and isinstance(value, int):
        w = QSpinBox()
        w.setRange(int(spec["min"]) if spec.get("min") is not None else -INT_LIMIT,
                   int(spec["max"]) if spec.get("max") is not None else INT_LIMIT)
        w.setValue(value)
        w.setKeyboardTracking(False)
        w.valueChanged.connect(lambda v: on_commit(int(v)))
    else:
        w = TextParam(spec, value)
        w.committed.connect(on_commit)
    w.setToolTip(doc_text(spec.get("doc", "")))
    w.setObjectName(f"param_{spec['name']}")
    return w
