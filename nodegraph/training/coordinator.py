"""Training, inspection and sampling in the main window: the Run menu's actions, the Training /
Inspect / Sampling docks, the structural-edit lock while a run is live, error reporting with
the node highlighted, and autosave when training stops.

The worker does the computing (``nodegraph.training.session``); this object only routes plain
data. It sees the main window only through :class:`TrainingHost` — the controller, the scene,
the inspector, a status callback and a few callables — and owns its docks, which the window
places (composition: no mixin, no monkey-patching; the inspector asks the edit lock
:meth:`~nodegraph.training.lock.EditLock.may_edit` through the predicate it is given).
"""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QObject, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QStyle

from engine import api
from engine.api import paths
from nodegraph import dialogs
from nodegraph.training.controls import Eta
from nodegraph.training.debugger import InspectDock
from nodegraph.training.dock import TrainingDock
from nodegraph.training.history import RunLog
from nodegraph.training.host import TrainingHost, ask_file
from nodegraph.training.inspection import Inspection
from nodegraph.training.loadweights import WeightLoader
from nodegraph.training.lock import EditLock
from nodegraph.training.runs import RunData
from nodegraph.training.sampling import SamplingPanel
from nodegraph.training.session import TrainingSession
from nodegraph.training.settings import SettingsBinder
from nodegraph.training.visible import on_screen
from nodegraph.training.warmup import KernelWarmer

REFRESH_MS = 200  # the step counter at 5 Hz (1.3 ms a repaint of the bar), the plots every
# fifth tick (plots.PLOT_S)
INSPECT_MS = 1500


