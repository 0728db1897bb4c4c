"""Painting must not leak references to None.

Some PySide6 releases decrement ``None``'s reference count on paths that painting takes
(QPainter calls from a Python ``paint()``, pyqtgraph curves). On Python 3.11, where None is
not immortal, thousands of repaints then drive the count to zero and crash the interpreter
minutes into a session. This repaints a pyqtgraph plot and a custom QGraphicsItem thousands
of times and checks that ``sys.getrefcount(None)`` did not fall. (On Python >= 3.12 None is
immortal and the check passes trivially; the paint counts are still checked.)
"""

from __future__ import annotations

import gc
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.gui

REPAINTS = 2_000
# A leak of one reference per paint loses >= REPAINTS; small drift comes from caches that
# release objects holding None. Growing is allowed.
DRIFT = 100


def _none_refs() -> int:
    gc.collect()
    return sys.getrefcount(None)


def _repaint(qapp, widget, times: int) -> None:
    for _ in range(times):
        widget.repaint()
        qapp.processEvents()


def test_pyqtgraph_plot_repaints_keep_none_refcount(qtbot, qapp):
    import pyqtgraph as pg

    class CountingCurve(pg.PlotCurveItem):
        paints = 0

        def paint(self, painter, option, widget=None) -> None:
            CountingCurve.paints += 1
            super().paint(painter, option, widget)

    widget = pg.PlotWidget()
    qtbot.addWidget(widget)
    widget.resize(320, 240)
    x = np.linspace(0.0, 1.0, 200)
    curve = CountingCurve(x, np.sin(6 * x), pen=pg.mkPen("c", width=2))
    widget.addItem(curve)
    widget.show()
    qtbot.waitExposed(widget)
    # A QGraphicsView draws its scene in the viewport; repainting the view itself does not.
    viewport = widget.viewport()

    _repaint(qapp, viewport, 20)  # warm caches before the baseline
    start_paints = CountingCurve.paints
    before = _none_refs()
    for i in range(REPAINTS):
        if i % 100 == 0:
            curve.setData(x, np.sin(6 * x + i))
        viewport.repaint()
        qapp.processEvents()
    after = _none_refs()

    assert CountingCurve.paints - start_paints >= REPAINTS, "the curve was not repainted"
    assert after >= before - DRIFT, f"None refcount fell from {before} to {after}"


def test_custom_item_paint_keeps_none_refcount(qtbot, qapp):
    from PySide6.QtCore import QLineF, QRectF, Qt
    from PySide6.QtGui import QColor, QPen
    from PySide6.QtWidgets import QGraphicsItem, QGraphicsScene, QGraphicsView

    class Wire(QGraphicsItem):
        def __init__(self) -> None:
            super().__init__()
            self.paints = 0

        def boundingRect(self) -> QRectF:  # noqa: N802 (Qt API)
            return QRectF(0, 0, 120, 80)

        def paint(self, painter, option, widget=None) -> None:
            self.paints += 1
            painter.save()
            painter.setPen(QPen(QColor(40, 160, 220), 2, Qt.PenStyle.SolidLine))
            painter.drawLine(QLineF(0, 0, 120, 80))
            painter.setPen(QPen(QColor(220, 80, 40), 1, Qt.PenStyle.DashLine))
            painter.drawLine(QLineF(0, 80, 120, 0))
            painter.restore()

    scene = QGraphicsScene()
    item = Wire()
    scene.addItem(item)
    view = QGraphicsView(scene)
    qtbot.addWidget(view)
    view.resize(200, 150)
    view.show()
    qtbot.waitExposed(view)

    _repaint(qapp, view.viewport(), 20)
    start_paints = item.paints
    before = _none_refs()
    _repaint(qapp, view.viewport(), REPAINTS)
    after = _none_refs()

    assert item.paints - start_paints >= REPAINTS, "paint() was not called on every repaint"
    assert after >= before - DRIFT, f"None refcount fell from {before} to {after}"
