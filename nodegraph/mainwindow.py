"""The main window: canvas, docks (palette, inspector, diagnostics), breadcrumb, menus,
toolbar and status bar. Edit behaviour lives in the ``EditActions`` collaborator
(``editactions``), files in ``DocumentFiles`` (``files``), training in ``TrainingUI``
(``nodegraph.training``): collaborators given what they need, no mixins."""

from __future__ import annotations

import contextlib
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from engine.api import document
from nodegraph.canvas.minimap import Minimap
from nodegraph.canvas.scene import GraphScene
from nodegraph.canvas.view import GraphView
from nodegraph.controller import Controller
from nodegraph.editactions import EditActions
from nodegraph.editing.specs import Catalog
from nodegraph.files import DocumentFiles
from nodegraph.menus import build_menus
from nodegraph.panels.inspector import Inspector
from nodegraph.panels.palette import Palette
from nodegraph.panels.summary import LayerSummary


class MainWindow(QMainWindow):
    def __init__(self, doc: dict | None = None, path: Path | None = None,
                 template: bool = False, warm_up: bool = False, autosave: bool = True,
                 catalog: Catalog | None = None) -> None:
        super().__init__()
        self.controller = Controller(doc or document.new_document(), catalog, parent=self)
        self.scene = GraphScene(self.controller, self)
        self.view = GraphView(self.scene)
        self.files = DocumentFiles(
            self, self.controller, self.view,
            status=lambda text, ms=0: self.statusBar().showMessage(text, ms),
            changed=lambda: self.update_title(), path=path, template=template,
            autosave_enabled=autosave)
        self.minimap = Minimap(self.view)
        self.minimap.hide()
        self.edit = EditActions(
            self.controller, self.scene, self.view,
            status=lambda text, ms=0: self.statusBar().showMessage(text, ms), parent=self,
            palette_changed=lambda: self.refresh_palette(),
            show_diagnostics=lambda: self.diagnostics_dock.raise_())
        self._build_central()
        self._build_docks()
        self._build_status()
        self.actions_by_name = build_menus(self)
        self._connect()
        self.resize(1440, 900)
        self.update_title()
        self.refresh_palette()
        self.refresh_status(self.controller.validation)
        if warm_up:
            self.start_warm_up()

    # ------------------------------------------------------------------ layout

    def _build_central(self) -> None:
        central = QWidget()
        box = QVBoxLayout(central)
        box.setContentsMargins(0, 0, 0, 0)
        box.setSpacing(0)
        self.crumbs = QWidget()
        self.crumbs.setStyleSheet("background: #2b2e34;")
        self.crumb_box = QHBoxLayout(self.crumbs)
        self.crumb_box.setContentsMargins(6, 3, 6, 3)
        box.addWidget(self.crumbs)
        box.addWidget(self.view)
        self.setCentralWidget(central)

    def _dock(self, title: str, widget: QWidget, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(title.lower())
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _build_docks(self) -> None:
        self.palette = Palette(self.controller.catalog)
        self.palette_dock = self._dock("Palette", self.palette,
                                       Qt.DockWidgetArea.LeftDockWidgetArea)
        self.inspector = Inspector(self.controller)
        self.inspector.base_dir_provider = (
            lambda: str(Path(self.path).parent) if self.path else None)
        self.inspector_dock = self._dock("Inspector", self.inspector,
                                         Qt.DockWidgetArea.RightDockWidgetArea)
        self.diagnostics = QListWidget()
        self.diagnostics.setWordWrap(True)
        self.diagnostics_dock = self._dock("Diagnostics", self.diagnostics,
                                           Qt.DockWidgetArea.RightDockWidgetArea)
        self.summary = LayerSummary(self.controller)
        self.summary.node_clicked.connect(lambda node: self.edit.focus_node(node))
        self.summary_dock = self._dock("Layer Summary", self.summary,
                                       Qt.DockWidgetArea.BottomDockWidgetArea)
        self._build_training()
        self.resizeDocks([self.palette_dock, self.inspector_dock], [210, 300],
                         Qt.Orientation.Horizontal)
        self.resizeDocks([self.inspector_dock, self.diagnostics_dock], [600, 160],
                         Qt.Orientation.Vertical)

    def _build_training(self) -> None:
        """Run ▸ Train and the Training / Sampling / Debugger docks (``nodegraph.training``),
        given only what they need of this window."""
        from nodegraph.training.coordinator import TrainingHost, TrainingUI
        from nodegraph.training.explorer_route import ExplorerRoute

        self.training = TrainingUI(TrainingHost(
            window=self, controller=self.controller, scene=self.scene, inspector=self.inspector,
            status=lambda text, ms=0: self.statusBar().showMessage(text, ms),
            path=lambda: self.path, source=self.files.document_source,
            focus_node=self.edit.focus_node, autosave=self.files.autosave_now,
            undo_actions=lambda: {k: self.actions_by_name[k] for k in ("undo", "redo")}))
        training, sampling, debugger = self.training.docks
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, training)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, sampling)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, debugger)
        self.tabifyDockWidget(training, sampling)
        self.tabifyDockWidget(sampling, self.summary_dock)  # wide rows: beside Training
        self.tabifyDockWidget(self.inspector_dock, debugger)
        self.explorer = ExplorerRoute(self.training)  # the Tokens dock: embeddings, tokenizer
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.explorer.dock)
        self.tabifyDockWidget(debugger, self.explorer.dock)
        training.raise_()
        self.inspector_dock.raise_()
        QTimer.singleShot(0, self.size_docks)

    def size_docks(self) -> None:
        training, _sampling, debugger = self.training.docks
        with contextlib.suppress(RuntimeError):  # the window is already gone
            self.resizeDocks([training], [max(330, self.height() * 2 // 5)],
                             Qt.Orientation.Vertical)
            self.resizeDocks([debugger], [380], Qt.Orientation.Horizontal)
            self.resizeDocks([debugger, self.diagnostics_dock], [500, 90],
                             Qt.Orientation.Vertical)
            self.view.fit()

    def _build_status(self) -> None:
        bar = self.statusBar()
        self.diag_label = QLabel()
        self.params_label = QLabel()
        self.file_label = QLabel()
        self.zoom_label = QLabel("100 %")
        self.warm_bar = QProgressBar()
        self.warm_bar.setMaximumWidth(160)
        self.warm_bar.setFormat("kernels %v/%m")
        self.warm_bar.hide()
        for w in (self.warm_bar, self.diag_label, self.params_label, self.zoom_label,
                  self.file_label):
            bar.addPermanentWidget(w)

    def _connect(self) -> None:
        c = self.controller
        c.validated.connect(self.refresh_status)
        c.message.connect(lambda m: self.statusBar().showMessage(m, 6000))
        c.scope_changed.connect(self.refresh_crumbs)
        c.scope_changed.connect(lambda: self.view.fit())
        c.document_replaced.connect(self.refresh_palette)
        c.stack.cleanChanged.connect(self._clean_changed)
        self.scene.selectionChanged.connect(self._selection_changed)
        self.scene.enter_requested.connect(self.edit.enter_layer)
        self.view.quick_add.connect(self.edit.open_quick_add)
        self.view.zoom_changed.connect(lambda z: self.zoom_label.setText(f"{z * 100:.0f} %"))
        self.view.zoom_changed.connect(lambda _z: self._refresh_minimap())
        self.palette.activated.connect(self.edit.add_from_palette)
        self.diagnostics.itemClicked.connect(
            lambda item: self.edit.focus_node(item.data(Qt.ItemDataRole.UserRole)))
        self.refresh_crumbs()

    # ------------------------------------------------------------------ refreshers

    def _clean_changed(self, _clean: bool) -> None:
        with contextlib.suppress(RuntimeError):  # the undo stack is being destroyed with the window
            self.update_title()

    def _selection_changed(self) -> None:
        try:
            ids = self.scene.selected_node_ids()
        except RuntimeError:  # the scene is being torn down
            return
        self.inspector.show_node(ids[0] if len(ids) == 1 else None)

    def refresh_status(self, result: dict) -> None:
        diags = result.get("diagnostics", [])
        errors = sum(1 for d in diags if d["severity"] == "error")
        warnings = len(diags) - errors
        color = "#e44848" if errors else "#6ee68c"
        self.diag_label.setText(f"<span style='color:{color}'>{errors} error(s)</span>, "
                                f"{warnings} warning(s)")
        self.params_label.setText(f"{result.get('total_params', 0):,} parameters")
        self.diagnostics.clear()
        for d in diags:
            where = d.get("node") or "graph"
            item = QListWidgetItem(f"{d['severity']}: {where}: {d['message']}")
            item.setData(Qt.ItemDataRole.UserRole, d.get("node"))
            item.setForeground(Qt.GlobalColor.red if d["severity"] == "error"
                               else Qt.GlobalColor.yellow)
            self.diagnostics.addItem(item)
        self._refresh_minimap()

    def _refresh_minimap(self) -> None:
        if self.minimap.isVisible():
            self.minimap.refit()
            self.minimap.place()
            self.minimap.viewport().update()

    def refresh_crumbs(self) -> None:
        while self.crumb_box.count():
            item = self.crumb_box.takeAt(0)
            if item.widget():
                item.widget().deleteLater()
        scopes = self.controller.scopes
        for depth, scope in enumerate(scopes):
            label = self.display_name() if depth == 0 else scope.label
            if scope.read_only and depth:
                label += " (built-in, read-only)"
            button = QPushButton(label)
            button.setFlat(True)
            button.setEnabled(depth < len(scopes) - 1)
            button.clicked.connect(lambda _=False, d=depth: self.controller.leave(d))
            self.crumb_box.addWidget(button)
            if depth < len(scopes) - 1:
                self.crumb_box.addWidget(QLabel("›"))
        self.crumb_box.addStretch(1)
        self.crumbs.setVisible(len(scopes) > 1)

    def refresh_palette(self) -> None:
        from engine import api

        doc = self.controller.model.doc
        extra = {}
        for name, ldef in doc.get("layers", {}).items():
            if name not in self.controller.catalog.ops and isinstance(ldef, dict):
                try:
                    extra[name] = api.layer_entry(name, ldef, user=False)
                except Exception:  # noqa: BLE001 (a malformed local layer is shown as unknown)
                    continue
        self.palette.populate(extra)

    @property
    def path(self) -> Path | None:
        """The document's file (None: unsaved, or a template)."""
        return self.files.path

    @property
    def template(self) -> bool:
        return self.files.template

    def display_name(self) -> str:
        return self.files.display_name()

    def update_title(self) -> None:
        state = "template (Save asks for a path)" if self.template else (
            "unsaved" if self.path is None else str(self.path))
        dirty = self.files.is_dirty()
        self.file_label.setText(("● modified · " if dirty else "") + state)
        self.setWindowTitle(f"{'*' if dirty else ''}{self.display_name()} — Wiregrad")
        if hasattr(self, "crumb_box"):
            self.refresh_crumbs()

    def toggle_minimap(self, on: bool) -> None:
        self.minimap.setVisible(on)
        self._refresh_minimap()

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._refresh_minimap()

    def start_warm_up(self) -> None:
        """Have the engine worker compile this graph's kernels now and after each edit (the
        worker's process, not the GUI's; see nodegraph.training.warmup)."""
        warmer = self.training.warmer
        self.warm_bar.setRange(0, 0)  # busy: the worker reports only the end
        self.warm_bar.setFormat("compiling kernels")
        warmer.requested.connect(lambda _key: self.warm_bar.show())
        warmer.done.connect(lambda msg: (self.warm_bar.hide(),
                                         self.statusBar().showMessage(msg, 5000)))
        warmer.enable()

    def closeEvent(self, event) -> None:  # noqa: N802
        if not self.files.maybe_save():
            event.ignore()
            return
        self.files.autosave_timer.stop()
        self.files.autosaver.clear()
        self.training.shutdown()
        event.accept()

    def shortcut(self, name: str) -> QKeySequence:
        return self.actions_by_name[name].shortcut()