class TrainingUI(QObject):
    def __init__(self, host: TrainingHost) -> None:
        super().__init__(host.window)
        self.host, self.controller, self.scene = host, host.controller, host.scene
        self.session = TrainingSession(self)
        self.warmer = KernelWarmer(host.controller, self.session, host.snapshot, host.base_dir,
                                   self)  # compiles the open graph's kernels once enabled
        self.actions = self._make_actions()
        self.dock_widget = TrainingDock(self.actions)
        self.inspect_widget = InspectDock()
        self.sampling = SamplingPanel(lambda: self.controller.model.snapshot())
        # the window places them: Training and Sampling at the bottom, Debugger at the right
        self.docks = [self._dock("Training", self.dock_widget),
                      self._dock("Sampling", self.sampling),
                      self._dock("Debugger", self.inspect_widget)]
        self.inspection = Inspection(host, self.session, self.inspect_widget, self.docks[2],
                                     self)
        self.lock = EditLock(host.controller, host.undo_actions, self)
        host.inspector.editable = self.lock.may_edit
        self.runs: list[RunData] = []
        self.current: RunData | None = None
        self.weight_loader = WeightLoader(host, self._use_loaded, self.report)
        self.eta = Eta()
        self.errors: list[dict] = []
        self.settings = SettingsBinder(host.controller, self.dock_widget.controls, host.source)
        self.log = RunLog(host)
        self._connect()
        self.refresh_sampling_source()
        self._update_actions()
        self.restore_runs()

    # ------------------------------------------------------------------ construction

    def _dock(self, title: str, widget) -> QDockWidget:
        dock = QDockWidget(title, self.host.window)
        dock.setObjectName(title.lower())
        dock.setWidget(widget)
        return dock

    def _make_actions(self) -> dict[str, QAction]:
        P = QStyle.StandardPixmap
        spec = [("train", "&Train", self.train, "F5", P.SP_MediaPlay),
                ("pause", "&Pause", self.session.pause, "F6", P.SP_MediaPause),
                ("resume", "&Resume", self.session.resume, "F7", P.SP_MediaSeekForward),
                ("step", "&Step", self.session.step, "F10", P.SP_MediaSkipForward),
                ("stop", "St&op", self.session.stop, "Shift+F5", P.SP_MediaStop),
                ("gradcheck", "&Gradient-check Selected",
                 lambda: self.inspection.gradcheck_selected(), None, None),
                ("heat", "Colour Wires by &Gradient Norm",
                 lambda: self.inspection.set_heat(self.actions["heat"].isChecked()), None, None),
                ("sample", "&Generate Sample", self.generate_sample, None, None),
                ("predict_file", "Predict on &File…",
                 lambda: self.inspection.predict_file_dialog(), None, None)]
        out = {}
        for name, text, slot, key, icon in spec:
            act = QAction(text, self.host.window)
            if key:
                act.setShortcut(QKeySequence(key))
            if icon is not None:
                act.setIcon(self.host.window.style().standardIcon(icon))
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
        s.saved.connect(self.on_saved)
        c = d.controls
        c.hot.refused.connect(lambda text: self.host.status(text, 6000))
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
        self.lock.hot_edit.connect(self.session.set_node_params)
        self.lock.changed.connect(lambda _on: self.host.inspector.schedule())
        self.controller.document_replaced.connect(self.reset_for_document)
        self.controller.validated.connect(lambda _r: self._mark_changed())
        self.docks[0].visibilityChanged.connect(self._training_dock_visible)
        self.refresh_timer = QTimer(self)
        self.refresh_timer.setInterval(REFRESH_MS)
        self.refresh_timer.timeout.connect(self.refresh)
        self.inspect_timer = QTimer(self)
        self.inspect_timer.setInterval(INSPECT_MS)
        self.inspect_timer.timeout.connect(self.inspection.tick)

    # ------------------------------------------------------------------ training

    def train(self, steps: int | None = None, resume: str | None = None, *,
              paused: bool = False, weights: str | None = None,
              continues: RunData | None = None) -> RunData | None:
        """Start a run (*paused*: before its first step; *weights*: start from that file, by
        default the dock's choice: a fresh initialisation or the document's own weights;
        *continues*: an ended run that *resume* (its checkpoint) continues in its folder)."""
        if self.session.active:
            return None
        if weights is None and resume is None:
            weights = self.dock_widget.controls.settings.start_weights()
        result = self.controller.revalidate(force=True)
        errors = [d for d in result.get("diagnostics", []) if d["severity"] == "error"]
        if errors:
            self.report({"where": "validate", "message": errors[0]["message"],
                         "node": errors[0].get("node")}, "Cannot train this graph")
            return None
        doc = self.host.snapshot()
        if continues is not None:
            run = continues
            run.status, run.earlier = "starting", False
        else:
            run = RunData(len(self.runs) + 1, f"run {len(self.runs) + 1}")
            name = paths.safe_name(doc.get("meta", {}).get("name") or "graph", "graph")
            run.folder = str(paths.runs_dir() / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-"
                                                f"{run.id}")
            self.runs.append(run)
            self.dock_widget.runs.add_run(run)
        self.current = run
        self._show_runs()
        self.eta.reset()
        base = self.host.base_dir()
        self.lock.engage(doc)
        self.session.train(doc, base, run.folder, steps=steps, resume=resume, paused=paused,
                           weights=weights)
        self.refresh_timer.start()
        self.docks[0].raise_()
        return run

    def reset_for_document(self) -> None:
        """Another document was opened (or File ▸ New): nothing of the previous one stays —
        its live run is stopped; plots, run list, debugger, predictions and sampling text
        are cleared; the sampling weights become the new document's own."""
        if self.session.active:
            self.session.stop()
        self.lock.release()
        self.runs, self.current = [], None
        self.weight_loader.forget()
        self.dock_widget.controls.settings.set_loaded_weights(None)
        self.eta.reset()
        self.dock_widget.runs.clear_runs()
        self.dock_widget.plots.show_run(None, [])
        self.dock_widget.controls.reset_progress()
        self.inspection.reset()
        self.sampling.reset()
        self.refresh_sampling_source()
        self.restore_runs()

    def restore_runs(self) -> None:
        """List the document's earlier runs (from the runs folder) with their curves."""
        for run in self.log.earlier(len(self.runs) + 1, self.host.snapshot()):
            self.runs.append(run)
            self.dock_widget.runs.add_run(run)
        self._show_runs()

    def _mark_changed(self) -> None:
        """Runs (not the live one) whose graph differs from the document's now are marked."""
        ended = [r for r in self.runs if not (r is self.current and self.session.active)]
        for run in self.log.mark(ended, self.host.snapshot()):
            self.dock_widget.runs.update_run(run)

    def run_weights(self) -> tuple[str, str] | None:
        """(path, label) of the latest weights: those the last run wrote (at its end), or
        the ones File ▸ Load Weights… loaded after it; None when neither."""
        loader = self.weight_loader
        for run in reversed(self.runs):
            if run.weights and (loader.loaded is None or run.created > loader.at):
                return run.weights, f"{run.name} · step {run.step}"
        return loader.loaded

    def load_weights(self, source: str, show: bool = True) -> dict | None:
        """File ▸ Load Weights… without the file dialog: the report, None when refused."""
        return self.weight_loader.load(source, show)

    def _use_loaded(self, path: str, name: str) -> None:
        """The next Train (its start choice), sampling, export and the debugger take them."""
        self.inspection.loaded = (path, f"loaded from {name}")
        self.dock_widget.controls.settings.set_loaded_weights(path, name)
        self.sampling.set_weights(path, f"loaded from {name}")

    def on_started(self, msg: dict) -> None:
        run = self.current
        if run is None:
            return
        run.graph_hash, run.hparams = msg["graph_hash"], dict(msg["hparams"])
        run.total_steps, run.status, run.folder = msg["total_steps"], "running", msg["folder"]
        self.dock_widget.runs.update_run(run)
        self.log.started(run)
        self.inspect_timer.start()

    def on_records(self, records: list) -> None:
        if self.current is not None:
            self.current.add(records)
            self.log.records(self.current, records)
            self.eta.add(self.current.step)

    def refresh(self) -> None:
        run = self.current
        self.dock_widget.plots.refresh()
        if run is not None:
            left = self.eta.seconds_left(run.total_steps)
            self.dock_widget.controls.set_progress(run.step, run.total_steps, left,
                                                   self.session.state)
            self.dock_widget.runs.update_run(run)
        plots = self.dock_widget.plots
        if not self.session.active and (plots.up_to_date or not on_screen(plots)):
            self.refresh_timer.stop()  # hidden plots draw what is pending when shown

    def _training_dock_visible(self, visible: bool) -> None:
        """The Training dock raised (over Sampling, say): draw what arrived while hidden."""
        if visible:
            plots = self.dock_widget.plots
            QTimer.singleShot(0, plots, plots.draw_pending)  # skipped if the window went

    def on_state(self, state: str) -> None:
        if self.current is not None and state in ("running", "paused"):
            self.current.status = state
        self._update_actions()
        if state == "paused":
            self.inspection.request_inspection()
            self.inspection.request_predictions()
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
            self.log.ended(run, msg.get("checkpoint"))
            doc = self.controller.model.doc
            if run.weights and (api.is_language_model(doc) or api.is_seq2seq(doc)):
                self.sampling.set_weights(run.weights, f"{run.name} · step {run.step}")
        self._update_actions()
        self.host.autosave()
        self.inspection.request_inspection()
        self.inspection.request_predictions()
        self.host.status(
            f"Training {msg.get('reason', 'finished')} at step {msg.get('step')}; "
            f"checkpoint and weights in {msg.get('folder')}", 8000)

    def on_failed(self, msg: dict) -> None:
        self.errors.append(msg)
        where = msg.get("where")
        if where in ("train", "worker"):
            if self.current is not None:
                self.current.status = "crashed" if msg.get("crashed") else "failed"
                self.dock_widget.runs.update_run(self.current)
                self.log.ended(self.current, None)
            self.lock.release()
            self._update_actions()
            self.host.autosave()
            title = "Engine worker crashed" if msg.get("crashed") else "Training failed"
        elif where in ("inspect", "predictions"):
            self.host.status(f"{where.capitalize()} failed: {msg['message']}", 6000)
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
            self.host.focus_node(node)
            item = self.scene.nodes.get(node)
            if item is not None:
                item.set_status(item.footer, [*item.errors, msg.get("message", "")],
                                item.warnings)
        self.host.status(f"{title}: {text}", 10000)
        QTimer.singleShot(0, lambda: dialogs.error(self.host.window, title, text))

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
        path = ask_file(self.host.window, "Export records as CSV", "CSV (*.csv)", True,
                        "run.csv")
        if path:
            self.host.status(f"Wrote {self.export_csv(path)} records", 4000)

    def export_png_dialog(self) -> None:
        path = ask_file(self.host.window, "Export plots as PNG", "PNG image (*.png)", True,
                        "plots.png")
        if path:
            self.export_png(path)

    def resume_from_checkpoint(self) -> None:
        """Continue the selected ended run from its checkpoint, else ask for a checkpoint."""
        run = self.dock_widget.runs.selected_run()
        found = self.log.checkpoint(run) if run is not None else None
        if found and not self.session.active:
            self.train(resume=found, continues=run)
            return
        path = ask_file(self.host.window, "Resume from checkpoint",
                        "Checkpoints (*.safetensors)",
                        False, str(paths.runs_dir()))
        if path:
            self.train(resume=path)

    def save_bundle(self) -> None:
        path = ask_file(self.host.window, "Save trained model as bundle",
                        "Wiregrad bundle (*.wgz)",
                        True, "model.wgz")
        if path:
            self.session.save_bundle(path if path.endswith(".wgz") else path + ".wgz")

    def on_saved(self, msg: dict) -> None:
        request = str(msg.get("request") or "")
        if request.startswith("predict:"):
            self.inspection.predict_with(request.split(":", 1)[1], msg["path"])
            return
        if msg.get("request") == "sample" and self.current is not None:
            self.sampling.set_weights(msg["path"], f"{self.current.name} · step {msg['step']}")
            self.sampling.generate()
            return
        self.host.status(f"Saved {msg['what']}: {msg['path']}", 8000)

    # ------------------------------------------------------------------ sampling

    def refresh_sampling_source(self) -> None:
        doc = self.controller.model.doc
        found = api.document_weights_path(doc, self.host.document_path())
        self.sampling.set_weights(str(found) if found else None,
                                  f"{Path(found).name} (the document's)" if found else "")

    def open_weights(self) -> None:
        path = ask_file(self.host.window, "Open weights", "Weights (*.safetensors)", False)
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
