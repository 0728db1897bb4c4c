"""Groups and layers: group → enter → edit → leave → ungroup; built-ins read-only; library."""

from __future__ import annotations

import copy

import pytest
from guihelp import canonical, click_node, view_point
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from engine import api

pytestmark = pytest.mark.gui


def double_click_node(win, node_id: str) -> None:
    item = win.scene.nodes[node_id]
    at = view_point(win, item.mapToScene(item.body_rect().center().x(), 12))
    QTest.mouseDClick(win.view.viewport(), Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier, at)


def test_group_enter_edit_leave_ungroup_round_trips(make_window, qtbot):
    win = make_window("spiral_mlp")
    c = win.controller
    original = copy.deepcopy(c.model.doc)
    win.scene.select_nodes(["act1", "fc2"])
    gid = win.edit.group()
    assert gid == "group1" and c.model.node(gid)["type"] == "Group1"
    ldef = c.model.doc["layers"]["Group1"]
    assert [p["name"] for p in ldef["inputs"]] == ["x"] and len(ldef["outputs"]) == 1
    assert c.validation["ok"], c.validation["diagnostics"]
    assert c.validation["total_params"] == 387  # the same model, one node fewer
    assert {"src": {"node": "fc1", "port": "y"}, "dst": {"node": gid, "port": "x"}} \
        in c.model.doc["edges"]
    double_click_node(win, gid)
    assert [s.label for s in c.scopes] == ["graph", "Group1"] and not c.read_only
    assert win.crumbs.isVisible()
    assert set(win.scene.nodes) == {"act1", "fc2", "$in", "$out"}
    click_node(win, "fc2")
    win.inspector.widgets["out_features"].setValue(5)
    qtbot.wait(1)
    assert c.model.doc["layers"]["Group1"]["nodes"][1]["params"]["out_features"] == 5
    c.leave(0)
    assert len(c.scopes) == 1 and "group1" in win.scene.nodes
    win.scene.select_nodes([gid])
    win.edit.ungroup()
    expected = copy.deepcopy(original)
    expected["nodes"][3]["params"]["out_features"] = 5
    assert canonical(c.model.doc) == canonical(expected)
    # Every step undoes back to the original document.
    while c.stack.canUndo():
        c.stack.undo()
    assert c.model.doc == original


def test_builtin_layers_open_read_only(make_window):
    win = make_window("spiral_mlp")
    c = win.controller
    before = copy.deepcopy(c.model.doc)
    double_click_node(win, "fc1")
    assert c.read_only and set(win.scene.nodes) >= {"weight", "bias", "matmul", "add", "$in"}
    from PySide6.QtWidgets import QPushButton

    assert any("read-only" in b.text() for b in win.crumbs.findChildren(QPushButton))
    assert c.add_node("relu", (0, 0)) is None
    reason = c.connect("$in", "x", "add", "a")
    assert reason and "read-only" in reason
    win.scene.select_nodes(["matmul"])
    win.edit.delete()
    assert c.model.doc == before and c.stack.count() == 0
    c.leave()
    assert not c.read_only


def test_save_layer_to_library_adds_it_to_the_palette(make_window):
    win = make_window("spiral_mlp")
    win.scene.select_nodes(["fc1", "act1"])
    gid = win.edit.group()
    win.scene.select_nodes([gid])
    win.edit.save_layer()
    assert "Group1" in {op["name"] for op in api.catalog()["ops"] if op.get("user")}
    assert win.palette.item_for("Group1") is not None
    other = make_window(None)
    assert other.palette.item_for("Group1") is not None
    node_id = other.controller.add_node("Group1", (0, 0))
    assert other.controller.validation["nodes"][0]["id"] == node_id
