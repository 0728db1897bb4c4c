"""The training dock's fields for the optimizer's hot params (learning rate, weight decay,
clipping — whatever its spec declares ``hot``): the document's real values as text (``1e+30``,
``0.0003``), typed in any float notation, checked against the spec's bounds and never clamped.

A field does not talk to the worker: an accepted value is emitted as :attr:`HotFields.edited`
and the owner sets the optimizer node's param through the controller (one undo step, the same
command as the inspector); the edit lock forwards the change to a live run.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFormLayout, QLabel, QLineEdit, QWidget

from nodegraph.editing.model import MISSING
from nodegraph.editing.specs import hot_params
from nodegraph.panels.paramwidgets import ParamError, format_text, parse_value


class HotFields(QWidget):
    edited = Signal(str, object)  # param name, accepted value
    refused = Signal(str)  # why a typed value was not applied

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.form = QFormLayout(self)
        self.form.setContentsMargins(0, 0, 0, 0)
        self.fields: dict[str, QLineEdit] = {}
        self.specs: dict[str, dict] = {}
        self.values: dict = {}
        self.none_label = QLabel("no optimizer node in this graph")
        self.none_label.setStyleSheet("color: #a9afb9;")
        self.form.addRow(self.none_label)

    def show_node(self, spec: dict | None, params: dict) -> None:
        """Show the hot params of optimizer *spec* with the node's *params* (None: none)."""
        names = hot_params(spec)
        if names != list(self.fields):
            self._build([p for p in (spec or {}).get("params", []) if p["name"] in names])
        for name, field in self.fields.items():
            value = params.get(name, self.specs[name].get("default"))
            self.values[name] = value
            if not field.hasFocus() or field.text() == "":
                field.setText(format_text(value))
            self._mark(field, None)

    def _build(self, specs: list[dict]) -> None:
        while self.form.rowCount():
            self.form.removeRow(0)
        self.fields, self.specs, self.values = {}, {}, {}
        if not specs:
            self.none_label = QLabel("no optimizer node in this graph")
            self.none_label.setStyleSheet("color: #a9afb9;")
            self.form.addRow(self.none_label)
            return
        for spec in specs:
            field = QLineEdit()
            field.setObjectName(f"hot_{spec['name']}")
            field.editingFinished.connect(lambda n=spec["name"]: self._commit(n))
            self.fields[spec["name"]] = field
            self.specs[spec["name"]] = spec
            self.form.addRow(spec["name"].replace("_", " "), field)
            self._mark(field, None)

    def _mark(self, field: QLineEdit, problem: str | None) -> None:
        name = field.objectName().removeprefix("hot_")
        field.setProperty("invalid", problem is not None)
        field.setToolTip(problem or self.specs.get(name, {}).get("doc", ""))
        field.style().polish(field)

    def _commit(self, name: str) -> None:
        field, spec = self.fields[name], self.specs[name]
        try:
            value = parse_value(spec, field.text())
        except ParamError as exc:
            self._mark(field, str(exc))
            self.refused.emit(f"{name}: {exc} (not applied)")
            return
        if value is MISSING:  # emptied: show the document's value again
            field.setText(format_text(self.values.get(name)))
            self._mark(field, None)
            return
        self._mark(field, None)
        if value != self.values.get(name):
            self.edited.emit(name, value)
