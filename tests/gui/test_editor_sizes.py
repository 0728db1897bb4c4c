"""Shape inference fills sizes (issue 14 §4): a Linear / Conv2d / LayerNorm / BatchNorm dropped
onto a wire goes into it and takes in_features / in_channels / normalized_shape / num_features
from the wire's shape; a node quick-added from a dropped wire does too."""

from __future__ import annotations

import copy

import pytest
from guihelp import drag, port_point
from PySide6.QtCore import QMimeData, QPoint, Qt
from PySide6.QtGui import QDropEvent

from nodegraph.canvas.view import NODE_MIME
from nodegraph.editing.sizes import inferred_sizes

pytestmark = pytest.mark.gui


def _drop(win, type_name: str, scene_pos) -> None:
    mime = QMimeData()
    mime.setData(NODE_MIME, type_name.encode())
    point = win.view.mapFromScene(scene_pos)
    event = QDropEvent(point.toPointF(), Qt.DropAction.CopyAction, mime,
                       Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    win.view.dropEvent(event)


def _on_wire(win, key) -> object:
    return win.scene.edges[key].path.pointAtPercent(0.25)


@pytest.mark.parametrize("graph, key, type_name, param, value", [
    ("shapes_cnn", ("flatten", "y", "fc", "x"), "Linear", "in_features", 256),
    ("shapes_cnn", ("conv1", "y", "bn1", "x"), "Conv2d", "in_channels", 8),
    ("shapes_cnn", ("pool1", "y", "conv2", "x"), "BatchNorm2d", "num_features", 8),
    ("spiral_mlp", ("fc1", "y", "act1", "x"), "LayerNorm", "normalized_shape", 64),
])
def test_a_layer_dropped_onto_a_wire_goes_in_with_its_input_size(make_window, graph, key,
                                                                  type_name, param, value):
    win = make_window(graph)
    c = win.controller
    before = copy.deepcopy(c.model.doc)
    count = c.stack.count()
    _drop(win, type_name, _on_wire(win, key))
    new = [n for n in c.model.doc["nodes"] if n["id"] not in {m["id"] for m in before["nodes"]}]
    assert len(new) == 1 and new[0]["type"] == type_name
    node = new[0]
    assert node["params"][param] == value
    edges = c.model.doc["edges"]
    assert {"src": {"node": key[0], "port": key[1]}, "dst": {"node": node["id"], "port": "x"}} \
        in edges
    assert {"src": {"node": node["id"], "port": "y"}, "dst": {"node": key[2], "port": key[3]}} \
        in edges
    assert not any(e["src"]["node"] == key[0] and e["dst"]["node"] == key[2] for e in edges)
    assert c.stack.count() == count + 1  # one undo step
    c.stack.undo()
    assert c.model.doc == before


def test_a_drop_beside_the_wires_only_adds_the_node(make_window):
    win = make_window("spiral_mlp")
    c = win.controller
    edges = copy.deepcopy(c.model.doc["edges"])
    far = win.view.mapToScene(QPoint(5, win.view.viewport().height() - 5))
    _drop(win, "Linear", far)
    assert c.model.doc["edges"] == edges
    assert "in_features" not in c.model.doc["nodes"][-1]["params"]


def test_quick_add_from_a_wire_takes_the_size_too(make_window):
    win = make_window("spiral_mlp")
    win.controller.remove(["act1"])
    start = port_point(win, "fc1", "y", True)
    drag(win, start, start + QPoint(60, 140))
    popup = win.edit.quick_add_popup
    popup.search.setText("Linear")
    popup.search.returnPressed.emit()
    new = win.controller.model.doc["nodes"][-1]
    assert new["type"] == "Linear" and new["params"]["in_features"] == 64


def test_the_rules_ignore_symbolic_and_missing_dims():
    assert inferred_sizes("Linear", ["B", 32]) == {"in_features": 32}
    assert inferred_sizes("Linear", ["B", "T"]) == {}
    assert inferred_sizes("Conv2d", ["B"]) == {}
    assert inferred_sizes("relu", ["B", 4]) == {}
    assert inferred_sizes("Linear", None) == {}


def test_an_upstream_change_offers_to_update_the_size(make_window):
    from PySide6.QtWidgets import QPushButton

    win = make_window("spiral_mlp")
    c = win.controller
    c.set_param("fc1", "out_features", 32)  # fc2 still takes 64 features
    assert any(d["severity"] == "error" for d in c.validation["diagnostics"])
    win.inspector.show_node("fc2")
    offer = win.inspector.findChild(QPushButton, "fit_in_features")
    assert offer is not None and "in_features = 32" in offer.text()
    count = c.stack.count()
    offer.click()
    assert c.model.node("fc2")["params"]["in_features"] == 32
    assert c.stack.count() == count + 1
    assert not any(d["severity"] == "error" for d in c.validation["diagnostics"])
    win.inspector.show_node("fc2")
    assert win.inspector.findChild(QPushButton, "fit_in_features") is None  # nothing to offer
