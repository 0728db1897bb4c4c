"""Paste lands at the mouse pointer (issue 14 §3), beside the copied nodes otherwise."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, QPointF
from PySide6.QtGui import QCursor

pytestmark = pytest.mark.gui


def _top_left(win, ids) -> tuple[float, float]:
    pos = [win.controller.model.pos(i) for i in ids]
    return min(p[0] for p in pos), min(p[1] for p in pos)


def test_paste_puts_the_nodes_top_left_at_the_given_point(make_window):
    win = make_window("spiral_mlp")
    win.scene.select_nodes(["fc1", "act1"])
    assert win.edit.copy()
    ids = win.edit.paste(at=QPointF(1234.0, -567.0))
    assert sorted(ids) == ["act1_2", "fc1_2"]
    assert _top_left(win, ids) == (1234.0, -567.0)
    # the pasted pair keeps its own arrangement
    (ax, ay), (bx, by) = (win.controller.model.pos(i) for i in ("fc1", "act1"))
    (cx, cy), (dx, dy) = (win.controller.model.pos(i) for i in ("fc1_2", "act1_2"))
    assert (dx - cx, dy - cy) == (bx - ax, by - ay)


def test_paste_follows_the_mouse_pointer_over_the_canvas(make_window, monkeypatch):
    win = make_window("spiral_mlp")
    win.scene.select_nodes(["fc2"])
    assert win.edit.copy()
    spot = QPoint(win.view.viewport().width() // 3, win.view.viewport().height() // 2)
    pointer = win.view.viewport().mapToGlobal(spot)
    monkeypatch.setattr(QCursor, "pos", staticmethod(lambda: pointer))
    ids = win.edit.paste()
    want = win.view.mapToScene(spot)
    x, y = _top_left(win, ids)
    assert (x, y) == pytest.approx((want.x(), want.y()), abs=0.06)
    item = win.scene.nodes[ids[0]]
    assert win.view.mapToScene(win.view.viewport().rect()).boundingRect().contains(
        item.sceneBoundingRect().topLeft())


def test_paste_away_from_the_canvas_offsets_beside_the_copies(make_window, monkeypatch):
    win = make_window("spiral_mlp")
    win.scene.select_nodes(["fc2"])
    assert win.edit.copy()
    monkeypatch.setattr(QCursor, "pos", staticmethod(lambda: QPoint(-5000, -5000)))
    ids = win.edit.paste()
    x, y = win.controller.model.pos("fc2")
    assert win.controller.model.pos(ids[0]) == (x + 40.0, y + 40.0)
