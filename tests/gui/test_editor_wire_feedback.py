"""A dragged wire lights only the ports it would be accepted on (dtype, cycle and shape), the
refusal reason shows next to the cursor, and a node quick-added from a dropped wire is wired
and placed in view (issue 14 §3)."""

from __future__ import annotations

import copy

import pytest
from guihelp import drag, port_point
from PySide6.QtCore import QPoint, Qt

from nodegraph.canvas.wiredetach import start_drag

pytestmark = pytest.mark.gui


def _port(win, node: str, name: str, output: bool):
    return win.scene.nodes[node].ports[(name, output)]


def test_only_ports_that_accept_the_wire_light_up(make_window):
    win = make_window("spiral_mlp")
    wire = start_drag(win.scene, _port(win, "spirals", "points", True))  # B×2 points
    wire.settle()
    fc2_x, act1_x = _port(win, "fc2", "x", False), _port(win, "act1", "x", False)
    assert wire.plausible(fc2_x)  # the dtype fits: the old rule lit it …
    assert not fc2_x.highlight  # … but fc2 takes 64 features, not 2
    assert "shape" in wire.refusal(fc2_x)
    assert act1_x.highlight  # relu takes any shape
    assert not _port(win, "loss", "labels", False).highlight  # int labels, float points
    wire.cancel()
    assert not any(p.highlight for n in win.scene.nodes.values() for p in n.ports.values())


def test_hovering_a_refused_port_shows_why_by_the_cursor(make_window):
    win = make_window("spiral_mlp")
    wire = start_drag(win.scene, _port(win, "spirals", "points", True))
    target = _port(win, "fc2", "x", False).scenePos()
    wire.move(target)
    badge = win.scene.badge
    assert "shape" in badge.text and badge.item.isVisible()
    assert (badge.item.pos() - target).manhattanLength() < 40  # next to the cursor
    wire.move(_port(win, "act1", "x", False).scenePos())
    assert badge.text == ""
    wire.cancel()


def test_a_refused_drop_keeps_the_graph_and_says_why_by_the_cursor(make_window):
    win = make_window("spiral_mlp")
    before = copy.deepcopy(win.controller.model.doc)
    drag(win, port_point(win, "spirals", "points", True), port_point(win, "fc2", "x", False))
    assert win.controller.model.doc == before
    assert "shape" in win.scene.badge.text and "shape" in win.view.last_refusal
    assert win.scene.badge.timer.isActive()  # it goes after a few seconds


def test_quick_add_from_a_wire_lands_in_view_and_wired(make_window):
    win = make_window("spiral_mlp")
    win.controller.remove(["act1"])
    start = port_point(win, "fc2", "x", False)  # an input: the new node goes to its left
    left = QPoint(3, start.y())  # dropped at the canvas's left edge
    drag(win, start, left)
    popup = win.edit.quick_add_popup
    assert popup is not None
    popup.search.setText("relu")
    popup.search.returnPressed.emit()
    doc = win.controller.model.doc
    new = next(n for n in doc["nodes"] if n["type"] == "relu")
    assert {"src": {"node": new["id"], "port": "out"}, "dst": {"node": "fc2", "port": "x"}} \
        in doc["edges"]
    seen = win.view.mapToScene(win.view.viewport().rect()).boundingRect()
    assert seen.contains(win.scene.nodes[new["id"]].sceneBoundingRect())
    assert popup.list.currentItem().data(Qt.ItemDataRole.UserRole)[0] == "relu"
