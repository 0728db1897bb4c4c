"""The Debugger dock's routes: inspection of the live run (wire statistics and gradient-norm
halos, the selected node's histograms), the Predictions tab, Predict on File and the
gradient check. Plain data from the worker session to the widgets. Before any run the Node
tab shows the selected node's weights from the document's own (shipped) weights file, or
those File ▸ Load Weights… loaded (``api.weights_detail``).

While a run is live, each inspection is a whole-batch forward and backward in the worker
(char-GPT: ~85 ms on one core, ~2.5 training steps), so the periodic one
(:meth:`Inspection.tick`) is asked for only as often as something on screen shows it: every
tick while the gradient halos are on or the Debugger's Node tab shows a selected node, else
every :data:`TOOLTIP_S` for the wires' tooltips; predictions only while their tab is on
screen."""

from __future__ import annotations

import time

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QDockWidget, QMessageBox

from engine import api
from nodegraph.training.debugger import EdgeOverlay, InspectDock
from nodegraph.training.host import TrainingHost, ask_file
from nodegraph.training.session import TrainingSession
from nodegraph.training.visible import on_screen

TOOLTIP_S = 10.0  # the periodic inspection when only the wires' tooltips show it


def inspection_due(now: float, last: float | None, on_screen: bool) -> bool:
    """Whether the periodic tick asks for an inspection: always when its results are on
    screen (*on_screen*), else when the last one (*last*, None: never) is TOOLTIP_S old."""
    return on_screen or last is None or now - last >= TOOLTIP_S


