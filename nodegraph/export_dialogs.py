"""File ▸ Export ▸ ONNX… and PyTorch Project…: options, a file or folder chooser, and the
engine's error message when a graph cannot be exported (docs/export.md).

The menu calls ``export_onnx_dialog(win, doc, path, run)`` / ``export_torch_dialog(…)`` with
the open document, the file or preset it was loaded from (None for an unsaved graph; the
document's own weights are found from it, as the CLI finds them) and the last run's weights
``(path, label)`` when there was a run.
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
RUN_WEIGHTS = "The last run's weights"
LOADED_WEIGHTS = "The loaded weights"


class ExportOptions(QDialog):
    """Weights to export (and the ONNX opset)."""

    def __init__(self, parent, title: str, onnx: bool,
                 run: tuple[str, str] | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.weights_path: str | None = None
        self.run = run
        form = QFormLayout(self)
        self.weights = QComboBox()
        self.weights.addItems([OWN_WEIGHTS, CHOOSE_WEIGHTS])
        if run is not None:
            loaded = run[1].startswith("loaded from ")  # File ▸ Load Weights…, after any run
            self.weights.addItem(f"{LOADED_WEIGHTS if loaded else RUN_WEIGHTS} ({run[1]})")
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
        if index == 2 and self.run is not None:
            self.weights_path = self.run[0]
            self.weights_label.setText(Path(self.run[0]).name)
            return
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


def ask_options(parent, title: str, onnx: bool,
                run: tuple[str, str] | None = None) -> dict | None:
    """``{"weights": path | None, "opset": int}``, or None when cancelled."""
    dialog = ExportOptions(parent, title, onnx, run)
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


def export_onnx_dialog(parent, doc: dict, doc_path,
                       run: tuple[str, str] | None = None) -> dict | None:
    """Ask for options and a file, export, report. Returns the export summary or None."""
    options = ask_options(parent, "Export ONNX", True, run)
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


def export_torch_dialog(parent, doc: dict, doc_path,
                        run: tuple[str, str] | None = None) -> dict | None:
    """Ask for options and a folder, write the PyTorch project, report."""
    options = ask_options(parent, "Export PyTorch project", False, run)
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
