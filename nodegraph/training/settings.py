"""The training dock's settings: the document's ``training`` block (steps, evaluation interval,
seed, dtype), the data source's batch size and (through :class:`SettingsBinder`) the
optimizer's hot fields. Each field shows the document's value; an edit is one undoable change
of the document (so it is saved with the graph), never sent to the worker directly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QGridLayout, QLabel, QSpinBox, QWidget

from engine import api
from nodegraph.controller import Controller

INT_MAX = 2**31 - 1
# (key, label, minimum, tooltip) of the integer settings of the ``training`` block
INT_SETTINGS = (
    ("steps", "steps", 1, "Optimizer steps of a run"),
    ("eval_every", "eval every", 0, "Steps between validation passes (0: only at the end)"),
    ("seed", "seed", 0, "Seed of the initialisation, the data order and dropout"),
)
DTYPES = ("float32", "float64")


class TrainingSettings(QWidget):
    training_edited = Signal(str, object)  # key of the ``training`` block, value
    batch_edited = Signal(int)  # the data source's batch size

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        grid = QGridLayout(self)  # two settings a row: the dock's controls column is narrow
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(3)
        self.fields: dict[str, QSpinBox | QComboBox] = {}
        rows: list[tuple[str, QWidget]] = []
        for key, label, low, tip in INT_SETTINGS:
            box = QSpinBox(minimum=low, maximum=INT_MAX)
            box.setKeyboardTracking(False)
            box.setToolTip(tip)
            box.setObjectName(f"training_{key}")
            box.valueChanged.connect(lambda v, k=key: self.training_edited.emit(k, int(v)))
            self.fields[key] = box
            rows.append((label, box))
        dtype = QComboBox()
        dtype.addItems(list(DTYPES))
        dtype.setToolTip("Precision of the run (float64 for gradient checks and tiny models)")
        dtype.currentTextChanged.connect(lambda t: self.training_edited.emit("dtype", t))
        self.fields["dtype"] = dtype
        rows.append(("dtype", dtype))
        self.batch = QSpinBox(minimum=1, maximum=INT_MAX)
        self.batch.setKeyboardTracking(False)
        self.batch.setObjectName("batch_size")
        self.batch.setToolTip("The data source node's batch size (examples per step)")
        self.batch.valueChanged.connect(lambda v: self.batch_edited.emit(int(v)))
        rows.append(("batch", self.batch))
        for k, (label, widget) in enumerate(rows):
            grid.addWidget(QLabel(label), k // 2, 2 * (k % 2))
            grid.addWidget(widget, k // 2, 2 * (k % 2) + 1)
            widget.setMinimumWidth(70)
        self.start = QComboBox()  # a choice for the next run, not saved with the graph
        self.start.setObjectName("start_from")
        self.start.setToolTip("Train from a fresh initialisation, or fine-tune the weights the "
                              "document ships with")
        grid.addWidget(QLabel("start from"), 3, 0)
        grid.addWidget(self.start, 3, 1, 1, 3)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)
        self.has_batch = False
        self.editable = True
        self.document_weights: str | None = None
        self.loaded_weights: tuple[str, str] | None = None  # (path, label)
        self.set_document_weights(None)

    def show_settings(self, training: dict, batch: int | None) -> None:
        """Show the document's settings (*training* with defaults filled; *batch* None: the
        graph has no data source with a batch size)."""
        for key, widget in self.fields.items():
            widget.blockSignals(True)
            if isinstance(widget, QComboBox):
                widget.setCurrentText(str(training.get(key, DTYPES[0])))
            else:
                widget.setValue(int(training.get(key, 0)))
            widget.blockSignals(False)
        self.has_batch = batch is not None
        self.batch.blockSignals(True)
        self.batch.setValue(int(batch or 1))
        self.batch.blockSignals(False)
        self.set_editable(self.editable)

    def set_document_weights(self, path: str | None) -> None:
        """Offer fine-tuning from the document's own weights file (*path*; None: none)."""
        if path == self.document_weights and self.start.count():
            return
        self.document_weights = path
        self._fill_start()

    def set_loaded_weights(self, path: str | None, label: str = "") -> None:
        """Offer (and choose) the weights File ▸ Load Weights… wrote (*path*; None: forget)."""
        self.loaded_weights = (path, label or Path(path).name) if path else None
        self._fill_start(select=path)

    def _fill_start(self, select: str | None = None) -> None:
        current = select or self.start_weights()
        self.start.clear()
        self.start.addItem("a fresh initialisation", None)
        if self.document_weights is not None:
            self.start.addItem(f"the document's weights ({Path(self.document_weights).name})",
                               self.document_weights)
        if self.loaded_weights is not None:
            self.start.addItem(f"loaded weights ({self.loaded_weights[1]})",
                               self.loaded_weights[0])
        index = self.start.findData(current) if current else 0
        self.start.setCurrentIndex(max(index, 0))
        self.start.setEnabled(self.editable and self.start.count() > 1)

    def start_weights(self) -> str | None:
        """The weights file the next run starts from (None: a fresh initialisation)."""
        return self.start.currentData() if self.start.count() else None

    def set_editable(self, on: bool) -> None:
        """Settings of a live run cannot change (they are not hot)."""
        self.editable = on
        for widget in self.fields.values():
            widget.setEnabled(on)
        self.batch.setEnabled(on and self.has_batch)
        self.start.setEnabled(on and self.start.count() > 1)


