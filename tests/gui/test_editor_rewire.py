"""Picking a wire up by its input end: move it, delete it, or put it back — each one undo step
or no change at all — at the root, inside a layer, and on variadic slots; never read-only."""

from __future__ import annotations

import copy
import json

import pytest
from guihelp import drag, port_point, view_point
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest

pytestmark = pytest.mark.gui

LEFT, NOMOD = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier


def wire(a, b, c, d) -> dict:
    return {"src": {"node": a, "port": b}, "dst": {"node": c, "port": d}}


def keys(edges) -> set[tuple]:
    return {(e["src"]["node"], e["src"]["port"], e["dst"]["node"], e["dst"]["port"])
            for e in edges}


def frozen(doc: dict) -> str:
    return json.dumps(doc, sort_keys=False)


def press(win, at: QPoint) -> None:
    QTest.mousePress(win.view.viewport(), LEFT, NOMOD, at)


def move_to(win, a: QPoint, b: QPoint) -> None:
    QTest.mouseMove(win.view.viewport(), QPoint((a.x() + b.x()) // 2, (a.y() + b.y()) // 2))
    QTest.mouseMove(win.view.viewport(), b)


def release(win, at: QPoint) -> None:
    QTest.mouseRelease(win.view.viewport(), LEFT, NOMOD, at)


def empty_point(win) -> QPoint:
    """A viewport point with nothing under it (empty canvas)."""
    rect = win.view.viewport().rect()
    for y in range(40, rect.height() - 40, 30):
        for x in range(40, rect.width() - 40, 30):
            if not win.scene.items(win.view.mapToScene(QPoint(x, y))):
                return QPoint(x, y)
    raise AssertionError("no empty canvas in view")


def lit(win) -> set[tuple]:
    if win.scene.wire is not None:
        win.scene.wire.settle()  # the shape checks run a few ports per timer tick
    return {(p.node_id, p.name) for n in win.scene.nodes.values() for p in n.ports.values()
            if p.highlight}


def test_moving_a_wire_to_another_input_is_one_undo_step(make_window):
    win = make_window("spiral_mlp")
    c = win.controller
    before = copy.deepcopy(c.model.doc)
    # fc1.y → act1.x picked up at act1.x and dropped on fc2.x, which had act1.out: replaced.
    drag(win, port_point(win, "act1", "x", False), port_point(win, "fc2", "x", False))
    assert c.stack.count() == 1
    after = copy.deepcopy(c.model.doc)
    assert keys(after["edges"]) == keys(before["edges"]) - {
        ("fc1", "y", "act1", "x"), ("act1", "out", "fc2", "x")} | {("fc1", "y", "fc2", "x")}
    assert ("fc1", "y", "fc2", "x") in win.scene.edges
    assert ("fc1", "y", "act1", "x") not in win.scene.edges
    c.stack.undo()
    assert c.model.doc == before
    assert {("fc1", "y", "act1", "x"), ("act1", "out", "fc2", "x")} <= set(win.scene.edges)
    c.stack.redo()
    assert c.model.doc == after


def test_moving_to_a_free_input_keeps_the_other_wires(make_window):
    win = make_window("spiral_mlp")
    c = win.controller
    act2 = c.add_node("relu", (700, 420))
    win.view.fit()
    before = copy.deepcopy(c.model.doc)
    drag(win, port_point(win, "fc2", "x", False), port_point(win, act2, "x", False))
    assert c.stack.count() == 2
    assert keys(c.model.doc["edges"]) == keys(before["edges"]) - {
        ("act1", "out", "fc2", "x")} | {("act1", "out", act2, "x")}
    assert c.stack.undoText().startswith("Move wire act1.out")
    c.stack.undo()
    assert c.model.doc == before


def test_dropping_on_empty_canvas_deletes_the_wire(make_window):
    win = make_window("spiral_mlp")
    c = win.controller
    before = copy.deepcopy(c.model.doc)
    popups = []
    win.view.quick_add.connect(lambda pos, info: popups.append(info))
    drag(win, port_point(win, "loss", "labels", False), empty_point(win))
    assert keys(c.model.doc["edges"]) == keys(before["edges"]) - {
        ("spirals", "labels", "loss", "labels")}
    assert ("spirals", "labels", "loss", "labels") not in win.scene.edges
    assert c.stack.count() == 1 and popups == []  # no quick-add for a detached wire
    c.stack.undo()
    assert c.model.doc == before
    # A drag from an unconnected input still offers the quick-add list.
    c.disconnect(wire("spirals", "labels", "loss", "labels"))
    drag(win, port_point(win, "loss", "labels", False), empty_point(win))
    assert popups and popups[-1]["port"] == "labels" and not popups[-1]["output"]


def test_mid_drag_the_wire_hangs_from_its_source(make_window, tmp_path):
    from nodegraph.canvas.wiredetach import GHOST_OPACITY, DetachDrag

    win = make_window("spiral_mlp")
    old = win.scene.edges[("fc1", "y", "act1", "x")]
    a = port_point(win, "act1", "x", False)
    b = a + QPoint(60, 140)
    press(win, a)
    move_to(win, a, b)
    drag = win.scene.wire
    assert isinstance(drag, DetachDrag)
    assert (drag.port.node_id, drag.port.name, drag.port.output) == ("fc1", "y", True)
    path = drag.item.path()
    assert path.pointAtPercent(0.0) == drag.port.scenePos()
    assert path.pointAtPercent(1.0) == win.view.mapToScene(b)
    assert old.opacity() == pytest.approx(GHOST_OPACITY)
    got = lit(win)
    assert {("act1", "x"), ("fc2", "x"), ("accuracy", "logits")} <= got  # own input included
    assert ("fc1", "x") not in got and ("loss", "labels") not in got  # cycle / int input
    assert win.view.grab().save(str(tmp_path / "mid-drag.png"))  # renders mid-gesture
    release(win, a)  # back on the same input
    assert old.opacity() == 1.0 and not lit(win) and win.scene.wire is None


@pytest.mark.parametrize("how", ["same port", "escape", "incompatible", "node body", "output"])
def test_cancelled_detach_leaves_the_document_unchanged(make_window, how):
    win = make_window("spiral_mlp")
    c = win.controller
    before = frozen(c.model.doc)
    a = port_point(win, "fc1", "x", False)  # spirals.points → fc1.x (float)
    if how == "same port":
        drag(win, a, a)
    elif how == "escape":
        b = port_point(win, "act1", "x", False)
        press(win, a)
        move_to(win, a, b)
        QTest.keyClick(win.view, Qt.Key.Key_Escape)
        assert win.scene.wire is None and not lit(win)
        release(win, b)  # on a compatible input, but the drag is over
    elif how == "incompatible":
        drag(win, a, port_point(win, "loss", "labels", False))
        assert "type mismatch" in win.view.last_refusal
    elif how == "node body":
        node = win.scene.nodes["optimizer"]
        drag(win, a, view_point(win, node.mapToScene(node.body_rect().center())))
    else:
        drag(win, a, port_point(win, "act1", "out", True))
        assert "both are outputs" in win.view.last_refusal
    assert frozen(c.model.doc) == before and c.stack.count() == 0
    edge = win.scene.edges[("spirals", "points", "fc1", "x")]
    assert edge.opacity() == 1.0 and edge.isVisible()


def test_a_lit_port_can_still_refuse_with_the_reason(make_window):
    win = make_window("spiral_mlp")
    c = win.controller
    before = frozen(c.model.doc)
    # fc2.x takes floats (lit) but its matmul wants 64 features, not the 2 of the points.
    drag(win, port_point(win, "fc1", "x", False), port_point(win, "fc2", "x", False))
    assert "shape mismatch" in win.view.last_refusal
    assert frozen(c.model.doc) == before and c.stack.count() == 0


def test_detaching_inside_an_entered_layer(make_window):
    win = make_window("spiral_mlp")
    c = win.controller
    win.scene.select_nodes(["act1", "fc2"])
    gid = win.edit.group()
    assert c.enter(gid) and not c.read_only
    win.view.fit()
    inner = lambda: keys(c.model.doc["layers"]["Group1"]["edges"])  # noqa: E731
    start, base = copy.deepcopy(c.model.doc), inner()
    assert ("act1", "out", "fc2", "x") in base and ("$in", "x", "act1", "x") in base
    count = c.stack.count()
    # $in.x → act1.x moved onto fc2.x, replacing act1.out → fc2.x.
    drag(win, port_point(win, "act1", "x", False), port_point(win, "fc2", "x", False))
    assert inner() == base - {("$in", "x", "act1", "x"), ("act1", "out", "fc2", "x")} | {
        ("$in", "x", "fc2", "x")}
    assert c.stack.count() == count + 1
    c.stack.undo()
    assert c.model.doc == start
    drag(win, port_point(win, "fc2", "x", False), empty_point(win))
    assert inner() == base - {("act1", "out", "fc2", "x")}
    c.stack.undo()
    assert c.model.doc == start and len(c.scopes) == 2


def test_a_read_only_layer_detaches_nothing(make_window):
    from nodegraph.canvas.wiredetach import DetachDrag

    win = make_window("spiral_mlp")
    c = win.controller
    assert c.enter("fc1") and c.read_only
    win.view.fit()
    before, shown = frozen(c.model.doc), frozen(c.view_model.doc)
    edge = next(e for e in c.view_model.edges() if e["src"]["node"] != "$in")
    dst, dport = edge["dst"]["node"], edge["dst"]["port"]
    item = win.scene.edges[tuple(keys([edge]))[0]]
    a = port_point(win, dst, dport, False)
    other = next(p for n in win.scene.nodes.values() for p in n.ports.values()
                 if not p.output and p.node_id not in (dst, "$out"))
    b = view_point(win, other.scenePos())
    press(win, a)
    move_to(win, a, b)
    assert not isinstance(win.scene.wire, DetachDrag) and item.opacity() == 1.0
    release(win, b)
    assert frozen(c.model.doc) == before and frozen(c.view_model.doc) == shown
    assert c.stack.count() == 0 and item.scene() is win.scene


def test_variadic_slots_move_and_detach(make_window):
    win = make_window("spiral_mlp")
    c = win.controller
    cat = c.add_node("concat", (700, 420))
    assert c.connect("fc1", "y", cat, "inputs[0]") is None
    win.view.fit()
    slots = lambda: sorted(n for n, out in win.scene.nodes[cat].ports if not out)  # noqa: E731
    assert slots() == ["inputs[0]", "inputs[1]"]
    before = copy.deepcopy(c.model.doc)
    # act1.out → fc2.x moved into the free slot: the node grows the next free slot.
    drag(win, port_point(win, "fc2", "x", False), port_point(win, cat, "inputs[1]", False))
    assert ("act1", "out", cat, "inputs[1]") in keys(c.model.doc["edges"])
    assert ("act1", "out", "fc2", "x") not in keys(c.model.doc["edges"])
    assert slots() == ["inputs[0]", "inputs[1]", "inputs[2]"]
    moved = copy.deepcopy(c.model.doc)
    # Detached from its slot and dropped on the canvas: that edge goes, the free slot shrinks.
    drag(win, port_point(win, cat, "inputs[1]", False), empty_point(win))
    assert keys(c.model.doc["edges"]) == keys(moved["edges"]) - {("act1", "out", cat, "inputs[1]")}
    assert slots() == ["inputs[0]", "inputs[1]"]
    c.stack.undo()
    assert c.model.doc == moved and slots() == ["inputs[0]", "inputs[1]", "inputs[2]"]
    c.stack.undo()
    assert c.model.doc == before and slots() == ["inputs[0]", "inputs[1]"]


def test_move_wire_refusals_name_the_reason(make_window):
    win = make_window("spiral_mlp")
    c = win.controller
    before = frozen(c.model.doc)
    accuracy = wire("fc2", "y", "accuracy", "logits")
    assert "already connected" in c.move_wire(accuracy, "loss", "logits")
    assert "already plugged" in c.move_wire(accuracy, "accuracy", "logits")
    assert "no longer" in c.move_wire(wire("fc1", "y", "loss", "logits"), "fc2", "x")
    assert "cycle" in c.move_wire(wire("fc1", "y", "act1", "x"), "fc1", "x")
    assert frozen(c.model.doc) == before and c.stack.count() == 0
