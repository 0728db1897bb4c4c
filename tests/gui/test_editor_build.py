"""Build the spiral MLP from an empty canvas by driving the view, like a user would."""

from __future__ import annotations

import pytest
from guihelp import click_node, drag, port_point, same_graph, save_screenshot
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt
from PySide6.QtGui import QDropEvent

from engine import api

pytestmark = pytest.mark.gui

# type, where to drop it (viewport pixels), inspector edits
STEPS = [
    ("classification_2d", (90, 300), {}),
    ("Linear", (220, 180), {"in_features": 2, "out_features": 64}),
    ("relu", (350, 180), {}),
    ("Linear", (480, 180), {"in_features": 64, "out_features": 3}),
    ("cross_entropy", (620, 240), {}),
    ("optimizer", (760, 240), {"algorithm": "adam", "lr": "0.01"}),
    ("accuracy", (620, 400), {}),
]
WIRES = [  # src, port, dst, port (by step index)
    (0, "points", 1, "x"), (1, "y", 2, "x"), (2, "out", 3, "x"), (3, "y", 4, "logits"),
    (0, "labels", 4, "labels"), (4, "loss", 5, "loss"), (3, "y", 6, "logits"),
    (0, "labels", 6, "labels"),
]


def drop_from_palette(win, type_name: str, at: QPoint) -> None:
    """A synthesized drop carrying what the palette's drag carries (QTest cannot QDrag)."""
    from nodegraph.panels.palette import mime_for

    assert win.palette.item_for(type_name) is not None, f"{type_name} is not in the palette"
    mime: QMimeData = mime_for(type_name)
    event = QDropEvent(QPointF(at), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    win.view.dropEvent(event)


def edit(win, name: str, value) -> None:
    widget = win.inspector.widgets[name]
    if hasattr(widget, "setValue"):
        widget.setValue(value)
    elif hasattr(widget, "setCurrentText"):
        widget.setCurrentText(value)
    else:
        widget.setText(value)
        widget.editingFinished.emit()


def build_spiral(win, qtbot) -> list[str]:
    ids = []
    for type_name, (x, y), edits in STEPS:
        before = set(win.scene.nodes)
        drop_from_palette(win, type_name, QPoint(x, y))
        (new,) = set(win.scene.nodes) - before
        ids.append(new)
        win.scene.clearSelection()
        click_node(win, new)
        assert win.inspector.node_id == new
        for name, value in edits.items():
            edit(win, name, value)
            qtbot.wait(1)  # the inspector rebuilds after the edit
    for s, sp, d, dp in WIRES:
        drag(win, port_point(win, ids[s], sp, True), port_point(win, ids[d], dp, False))
    return ids


def test_build_spiral_mlp_from_empty_canvas(make_window, qtbot, catalog, tmp_path):
    win = make_window(None)
    win.view.resetTransform()
    win.view.set_zoom(0.6)
    win.view.centerOn(QPointF(600, 300))
    ids = build_spiral(win, qtbot)
    doc = win.controller.model.doc
    preset, _ = api.open_graph("spiral_mlp")
    assert same_graph(doc, preset, catalog)
    assert ids[:4] == ["data1", "fc1", "act1", "fc2"] and "loss" in ids and "optimizer" in ids
    assert win.controller.validation["ok"], win.controller.validation["diagnostics"]
    assert win.controller.validation["total_params"] == 387
    labels = {k: e.label for k, e in win.scene.edges.items()}
    assert labels[("fc1", "y", "act1", "x")] == "B×64"
    # Every step is undoable down to the empty document.
    steps = win.controller.stack.count()
    assert steps == len(STEPS) + sum(len(e) for _, _, e in STEPS) + len(WIRES)
    win.scene.clearSelection()
    save_screenshot(win, "tutorial-built", tmp_path)
    while win.controller.stack.canUndo():
        win.controller.stack.undo()
    assert win.controller.model.doc["nodes"] == [] and win.controller.model.doc["edges"] == []


def test_wire_dropped_on_empty_canvas_quick_adds_and_connects(make_window, qtbot):
    win = make_window("spiral_mlp")
    win.controller.remove(["act1"])
    start = port_point(win, "fc1", "y", True)
    drag(win, start, start + QPoint(60, 140))
    popup = win.edit.quick_add_popup
    assert popup is not None and popup.isVisible()
    names = [popup.list.item(i).data(Qt.ItemDataRole.UserRole)[0]
             for i in range(popup.list.count())]
    assert "relu" in names and "classification_2d" not in names  # no inputs: filtered out
    popup.search.setText("relu")
    popup.search.returnPressed.emit()
    doc = win.controller.model.doc
    new = [n["id"] for n in doc["nodes"] if n["type"] == "relu"]
    assert len(new) == 1
    assert {"src": {"node": "fc1", "port": "y"}, "dst": {"node": new[0], "port": "x"}} \
        in doc["edges"]
