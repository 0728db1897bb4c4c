"""The training dock: controls on the left, live plots on the right, the run list below."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QScrollArea, QSplitter, QWidget

from nodegraph.training.controls import TrainingControls
from nodegraph.training.plots import TrainingPlots
from nodegraph.training.runs import RunList


class TrainingDock(QWidget):
    def __init__(self, actions: dict, parent=None) -> None:
        super().__init__(parent)
        self.controls = TrainingControls(actions)
        self.plots = TrainingPlots()
        self.runs = RunList()
        scroll = QScrollArea()
        scroll.setWidget(self.controls)
        scroll.setWidgetResizable(True)
        scroll.setMinimumWidth(330)
        scroll.setMaximumWidth(380)
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.plots)
        right.addWidget(self.runs)
        right.setStretchFactor(0, 4)
        right.setStretchFactor(1, 1)
        right.setSizes([330, 80])
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(scroll)
        row.addWidget(right, 1)
