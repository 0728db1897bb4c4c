"""Wiring rules: refused connections leave the document unchanged and say why."""

from __future__ import annotations

import copy

import pytest
from guihelp import drag, port_point

pytestmark = pytest.mark.gui


@pytest.mark.parametrize("wire, reason", [
    (("spirals", "labels", "fc1", "x"), "type mismatch"),
    (("act1", "out", "fc1", "x"), "cycle"),
    (("spirals", "points", "fc2", "x"), "shape mismatch"),
    (("fc1", "y", "fc1", "x"), "cycle"),
])
def test_refused_connections_leave_the_document_unchanged(make_window, wire, reason):
    win = make_window("spiral_mlp")
    c = win.controller
    before = copy.deepcopy(c.model.doc)
    got = c.connect(*wire)
    assert got and reason in got
    assert c.model.doc == before and c.stack.count() == 0


def test_refusal_by_mouse_shows_the_reason(make_window):
    win = make_window("spiral_mlp")
    before = copy.deepcopy(win.controller.model.doc)
    drag(win, port_point(win, "spirals", "labels", True), port_point(win, "fc1", "x", False))
    assert "type mismatch" in win.view.last_refusal
    assert win.controller.model.doc == before


def test_a_new_wire_replaces_the_old_one_undoably(make_window):
    win = make_window("spiral_mlp")
    c = win.controller
    before = copy.deepcopy(c.model.doc)
    assert c.connect("spirals", "points", "fc1", "x") is not None  # already connected
    c.add_node("relu", (300, 300))
    assert c.connect("act1", "out", "act2", "x") is None
    assert c.connect("act2", "out", "fc2", "x") is None
    into_fc2 = [e for e in c.model.doc["edges"] if e["dst"]["node"] == "fc2"]
    assert into_fc2 == [{"src": {"node": "act2", "port": "out"},
                         "dst": {"node": "fc2", "port": "x"}}]
    c.stack.undo()
    c.stack.undo()
    c.stack.undo()
    assert c.model.doc == before


def test_compatible_ports_light_up_while_dragging(make_window):
    from nodegraph.canvas.wiredrag import WireDrag

    win = make_window("spiral_mlp")
    win.controller.remove([], [e for e in win.controller.model.edges()
                               if e["dst"]["node"] == "accuracy"])
    port = win.scene.nodes["spirals"].ports[("labels", True)]
    wire = WireDrag(win.scene, port)
    wire.settle()
    lit = {(p.node_id, p.name) for p in wire.lit}
    assert ("accuracy", "labels") in lit
    assert ("loss", "labels") not in lit  # already plugged in: a drop there changes nothing
    assert ("fc1", "x") not in lit  # float input: an int wire is not offered
    wire.finish(port.scenePos())
    assert not any(p.highlight for n in win.scene.nodes.values() for p in n.ports.values())


def test_variadic_inputs_grow_a_free_slot(make_window):
    win = make_window("spiral_mlp")
    c = win.controller
    cat = c.add_node("concat", (0, 400))
    assert ("inputs[0]", False) in win.scene.nodes[cat].ports
    assert c.connect("fc1", "y", cat, "inputs[0]") is None
    assert ("inputs[1]", False) in win.scene.nodes[cat].ports
