"""File ▸ Export ▸ ONNX… and PyTorch Project…: options, a file or folder chooser, and the
engine's error message when a graph cannot be exported (docs/export.md).

The menu calls ``export_onnx_dialog(win, doc, path)`` / ``export_torch_dialog(win, doc, path)``
with the open document and the path it was loaded from (None for an unsaved graph).
"""

from __future__ import annotations

import copy
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QLabel,
    QMessageBox,
    QSpinBox,
)

from engine import api
from engine.api import errors

OWN_WEIGHTS = "The graph's own weights (else a fresh initialisation)"
CHOOSE_WEIGHTS = "Choose a weights or checkpoint file…"


class ExportOptions(QDialog):
    """Weights to export (and the ONNX opset)."""

    def __init__(self, parent, title: str, onnx: bool) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.weights_path: str | None = None
        form = QFormLayout(self)
        self.weights = QComboBox()
        self.weights.addItems([OWN_WEIGHTS, CHOOSE_WEIGHTS])
        self.weights.activated.connect(self._choose)
        form.addRow("Weights", self.weights)
        self.weights_label = QLabel("")
        form.addRow("", self.weights_label)
        self.opset = QSpinBox()
        self.opset.setRange(17, 23)
        self.opset.setValue(17)
        self.opset.setToolTip("17: LayerNormalization native, GELU decomposed; "
                              "20 and newer: native Gelu")
        if onnx:
            form.addRow("ONNX opset", self.opset)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _choose(self, index: int) -> None:
        if index != 1:
            self.weights_path = None
            self.weights_label.setText("")
            return
        path, _ = QFileDialog.getOpenFileName(self, "Weights to export", "",
                                              "Weights (*.safetensors);;All files (*)")
        if path:
            self.weights_path = path
            self.weights_label.setText(Path(path).name)
        else:
            self.weights.setCurrentIndex(0)


def ask_options(parent, title: str, onnx: bool) -> dict | None:
    """``{"weights": path | None, "opset": int}``, or None when cancelled."""
    dialog = ExportOptions(parent, title, onnx)
    if dialog.exec() != QDialog.DialogCode.Accepted:
        return None
    return {"weights": dialog.weights_path, "opset": dialog.opset.value()}


def ask_onnx_path(parent, suggestion: str) -> str | None:
    path, _ = QFileDialog.getSaveFileName(parent, "Export ONNX model", suggestion,
                                          "ONNX model (*.onnx)")
    if path and not path.endswith(".onnx"):
        path += ".onnx"
    return path or None


def ask_folder(parent, start: str) -> str | None:
    return QFileDialog.getExistingDirectory(parent, "Folder for the PyTorch project",
                                            start) or None


def _stem(doc: dict, doc_path) -> str:
    if doc_path:
        return Path(doc_path).stem
    name = doc.get("meta", {}).get("name") or "model"
    return "".join(c if c.isalnum() else "_" for c in name).strip("_").lower() or "model"


def _start_folder(doc_path) -> str:
    return str(Path(doc_path).parent) if doc_path else str(Path.home())


def _run(parent, title: str, job) -> dict | None:
    QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
    try:
        return job()
    except errors.WiregradError as exc:
        QApplication.restoreOverrideCursor()
        QMessageBox.critical(parent, title, f"The graph cannot be exported.\n\n{exc}")
        return None
    except OSError as exc:
        QApplication.restoreOverrideCursor()
        QMessageBox.critical(parent, title, f"Cannot write the export: {exc}")
        return None
    finally:
        if QApplication.overrideCursor() is not None:
            QApplication.restoreOverrideCursor()


def export_onnx_dialog(parent, doc: dict, doc_path) -> dict | None:
    """Ask for options and a file, export, report. Returns the export summary or None."""
    options = ask_options(parent, "Export ONNX", onnx=True)
    if options is None:
        return None
    out = ask_onnx_path(parent, str(Path(_start_folder(doc_path)) / f"{_stem(doc, doc_path)}"
                                    ".onnx"))
    if not out:
        return None
    snapshot = copy.deepcopy(doc)
    result = _run(parent, "Export ONNX", lambda: api.export_onnx(
        snapshot, out, options["weights"], options["opset"], doc_path=doc_path))
    if result is not None:
        QMessageBox.information(parent, "Export ONNX", (
            f"Wrote {result['path']} (opset {options['opset']}).\n\n"
            f"Inputs: {', '.join(result['inputs'])}\nOutputs: {', '.join(result['outputs'])}\n"
            f"Weights: {result['weights']}"))
    return result


def export_torch_dialog(parent, doc: dict, doc_path) -> dict | None:
    """Ask for options and a folder, write the PyTorch project, report."""
    options = ask_options(parent, "Export PyTorch project", onnx=False)
    if options is None:
        return None
    folder = ask_folder(parent, _start_folder(doc_path))
    if not folder:
        return None
    target = Path(folder) / f"{_stem(doc, doc_path)}_torch"
    snapshot = copy.deepcopy(doc)
    result = _run(parent, "Export PyTorch project", lambda: api.export_torch(
        snapshot, target, options["weights"], doc_path=doc_path))
    if result is not None:
        names = ", ".join(Path(f).name for f in result["files"])
        QMessageBox.information(parent, "Export PyTorch project", (
            f"Wrote {names} into {result['path']}.\n\n"
            "Train with `python train.py` or `torchrun --standalone --nproc-per-node=N "
            f"train.py`.\nWeights: {result['weights']}"))
    return result
