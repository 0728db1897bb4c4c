"""Training, inspection and sampling in the main window: the Run menu's actions, the Training /
Inspect / Sampling docks, the structural-edit lock while a run is live, error reporting with
the node highlighted, and autosave when training stops.

The worker does the computing (``nodegraph.training.session``); this object only routes plain data.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QFileDialog, QMessageBox, QStyle

from engine import api
from engine.api import paths
from nodegraph import dialogs
from nodegraph.training.controls import Eta
from nodegraph.training.debugger import EdgeOverlay, InspectDock
from nodegraph.training.dock import TrainingDock
from nodegraph.training.lock import EditLock
from nodegraph.training.runs import RunData
from nodegraph.training.sampling import SamplingPanel
from nodegraph.training.session import TrainingSession

REFRESH_MS = 50  # plots and progress at 20 Hz
INSPECT_MS = 1500


def ask_file(parent, title: str, filters: str, save: bool, suggestion: str = "") -> str | None:
    """A file dialog (tests replace this function)."""
    fn = QFileDialog.getSaveFileName if save else QFileDialog.getOpenFileName
    path, _ = fn(parent, title, suggestion, filters)
    return path or None


class TrainingUI(QObject):
    def __init__(self, win) -> None:
        super().__init__(win)
        self.win = win
        self.session = TrainingSession(self)
        self.actions = self._make_actions()
        self.dock_widget = TrainingDock(self.actions)
        self.inspect_widget = InspectDock()
        self.sampling = SamplingPanel(lambda: win.controller.model.snapshot())
        self.docks = [self._dock("Training", self.dock_widget, "bottom"),
                      self._dock("Sampling", self.sampling, "bottom"),
                      self._dock("Debugger", self.inspect_widget, "right")]
        win.tabifyDockWidget(self.docks[0], self.docks[1])
        win.tabifyDockWidget(win.inspector_dock, self.docks[2])
        self.docks[0].raise_()
        win.inspector_dock.raise_()
        QTimer.singleShot(0, self.size_docks)
        self.overlay = EdgeOverlay(win.scene)
        self.lock = EditLock(win)
        self.runs: list[RunData] = []
        self.current: RunData | None = None
        self.eta = Eta()
        self.last_inspection: dict | None = None
        self.last_gradcheck: dict | None = None
        self.errors: list[dict] = []
        self._connect()
        self.refresh_sampling_source()
        self._update_actions()

    # ------------------------------------------------------------------ construction

    def _dock(self, title: str, widget, where: str) -> QDockWidget:
        dock = QDockWidget(title, self.win)
        dock.setObjectName(title.lower())
        dock.setWidget(widget)
        area = (Qt.DockWidgetArea.BottomDockWidgetArea if where == "bottom"
                else Qt.DockWidgetArea.RightDockWidgetArea)
        self.win.addDockWidget(area, dock)
        return dock

    def size_docks(self) -> None:
        with contextlib.suppress(RuntimeError):  # the window is already gone
            self.win.resizeDocks([self.docks[0]], [max(330, self.win.height() * 2 // 5)],
                                 Qt.Orientation.Vertical)
            self.win.resizeDocks([self.docks[2]], [380], Qt.Orientation.Horizontal)
            self.win.resizeDocks([self.docks[2], self.win.diagnostics_dock], [500, 90],
                                 Qt.Orientation.Vertical)
            self.win.view.fit()

    def _make_actions(self) -> dict[str, QAction]:
        P = QStyle.StandardPixmap
        spec = [("train", "&Train", self.train, "F5", P.SP_MediaPlay),
                ("pause", "&Pause", self.session.pause, "F6", P.SP_MediaPause),
                ("resume", "&Resume", self.session.resume, "F7", P.SP_MediaSeekForward),
                ("step", "&Step", self.session.step, "F10", P.SP_MediaSkipForward),
                ("stop", "St&op", self.session.stop, "Shift+F5", P.SP_MediaStop),
                ("gradcheck", "&Gradient-check Selected", self.gradcheck_selected, None, None),
                ("heat", "Colour Wires by &Gradient Norm", self.overlay_heat, None, None),
                ("sample", "&Generate Sample", self.generate_sample, None, None),
                ("predict_file", "Predict on &File…", self.predict_file_dialog, None, None)]
        out = {}
        for name, text, slot, key, icon in spec:
            act = QAction(text, self.win)
            if key:
                act.setShortcut(QKeySequence(key))
            if icon is not None:
                act.setIcon(self.win.style().standardIcon(icon))
            act.triggered.connect(lambda _=False, s=slot: s())
            out[name] = act
        out["heat"].setCheckable(True)
        out["step"].setToolTip("Run exactly one batch, then pause (F10)")
        out["train"].setToolTip("Train this graph in the engine worker (F5)")
        return out

    def _connect(self) -> None:
        s, d = self.session, self.dock_widget
        s.started.connect(self.on_started)
        s.records.connect(self.on_records)
        s.state_changed.connect(self.on_state)
        s.finished.connect(self.on_finished)
        s.failed.connect(self.on_failed)
        s.inspected.connect(self.on_inspected)
        s.saved.connect(self.on_saved)
        s.gradchecked.connect(self.on_gradchecked)
        s.predicted.connect(self.inspect_widget.predictions.show_predictions)
        self.inspect_widget.predictions.predict_file_requested.connect(self.predict_file_dialog)
        self.inspect_widget.currentChanged.connect(lambda _i: self.request_predictions())
        c = d.controls
        c.apply_hparams.connect(lambda v: self.session.set_hparams(**v))
        c.save_checkpoint.connect(self.session.save_checkpoint)
        c.resume_checkpoint.connect(self.resume_from_checkpoint)
        c.save_bundle.connect(self.save_bundle)
        d.plots.png_button.clicked.connect(self.export_png_dialog)
        d.plots.csv_button.clicked.connect(self.export_csv_dialog)
        d.runs.overlays_changed.connect(self._show_runs)
        d.runs.itemSelectionChanged.connect(self._show_runs)
        self.sampling.attention_ready.connect(self.inspect_widget.attention.show_maps)
        self.sampling.attention_ready.connect(
            lambda *_: self.inspect_widget.setCurrentWidget(self.inspect_widget.attention))
        self.sampling.use_run_weights.connect(self.sample_with_run_weights)
        self.sampling.open_button.clicked.connect(self.open_weights)
        self.lock.hot_edit.connect(lambda v: self.session.set_hparams(**v))
        self.win.controller.document_replaced.connect(self.refresh_sampling_source)
        self.win.scene.selectionChanged.connect(self._selection_changed)
        self.refresh_timer = QTimer(self)
        self.refresh_timer.setInterval(REFRESH_MS)
        self.refresh_timer.timeout.connect(self.refresh)
        self.inspect_timer = QTimer(self)
        self.inspect_timer.setInterval(INSPECT_MS)
        self.inspect_timer.timeout.connect(self.request_inspection)
        self.inspect_timer.timeout.connect(self.request_predictions)

    # ------------------------------------------------------------------ training

    def train(self, steps: int | None = None, resume: str | None = None, *,
              paused: bool = False, weights: str | None = None) -> RunData | None:
        """Start a run (*paused*: before its first step; *weights*: start from that file)."""
        if self.session.active:
            return None
        result = self.win.controller.revalidate(force=True)
        errors = [d for d in result.get("diagnostics", []) if d["severity"] == "error"]
        if errors:
            self.report({"where": "validate", "message": errors[0]["message"],
                         "node": errors[0].get("node")}, "Cannot train this graph")
            return None
        doc = api.embed_layer_definitions(self.win.controller.model.snapshot())
        run = RunData(len(self.runs) + 1, f"run {len(self.runs) + 1}")
        name = (doc.get("meta", {}).get("name") or "graph").lower().replace(" ", "_")[:40]
        run.folder = str(paths.runs_dir() / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-"
                                            f"{run.id}")
        self.runs.append(run)
        self.current = run
        self.dock_widget.runs.add_run(run)
        self._show_runs()
        self.eta.reset()
        base = str(Path(self.win.path).parent) if self.win.path else None
        self.lock.engage(doc)
        self.session.train(doc, base, run.folder, steps=steps, resume=resume, paused=paused,
                           weights=weights)
        self.refresh_timer.start()
        self.docks[0].raise_()
        return run

    def on_started(self, msg: dict) -> None:
        run = self.current
        if run is None:
            return
        run.graph_hash, run.hparams = msg["graph_hash"], dict(msg["hparams"])
        run.total_steps, run.status, run.folder = msg["total_steps"], "running", msg["folder"]
        self.dock_widget.controls.set_hparams(run.hparams)
        self.dock_widget.runs.update_run(run)
        self.inspect_timer.start()

    def on_records(self, records: list) -> None:
        if self.current is not None:
            self.current.add(records)
            self.eta.add(self.current.step)

    def refresh(self) -> None:
        run = self.current
        self.dock_widget.plots.refresh()
        if run is not None:
            left = self.eta.seconds_left(run.total_steps)
            self.dock_widget.controls.set_progress(run.step, run.total_steps, left,
                                                   self.session.state)
            self.dock_widget.runs.update_run(run)
        if not self.session.active and self.dock_widget.plots.up_to_date:
            self.refresh_timer.stop()

    def on_state(self, state: str) -> None:
        if self.current is not None and state in ("running", "paused"):
            self.current.status = state
        self._update_actions()
        if state == "paused":
            self.request_inspection()
            self.request_predictions()
        if state == "idle":
            self.inspect_timer.stop()
            self.lock.release()
            self.refresh_timer.start()  # draws what is still pending, then stops

    def _update_actions(self) -> None:
        state = self.session.state
        a = self.actions
        a["train"].setEnabled(state == "idle")
        a["pause"].setEnabled(state == "running")
        a["resume"].setEnabled(state == "paused")
        a["step"].setEnabled(state in ("running", "paused"))
        a["stop"].setEnabled(state in ("starting", "running", "paused"))
        self.dock_widget.controls.set_state(state, self.session.has_trainer)

    def on_finished(self, msg: dict) -> None:
        run = self.current
        if run is not None:
            run.status = msg.get("reason", "finished")
            run.final = dict(msg.get("final") or {})
            run.folder = msg.get("folder", run.folder)
            run.weights = msg.get("weights")
            self.dock_widget.runs.update_run(run)
            if run.weights and api.is_language_model(self.win.controller.model.doc):
                self.sampling.set_weights(run.weights, f"{run.name} · step {run.step}")
        self._update_actions()
        self.win.autosave_now()
        self.request_inspection()
        self.request_predictions()
        self.win.statusBar().showMessage(
            f"Training {msg.get('reason', 'finished')} at step {msg.get('step')}; "
            f"checkpoint and weights in {msg.get('folder')}", 8000)

    def on_failed(self, msg: dict) -> None:
        self.errors.append(msg)
        where = msg.get("where")
        if where in ("train", "worker"):
            if self.current is not None:
                self.current.status = "crashed" if msg.get("crashed") else "failed"
                self.dock_widget.runs.update_run(self.current)
            self.lock.release()
            self._update_actions()
            self.win.autosave_now()
            title = "Engine worker crashed" if msg.get("crashed") else "Training failed"
        elif where in ("inspect", "predictions"):
            self.win.statusBar().showMessage(f"{where.capitalize()} failed: {msg['message']}",
                                             6000)
            return
        else:
            title = f"{str(where).replace('_', ' ').capitalize()} failed"
        self.report(msg, title)

    def report(self, msg: dict, title: str) -> None:
        """An error dialog (after the current event) with the node selected and marked."""
        node = msg.get("node")
        text = msg.get("message", "unknown error")
        if node:
            node = str(node).split(".")[0]
            text = f"node '{node}': {text}"
            self.win.focus_node(node)
            item = self.win.scene.nodes.get(node)
            if item is not None:
                item.set_status(item.footer, [*item.errors, msg.get("message", "")],
                                item.warnings)
        self.win.statusBar().showMessage(f"{title}: {text}", 10000)
        QTimer.singleShot(0, lambda: dialogs.error(self.win, title, text))

    # ------------------------------------------------------------------ inspection

    def _selected_node(self) -> str | None:
        try:
            ids = self.win.scene.selected_node_ids()
        except RuntimeError:
            return None
        return ids[0] if len(ids) == 1 else None

    def request_inspection(self) -> None:
        self.session.inspect(self._selected_node())

    def _selection_changed(self) -> None:
        if self.session.has_trainer and self._selected_node():
            self.request_inspection()

    def on_inspected(self, msg: dict) -> None:
        self.last_inspection = msg
        self.overlay.update(msg.get("edges", []), msg.get("step", 0))
        if msg.get("detail"):
            self.inspect_widget.node.show_detail(msg["detail"], msg.get("step", 0))

    def request_predictions(self, force: bool = False) -> bool:
        """Ask the worker for the Predictions tab's data when that tab is shown."""
        panel = self.inspect_widget.predictions
        if force or self.inspect_widget.currentWidget() is panel:
            return self.session.predictions()
        return False

    def predict_file_dialog(self) -> None:
        path = ask_file(self.win, "Predict on file", "Data (*.csv *.tsv *.txt *.npy *.png "
                        "*.jpg *.jpeg);;All files (*)", False)
        if path:
            self.predict_file(path)

    def predict_file(self, path: str) -> None:
        """The model's outputs for *path*: the current run's weights when there is a run
        (the worker writes them now), else the document's, else a fresh initialisation."""
        self.docks[2].raise_()
        self.inspect_widget.setCurrentWidget(self.inspect_widget.predictions)
        if self.session.has_trainer and self.session.save_weights(request=f"predict:{path}"):
            return
        self._predict_with(path, None)

    def _predict_with(self, path: str, weights: str | None) -> None:
        doc = api.embed_layer_definitions(self.win.controller.model.snapshot())
        doc_path = self._document_path()
        base = str(Path(self.win.path).parent) if self.win.path else None
        self.inspect_widget.predictions.predict(path=path, doc=doc, weights=weights,
                                                doc_path=doc_path, base_dir=base)

    def overlay_heat(self) -> None:
        self.overlay.set_heat(self.actions["heat"].isChecked())
        if self.overlay.heat and self.overlay.range:
            lo, hi = self.overlay.range
            self.win.statusBar().showMessage(
                f"Wire halo = gradient norm on the last batch: blue 1e{lo:.1f} → yellow → "
                f"red 1e{hi:.1f} (log scale)", 15000)

    def gradcheck_selected(self) -> None:
        node = self._selected_node()
        if node is None:
            self.win.statusBar().showMessage("Select one node to gradient-check", 4000)
            return
        doc = api.embed_layer_definitions(self.win.controller.model.snapshot())
        base = str(Path(self.win.path).parent) if self.win.path else None
        self.win.statusBar().showMessage(f"Gradient-checking {node} in the engine worker…")
        self.session.gradcheck(doc, node, base)

    def on_gradchecked(self, msg: dict) -> None:
        self.last_gradcheck = msg
        lines = [f"{r['id']}: max relative error {r['max_rel_err']:.2e} over {r['checked']} "
                 f"coordinates — {'ok' if r['ok'] else 'FAILED'}" for r in msg["nodes"]]
        verdict = "passed" if msg["ok"] else "FAILED"
        self.win.statusBar().showMessage(f"Gradient check of {msg['node']} {verdict}", 8000)
        box = QMessageBox(QMessageBox.Icon.Information if msg["ok"] else
                          QMessageBox.Icon.Warning, "Gradient check",
                          f"Gradient check of {msg['node']} {verdict} (float64 central "
                          f"differences):\n\n" + "\n".join(lines), parent=self.win)
        box.setModal(False)
        box.show()
        self.gradcheck_box = box

    # ------------------------------------------------------------------ runs and files

    def _show_runs(self) -> None:
        runs = self.dock_widget.runs
        shown = runs.selected_run() or self.current
        overlays = [runs.runs[i] for i in runs.overlay_ids()]
        self.dock_widget.plots.show_run(shown, overlays)

    def export_csv(self, path: str) -> int:
        run = self.dock_widget.runs.selected_run() or self.current
        return run.write_csv(path) if run is not None else 0

    def export_png(self, path: str) -> bool:
        return self.dock_widget.plots.export_png(path)

    def export_csv_dialog(self) -> None:
        path = ask_file(self.win, "Export records as CSV", "CSV (*.csv)", True, "run.csv")
        if path:
            self.win.statusBar().showMessage(f"Wrote {self.export_csv(path)} records", 4000)

    def export_png_dialog(self) -> None:
        path = ask_file(self.win, "Export plots as PNG", "PNG image (*.png)", True, "plots.png")
        if path:
            self.export_png(path)

    def resume_from_checkpoint(self) -> None:
        path = ask_file(self.win, "Resume from checkpoint", "Checkpoints (*.safetensors)",
                        False, str(paths.runs_dir()))
        if path:
            self.train(resume=path)

    def save_bundle(self) -> None:
        path = ask_file(self.win, "Save trained model as bundle", "Wiregrad bundle (*.wgz)",
                        True, "model.wgz")
        if path:
            self.session.save_bundle(path if path.endswith(".wgz") else path + ".wgz")

    def on_saved(self, msg: dict) -> None:
        request = str(msg.get("request") or "")
        if request.startswith("predict:"):
            self._predict_with(request.split(":", 1)[1], msg["path"])
            return
        if msg.get("request") == "sample" and self.current is not None:
            self.sampling.set_weights(msg["path"], f"{self.current.name} · step {msg['step']}")
            self.sampling.generate()
            return
        self.win.statusBar().showMessage(f"Saved {msg['what']}: {msg['path']}", 8000)

    # ------------------------------------------------------------------ sampling

    def _document_path(self) -> str | None:
        """The document's file, or the preset it was opened from."""
        path = self.win.path
        if path is None and self.win.template:
            name = self.win.controller.model.doc.get("meta", {}).get("name")
            path = next((p["path"] for p in api.list_presets() if p["title"] == name), None)
        return str(path) if path else None

    def refresh_sampling_source(self) -> None:
        doc = self.win.controller.model.doc
        found = api.document_weights_path(doc, self._document_path())
        self.sampling.set_weights(str(found) if found else None,
                                  f"{Path(found).name} (the document's)" if found else "")

    def open_weights(self) -> None:
        path = ask_file(self.win, "Open weights", "Weights (*.safetensors)", False)
        if path:
            self.sampling.set_weights(path)

    def sample_with_run_weights(self) -> None:
        if self.session.has_trainer:
            self.session.save_weights(request="sample")
        else:
            self.sampling.status.setText("no run yet: press Train first")

    def generate_sample(self) -> None:
        self.docks[1].raise_()
        self.sampling.generate()

    def shutdown(self) -> None:
        self.refresh_timer.stop()
        self.inspect_timer.stop()
        self.sampling.shutdown()
        self.inspect_widget.predictions.shutdown()
        self.session.shutdown()