class Inspection(QObject):
    def __init__(self, host: TrainingHost, session: TrainingSession, widget: InspectDock,
                 dock: QDockWidget, parent=None) -> None:
        super().__init__(parent)
        self.host, self.session, self.widget, self.dock = host, session, widget, dock
        self.overlay = EdgeOverlay(host.scene)
        self.last_inspection: dict | None = None
        self.last_gradcheck: dict | None = None
        self.gradcheck_box: QMessageBox | None = None
        self.loaded: tuple[str, str] | None = None  # (path, label) of loaded weights
        self._weights: tuple[str, dict] | None = None  # the last weights file read
        self._inspected_at: float | None = None  # time.monotonic() of the last request
        session.inspected.connect(self.on_inspected)
        session.gradchecked.connect(self.on_gradchecked)
        session.predicted.connect(widget.predictions.show_predictions)
        widget.predictions.predict_file_requested.connect(self.predict_file_dialog)
        widget.currentChanged.connect(lambda _i: self._shown())
        dock.visibilityChanged.connect(self._dock_visible)
        host.scene.selectionChanged.connect(self._selection_changed)

    def reset(self) -> None:
        """Forget the previous document's inspection (File ▸ New / Open)."""
        self.last_inspection = self.last_gradcheck = None
        self.loaded = self._weights = None
        self.overlay.clear()
        self.widget.reset()

    def _selected_node(self) -> str | None:
        try:
            ids = self.host.scene.selected_node_ids()
        except RuntimeError:
            return None
        return ids[0] if len(ids) == 1 else None

    def request_inspection(self) -> bool:
        if self.session.inspect(self._selected_node()):
            self._inspected_at = time.monotonic()
            return True
        return False

    def on_screen(self) -> bool:
        """Whether a live inspection is on screen beyond the wires' tooltips: the gradient
        halos, or the Node tab (shown) of a selected node."""
        return self.overlay.heat or (on_screen(self.widget.node)
                                     and self._selected_node() is not None)

    def tick(self) -> None:
        """The live run's periodic refresh (the training UI's timer): an inspection when
        :func:`inspection_due`, predictions when their tab is on screen."""
        if inspection_due(time.monotonic(), self._inspected_at, self.on_screen()):
            self.request_inspection()
        self.request_predictions()

    def _dock_visible(self, visible: bool) -> None:
        if visible:  # after the dock's tabs are shown too
            QTimer.singleShot(0, self, self._shown)  # skipped if the window went

    def _shown(self) -> None:
        """The Debugger dock or one of its tabs came on screen: bring it up to date."""
        if self.session.has_trainer and self.on_screen():
            self.request_inspection()
        self.request_predictions()

    def _selection_changed(self) -> None:
        node = self._selected_node()
        if self.session.has_trainer and node:
            self.request_inspection()
        elif node and not self.session.active:
            self.show_shipped(node)

    def shipped_weights(self) -> tuple[str, str] | None:
        """(path, label) of the weights shown before a run: the loaded ones, else the
        document's own file; None when there are none."""
        if self.loaded is not None:
            return self.loaded
        try:
            found = api.document_weights_path(self.host.controller.model.doc,
                                              self.host.document_path())
        except api.errors.WiregradError:
            return None
        return (str(found), f"the document's weights ({found.name})") if found else None

    def show_shipped(self, node: str) -> bool:
        """The Node tab for *node* from :meth:`shipped_weights` (no run yet)."""
        source = self.shipped_weights()
        if source is None:
            return False
        try:
            if self._weights is None or self._weights[0] != source[0]:
                self._weights = (source[0], api.load_weights_file(source[0]))
            detail = api.weights_detail(self.host.snapshot(), node, self._weights[1])
        except (api.errors.WiregradError, OSError) as exc:
            self.host.status(f"Cannot show the weights of {node}: {exc}", 6000)
            return False
        self.widget.node.show_detail(detail, source=source[1])
        return True

    def on_inspected(self, msg: dict) -> None:
        self.last_inspection = msg
        self.overlay.update(msg.get("edges", []), msg.get("step", 0))
        if msg.get("detail"):
            self.widget.node.show_detail(msg["detail"], msg.get("step", 0))

    def request_predictions(self, force: bool = False) -> bool:
        """Ask the worker for the Predictions tab's data when that tab is on screen (its
        dock shown and raised, the tab current)."""
        panel = self.widget.predictions
        if force or on_screen(panel):
            return self.session.predictions()
        return False

    def predict_file_dialog(self) -> None:
        path = ask_file(self.host.window, "Predict on file", "Data (*.csv *.tsv *.txt *.npy "
                        "*.png *.jpg *.jpeg);;All files (*)", False)
        if path:
            self.predict_file(path)

    def predict_file(self, path: str) -> None:
        """The model's outputs for *path*: the current run's weights when there is a run
        (the worker writes them now), else the document's, else a fresh initialisation."""
        self.dock.raise_()
        self.widget.setCurrentWidget(self.widget.predictions)
        if self.session.has_trainer and self.session.save_weights(request=f"predict:{path}"):
            return
        self.predict_with(path, None)

    def predict_with(self, path: str, weights: str | None) -> None:
        self.widget.predictions.predict(path=path, doc=self.host.snapshot(), weights=weights,
                                        doc_path=self.host.document_path(),
                                        base_dir=self.host.base_dir())

    def set_heat(self, on: bool) -> None:
        self.overlay.set_heat(on)
        if self.overlay.heat and self.overlay.range:
            lo, hi = self.overlay.range
            self.host.status(
                f"Wire halo = gradient norm on the last batch: blue 1e{lo:.1f} → yellow → "
                f"red 1e{hi:.1f} (log scale)", 15000)

    def gradcheck_selected(self) -> None:
        node = self._selected_node()
        if node is None:
            self.host.status("Select one node to gradient-check", 4000)
            return
        self.host.status(f"Gradient-checking {node} in the engine worker…")
        self.session.gradcheck(self.host.snapshot(), node, self.host.base_dir())

    def on_gradchecked(self, msg: dict) -> None:
        self.last_gradcheck = msg
        lines = [f"{r['id']}: max absolute error {r.get('max_abs_err', 0.0):.2e}, relative "
                 f"{r['max_rel_err']:.2e} over {r['checked']} coordinates — "
                 f"{'ok' if r['ok'] else 'FAILED'}" for r in msg["nodes"]]
        if "atol" in msg:
            lines.append(f"\npasses where |analytic − numeric| ≤ {msg['atol']:g} + "
                         f"{msg['rtol']:g}·|numeric|")
        verdict = "passed" if msg["ok"] else "FAILED"
        self.host.status(f"Gradient check of {msg['node']} {verdict}", 8000)
        box = QMessageBox(QMessageBox.Icon.Information if msg["ok"] else
                          QMessageBox.Icon.Warning, "Gradient check",
                          f"Gradient check of {msg['node']} {verdict} (float64 central "
                          f"differences):\n\n" + "\n".join(lines), parent=self.host.window)
        box.setModal(False)
        box.show()
        self.gradcheck_box = box
