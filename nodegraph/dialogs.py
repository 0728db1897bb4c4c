"""Modal questions in one place, so tests can answer them (monkeypatch these functions)."""

from __future__ import annotations

from PySide6.QtWidgets import QFileDialog, QMessageBox

GRAPH_FILTER = "Wiregrad graphs (*.json *.wgz);;All files (*)"


def error(parent, title: str, text: str) -> None:
    QMessageBox.critical(parent, title, text)


def ask_unsaved(parent, name: str) -> str:
    """'save', 'discard' or 'cancel'."""
    box = QMessageBox(QMessageBox.Icon.Warning, "Unsaved changes",
                      f"Save the changes to “{name}” before closing?", parent=parent)
    save = box.addButton(QMessageBox.StandardButton.Save)
    discard = box.addButton(QMessageBox.StandardButton.Discard)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.exec()
    clicked = box.clickedButton()
    return "save" if clicked is save else "discard" if clicked is discard else "cancel"


def ask_recover(parent, description: str) -> str:
    """'recover', 'discard' or 'later' for an autosave left by a crashed session."""
    box = QMessageBox(QMessageBox.Icon.Question, "Recover unsaved work?",
                      "Wiregrad did not close normally last time.\n\n" + description
                      + "\n\nRecover it, or discard the autosave?", parent=parent)
    recover = box.addButton("Recover", QMessageBox.ButtonRole.AcceptRole)
    discard = box.addButton("Discard", QMessageBox.ButtonRole.DestructiveRole)
    box.addButton("Decide later", QMessageBox.ButtonRole.RejectRole)
    box.exec()
    clicked = box.clickedButton()
    return "recover" if clicked is recover else "discard" if clicked is discard else "later"


def open_path(parent, folder: str = "") -> str | None:
    path, _ = QFileDialog.getOpenFileName(parent, "Open graph", folder, GRAPH_FILTER)
    return path or None


def save_path(parent, suggestion: str = "") -> str | None:
    path, _ = QFileDialog.getSaveFileName(parent, "Save graph", suggestion,
                                          "Wiregrad graphs (*.json)")
    if path and not path.endswith(".json"):
        path += ".json"
    return path or None


def onnx_path(parent) -> str | None:
    path, _ = QFileDialog.getOpenFileName(parent, "Import an ONNX model", "",
                                          "ONNX models (*.onnx);;All files (*)")
    return path or None


def info(parent, title: str, text: str) -> None:
    QMessageBox.information(parent, title, text)


def export_path(parent, suggestion: str) -> str | None:
    path, _ = QFileDialog.getSaveFileName(parent, "Export canvas", suggestion,
                                          "PNG image (*.png);;SVG drawing (*.svg)")
    return path or None
