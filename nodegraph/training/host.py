"""What the training UI may use of the main window (:class:`TrainingHost`), and the file
dialog it asks through (tests replace :func:`ask_file`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QMainWindow

from engine import api
from nodegraph.canvas.scene import GraphScene
from nodegraph.controller import Controller
from nodegraph.panels.inspector import Inspector


def ask_file(parent, title: str, filters: str, save: bool, suggestion: str = "") -> str | None:
    """A file dialog (tests replace this function)."""
    fn = QFileDialog.getSaveFileName if save else QFileDialog.getOpenFileName
    path, _ = fn(parent, title, suggestion, filters)
    return path or None


@dataclass
class TrainingHost:
    """All the training UI may use of the main window: narrow collaborators, not the window."""

    window: QMainWindow  # parent of the docks and dialogs (and the icons' style)
    controller: Controller
    scene: GraphScene
    inspector: Inspector
    status: Callable[..., None]  # (text, milliseconds=0): a status-bar message
    path: Callable[[], Path | None]  # the document's file (None: unsaved or a template)
    source: Callable[[], str | None]  # the file, or the preset a template came from
    focus_node: Callable[[str], None]
    autosave: Callable[[], object]
    undo_actions: Callable[[], dict]  # {"undo": QAction, "redo": QAction}

    def base_dir(self) -> str | None:
        """The document's folder (relative data and weight paths), None when unsaved."""
        path = self.path()
        return str(Path(path).parent) if path else None

    def document_path(self) -> str | None:
        """The document's file, or the preset it was opened from."""
        return self.source()

    def snapshot(self) -> dict:
        """The document as the engine takes it (the document's own layers embedded)."""
        return api.embed_layer_definitions(self.controller.model.snapshot())