class SettingsBinder:
    """Binds the dock's run settings and hot fields to the document: they show its values
    (refreshed after every change) and their edits go through the controller, like the
    inspector's (one undo step each; a live run gets hot edits through the edit lock)."""

    def __init__(self, controller: Controller, controls,
                 source: Callable[[], str | None] = lambda: None) -> None:
        """*source*: the document's file or preset (where its own weights are found)."""
        self.controller, self.controls, self.source = controller, controls, source
        controls.hot.edited.connect(self.set_optimizer_param)
        controls.settings.training_edited.connect(controller.set_training)
        controls.settings.batch_edited.connect(self.set_batch_size)
        controller.validated.connect(lambda _r: self.refresh())
        self.refresh()

    def _node_of(self, category: str, param: str | None = None) -> dict | None:
        cat, doc = self.controller.catalog, self.controller.model.doc
        for node in doc.get("nodes", []):
            spec = cat.spec(node["type"], doc) or {}
            if spec.get("category") == category and (
                    param is None or any(p["name"] == param for p in spec.get("params", []))):
                return node
        return None

    def optimizer_node(self) -> dict | None:
        """The document's (top-level) optimizer node, or None."""
        return self._node_of("optimizer")

    def data_node(self) -> dict | None:
        """The document's (first) data source with a batch size, or None."""
        return self._node_of("data", "batch_size")

    def _batch(self) -> int | None:
        data = self.data_node()
        if data is None:
            return None
        spec = self.controller.catalog.spec(data["type"], self.controller.model.doc) or {}
        default = next((p.get("default") for p in spec.get("params", [])
                        if p["name"] == "batch_size"), None)
        batch = data.get("params", {}).get("batch_size", default)
        return batch if isinstance(batch, int) and not isinstance(batch, bool) else None

    def refresh(self) -> None:
        """Show the document's values."""
        doc = self.controller.model.doc
        node = self.optimizer_node()
        spec = self.controller.catalog.spec(node["type"], doc) if node else None
        self.controls.hot.show_node(spec, node.get("params", {}) if node else {})
        self.controls.settings.show_settings(api.document.training_settings(doc),
                                             self._batch())
        try:
            found = api.document_weights_path(doc, self.source())
        except api.errors.WiregradError:  # a weights path outside the document's folder
            found = None
        self.controls.settings.set_document_weights(str(found) if found else None)

    def set_optimizer_param(self, name: str, value) -> None:
        node = self.optimizer_node()
        if node is not None:
            self.controller.set_param(node["id"], name, value, scope=None)

    def set_batch_size(self, value: int) -> None:
        node = self.data_node()
        if node is not None:
            self.controller.set_param(node["id"], "batch_size", value, scope=None)
