"""What the attention views share (the Attention tab's self-attention, the seq2seq panel's
cross-attention): their header row — a line saying what is on show, then the pickers — and a
probability map (rows sum to 1) drawn into a pyqtgraph plot."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout

BG = (30, 32, 36)  # the plots' background


def header(box: QVBoxLayout, hint: str, *pickers: QComboBox) -> QLabel:
    """Add the header row to *box*: a wrapping label (returned) and *pickers* after it."""
    row = QHBoxLayout()
    info = QLabel(hint)
    info.setWordWrap(True)
    row.addWidget(info, 1)
    for picker in pickers:
        row.addWidget(picker)
    box.addLayout(row)
    return info


def probability_map(plot: pg.PlotItem, probs: np.ndarray) -> pg.ImageItem:
    """*probs* (rows, cols) as an image in *plot*: row 0 on top, viridis over [0, 1]."""
    plot.invertY(True)
    image = pg.ImageItem(probs.T)
    image.setColorMap(pg.colormap.get("viridis"))
    image.setLevels((0.0, 1.0))
    plot.addItem(image)
    return image
