"""File handling for the main window: open / save / templates / recent files / export / autosave
and the unsaved-changes prompt — :class:`DocumentFiles`, a collaborator the window owns (no
mixin). It knows the window only as the parent of its dialogs and through two callbacks: the
title to refresh and a status-bar message."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QRectF, QSize, QTimer
from PySide6.QtGui import QImage, QPainter

from engine import api
from engine.api import document, errors, paths
from nodegraph import dialogs, theme
from nodegraph.editing import autosave

MAX_RECENT = 10


def recent_file() -> Path:
    return paths.config_dir() / "recent.json"


def read_recent() -> list[str]:
    try:
        data = json.loads(recent_file().read_text())
        return [p for p in data if isinstance(p, str)][:MAX_RECENT]
    except (OSError, ValueError, TypeError):
        return []


def add_recent(path: str) -> None:
    items = [path] + [p for p in read_recent() if p != path]
    paths.ensure(recent_file().parent)
    recent_file().write_text(json.dumps(items[:MAX_RECENT]))


def is_preset(path: Path) -> bool:
    try:
        return any(Path(p["path"]).resolve() == path.resolve() for p in api.list_presets())
    except OSError:
        return False


def load_graph(what: str) -> tuple[dict, Path | None, bool]:
    """(document, path to save to or None, opened as template) — raises errors.WiregradError."""
    doc, path = api.open_graph(what)
    template = is_preset(path) or str(what).endswith(".wgz")
    return doc, (None if template else path), template


class DocumentFiles(QObject):
    """The open document's file: where it lives (``path``; ``template`` when it came from a
    preset or bundle and Save must ask), opening, saving, recent files, autosave, recovery."""

    def __init__(self, window, controller, view, status: Callable[..., None],
                 changed: Callable[[], None], path: Path | None = None,
                 template: bool = False, autosave_enabled: bool = True) -> None:
        super().__init__(window)
        self.window, self.controller, self.view = window, controller, view
        self.status, self.changed = status, changed
        self.path, self.template = path, template
        self.refresh_recent_menu: Callable[[], None] = lambda: None  # set by the menus
        self.autosaver = autosave.Autosave()
        self.autosave_timer = QTimer(self)
        self.autosave_timer.setInterval(autosave.INTERVAL_MS)
        self.autosave_timer.timeout.connect(self.autosave_now)
        self.autosave_soon = QTimer(self)  # debounced: restarted by every edit
        self.autosave_soon.setSingleShot(True)
        self.autosave_soon.setInterval(autosave.DEBOUNCE_MS)
        self.autosave_soon.timeout.connect(self.autosave_now)
        if autosave_enabled:
            self.autosave_timer.start()
            controller.stack.indexChanged.connect(lambda _index: self.autosave_soon.start())

    # ------------------------------------------------------------------ state

    def display_name(self) -> str:
        if self.path is not None:
            return Path(self.path).name
        return self.controller.model.doc.get("meta", {}).get("name") or "untitled"

    def document_source(self) -> str | None:
        """The document's file, or the preset it was opened from as a template (where its
        own weights are found: sampling, export, predictions)."""
        path = self.path
        if path is None and self.template:
            name = self.controller.model.doc.get("meta", {}).get("name")
            path = next((p["path"] for p in api.list_presets() if p["title"] == name), None)
        return str(path) if path else None

    def is_dirty(self) -> bool:
        return not self.controller.stack.isClean()

    # ------------------------------------------------------------------ open

    def open_document(self, what: str) -> bool:
        """Open a file, preset name or bundle; on error show the loader's message and keep
        the open graph untouched."""
        try:
            doc, path, template = load_graph(what)
        except (errors.WiregradError, OSError, ValueError) as exc:
            dialogs.error(self.window, "Cannot open graph", str(exc))
            return False
        if not self.maybe_save():
            return False
        self.set_document(doc, path, template)
        if path is not None:
            add_recent(str(path))
            self.refresh_recent_menu()
        return True

    def set_document(self, doc: dict, path: Path | None, template: bool) -> None:
        self.path, self.template = path, template
        self.controller.replace_document(doc)
        self.autosaver.clear()
        self.changed()
        QTimer.singleShot(0, self.view.fit)

    def open(self) -> None:
        path = dialogs.open_path(self.window)
        if path:
            self.open_document(path)

    def import_onnx(self) -> None:
        """File ▸ Import: an ONNX model becomes a graph document saved where the user says,
        its weights beside it, then opened (nothing is written when it does not map)."""
        source = dialogs.onnx_path(self.window)
        if not source:
            return
        out = dialogs.save_path(self.window, str(Path(source).with_suffix(".json")))
        if not out:
            return
        try:
            report = api.import_onnx_to(source, out)
        except (errors.WiregradError, OSError) as exc:
            dialogs.error(self.window, "Cannot import the model", str(exc))
            return
        if self.open_document(report["path"]):
            self.status(f"Imported {Path(source).name}: {report['summary'].splitlines()[0]}")
            dialogs.info(self.window, "Imported", report["summary"])

    def new(self) -> None:
        if self.maybe_save():
            self.set_document(document.new_document(), None, False)

    # ------------------------------------------------------------------ save

    def save_to(self, path: Path) -> bool:
        doc = api.embed_layer_definitions(self.controller.model.snapshot())
        try:
            # a BPE node's tokenizer trained by a run (or cached) goes into the file, so the
            # saved graph samples without its corpus / TSV; Save never trains one itself
            base = Path(self.path).parent if self.path is not None else Path(path).parent
            doc = api.store_tokenizers(doc, base, train=False)
            document.save(doc, path)
        except (errors.WiregradError, OSError) as exc:
            dialogs.error(self.window, "Cannot save graph", str(exc))
            return False
        self.path, self.template = Path(path), False
        self.controller.stack.setClean()
        self.autosaver.clear()
        add_recent(str(path))
        self.refresh_recent_menu()
        self.changed()
        self.status(f"Saved {path}", 4000)
        return True

    def save(self) -> bool:
        if self.path is None or self.template:
            return self.save_as()
        return self.save_to(Path(self.path))

    def save_as(self) -> bool:
        suggestion = str(Path.home() / f"{self.display_name().removesuffix('.json')}.json")
        path = dialogs.save_path(self.window, suggestion)
        return self.save_to(Path(path)) if path else False

    def maybe_save(self) -> bool:
        """True when it is fine to drop the current document (saved, discarded)."""
        if not self.is_dirty():
            return True
        answer = dialogs.ask_unsaved(self.window, self.display_name())
        if answer == "save":
            return self.save()
        return answer == "discard"

    # ------------------------------------------------------------------ autosave

    def autosave_now(self) -> Path | None:
        if not self.is_dirty():
            return None
        try:
            return self.autosaver.write(self.controller.model.snapshot(),
                                        str(self.path) if self.path else None)
        except (errors.WiregradError, OSError) as exc:
            self.status(f"Autosave failed: {exc}", 8000)
            return None

    def offer_recovery(self) -> bool:
        """Offer each crashed session's snapshot; returns True when one was recovered."""
        for orphan in autosave.orphans():
            when = orphan.get("name") or orphan.get("source") or "an unsaved graph"
            answer = dialogs.ask_recover(self.window, f"An autosave of “{when}” was found.")
            if answer == "discard":
                autosave.discard(orphan)
            elif answer == "recover":
                try:
                    doc = document.load(orphan["path"])
                except errors.WiregradError as exc:
                    dialogs.error(self.window, "Cannot recover", str(exc))
                    continue
                source = orphan.get("source")
                self.set_document(doc, Path(source) if source else None, False)
                self.controller.stack.resetClean()  # recovered work is unsaved
                self.autosave_now()
                autosave.discard(orphan)
                self.changed()
                return True
        return False

    # ------------------------------------------------------------------ export

    def export_image(self, path: str) -> None:
        scene = self.view.scene()
        rect = QRectF()
        for item in scene.items():
            if item.parentItem() is None and item.isVisible():
                rect = rect.united(item.sceneBoundingRect())
        rect = rect.adjusted(-40, -40, 40, 40)
        scene.clearSelection()
        if path.lower().endswith(".svg"):
            from PySide6.QtSvg import QSvgGenerator

            gen = QSvgGenerator()
            gen.setFileName(path)
            gen.setSize(QSize(int(rect.width()), int(rect.height())))
            gen.setViewBox(QRectF(0, 0, rect.width(), rect.height()))
            gen.setTitle(self.display_name())
            painter = QPainter(gen)
            painter.fillRect(QRectF(0, 0, rect.width(), rect.height()), theme.BACKGROUND)
            scene.render(painter, QRectF(0, 0, rect.width(), rect.height()), rect)
            painter.end()
            return
        scale = 2.0 if rect.width() * rect.height() < 2.5e7 else 1.0
        image = QImage(int(rect.width() * scale), int(rect.height() * scale),
                       QImage.Format.Format_ARGB32)
        image.fill(theme.BACKGROUND)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        scene.render(painter, QRectF(0, 0, image.width(), image.height()), rect)
        painter.end()
        image.save(path)

    def export(self) -> None:
        path = dialogs.export_path(self.window, str(Path.home() / "graph.png"))
        if path:
            self.export_image(path)
