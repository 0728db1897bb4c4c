"""Training controls: Train / Pause / Resume / Step / Stop (the Run menu's actions), a progress
bar with ETA, the optimizer's hot params (:class:`~nodegraph.training.hotfields.HotFields`,
edited through the document) and checkpoint / bundle buttons."""

from __future__ import annotations

import time

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QGridLayout,
    QGroupBox,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from nodegraph.training.hotfields import HotFields
from nodegraph.training.settings import TrainingSettings


def fmt_eta(seconds: float) -> str:
    if seconds != seconds or seconds < 0 or seconds > 1e7:  # NaN or absurd
        return "–"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Eta:
    """Steps per second over the last ~10 s of records → time left."""

    def __init__(self) -> None:
        self.points: list[tuple[float, int]] = []

    def reset(self) -> None:
        self.points = []

    def add(self, step: int, now: float | None = None) -> None:
        now = time.perf_counter() if now is None else now
        self.points.append((now, step))
        while len(self.points) > 2 and now - self.points[0][0] > 10.0:
            self.points.pop(0)

    def seconds_left(self, total: int) -> float:
        if len(self.points) < 2:
            return float("nan")
        (t0, s0), (t1, s1) = self.points[0], self.points[-1]
        if s1 <= s0 or t1 <= t0:
            return float("nan")
        return (total - s1) / ((s1 - s0) / (t1 - t0))


HINTS = {
    "idle": "Press Train (F5) to train this graph in the engine worker.",
    "starting": "Starting the engine worker and compiling the graph…",
    "running": "Training. Edits of the hot settings below (or in the inspector) apply from "
               "the next step; the graph's structure is locked until you stop.",
    "paused": "Paused. Step (F10) runs exactly one batch; Resume continues.",
    "stopping": "Stopping: writing the final checkpoint and weights…",
}


class TrainingControls(QWidget):
    save_checkpoint = Signal()
    resume_checkpoint = Signal()
    save_bundle = Signal()

    def __init__(self, actions: dict, parent=None) -> None:
        super().__init__(parent)
        box = QVBoxLayout(self)
        box.setContentsMargins(4, 4, 4, 4)
        buttons = QGridLayout()
        buttons.setSpacing(3)
        self.buttons = {}
        for i, name in enumerate(("train", "pause", "resume", "step", "stop")):
            b = QToolButton()
            b.setDefaultAction(actions[name])
            b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
            b.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
            self.buttons[name] = b
            buttons.addWidget(b, i // 3, i % 3)
        box.addLayout(buttons)
        self.progress = QProgressBar()
        self.progress.setFormat("idle")
        self.progress.setTextVisible(True)
        box.addWidget(self.progress)
        self.status = QLabel("Press Train (F5) to train this graph in the engine worker.")
        self.status.setWordWrap(True)
        self.status.setStyleSheet("color: #a9afb9;")
        box.addWidget(self.status)
        self.settings = TrainingSettings()
        self.settings.setToolTip("Saved with the graph; each edit is one undo step")
        run_box = QGroupBox("Run settings")
        QVBoxLayout(run_box).addWidget(self.settings)
        box.addWidget(run_box)
        self.hot = HotFields()
        self.hot.setToolTip("The optimizer node's settings that a live run may change; an edit "
                            "is an undoable change of the graph and takes effect at the next "
                            "step of a live run")
        hot_box = QGroupBox("Optimizer (live while training)")
        QVBoxLayout(hot_box).addWidget(self.hot)
        box.addWidget(hot_box)
        grid = QGridLayout()
        self.checkpoint_button = QPushButton("Save checkpoint now")
        self.resume_button = QPushButton("Resume run / checkpoint…")
        self.resume_button.setToolTip("Continue the run selected in the run list from its "
                                      "checkpoint (in its own folder); with none selected, "
                                      "choose a checkpoint file")
        self.bundle_button = QPushButton("Save trained model as bundle…")
        self.checkpoint_button.clicked.connect(self.save_checkpoint)
        self.resume_button.clicked.connect(self.resume_checkpoint)
        self.bundle_button.clicked.connect(self.save_bundle)
        grid.addWidget(self.checkpoint_button, 0, 0)
        grid.addWidget(self.resume_button, 0, 1)
        grid.addWidget(self.bundle_button, 1, 0, 1, 2)
        box.addLayout(grid)
        box.addStretch(1)
        self.set_state("idle", False)

    def set_state(self, state: str, has_run: bool) -> None:
        self.settings.set_editable(state == "idle")
        self.checkpoint_button.setEnabled(has_run and state in ("running", "paused", "idle"))
        self.bundle_button.setEnabled(has_run and state in ("paused", "idle"))
        self.resume_button.setEnabled(state == "idle")

    def reset_progress(self) -> None:
        self.progress.setMaximum(1)
        self.progress.setValue(0)
        self.progress.setFormat("idle")
        self.status.setText(HINTS["idle"])

    def set_progress(self, step: int, total: int, eta_s: float, state: str) -> None:
        self.progress.setMaximum(max(total, 1))
        self.progress.setValue(min(step, max(total, 1)))
        self.progress.setFormat(f"{state} · step {step:,} / {total:,} · ETA {fmt_eta(eta_s)}"
                                if state in ("running", "stopping")
                                else f"{state} · step {step:,} / {total:,}")
        self.status.setText(HINTS.get(state, ""))
