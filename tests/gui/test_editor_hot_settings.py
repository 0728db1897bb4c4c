"""Hot settings have one source (the op spec's ``hot``, via the catalog); the training dock's
fields edit the optimizer node through the document (one undo step, like the inspector), show
the real value and never clamp; the edit lock asks, the inspector is not patched."""

from __future__ import annotations

import pytest

from engine import api
from nodegraph.training.lock import EditLock

pytestmark = pytest.mark.gui


def _type(doc: dict, node_id: str) -> str:
    return next(n["type"] for n in doc["nodes"] if n["id"] == node_id)


def test_the_lock_reads_hot_params_from_the_catalog(make_window):
    win = make_window("shapes_cnn")
    lock, doc = win.training.lock, win.controller.model.doc
    spec_hot = {op["name"]: {p["name"] for p in op["params"] if p.get("hot")}
                for op in api.catalog()["ops"]}
    assert spec_hot["optimizer"] == {"lr", "weight_decay", "clip_norm"}
    for node in doc["nodes"]:
        for p in win.controller.catalog.spec(node["type"], doc)["params"]:
            assert lock.is_hot(None, node["id"], p["name"]) == (p["name"] in
                                                               spec_hot[node["type"]])
    bn = [n["id"] for n in doc["nodes"] if n["type"].startswith("BatchNorm")]
    assert bn and all(lock.is_hot(None, b, "momentum") for b in bn)
    assert not lock.is_hot(None, "optimizer", "algorithm")


def test_a_hot_edit_of_any_node_is_forwarded_by_node(make_window):
    win = make_window("shapes_cnn")
    doc = win.controller.model.doc
    bn = next(n["id"] for n in doc["nodes"] if n["type"].startswith("BatchNorm"))
    lock = EditLock(win.controller)
    sent: list[dict] = []
    lock.hot_edit.connect(sent.append)
    lock.engage(win.controller.model.snapshot())
    try:
        win.controller.set_param(bn, "momentum", 0.25)
        win.controller.set_param("optimizer", "lr", 0.5)
        assert sent == [{bn: {"momentum": 0.25}}, {"optimizer": {"lr": 0.5}}]
        assert lock.guard([("set_param", None, bn, "momentum", 0.3)]) is None
        assert lock.guard([("set_param", None, bn, "eps", 0.3)]) is not None
    finally:
        lock.release()


def test_the_inspector_asks_instead_of_being_patched(make_window):
    from nodegraph.panels.inspector import Inspector

    win = make_window("spiral_mlp")
    assert "show_node" not in vars(win.inspector)  # the class's method, not a wrapper
    assert win.inspector.editable == win.training.lock.may_edit
    win.training.lock.engage(win.controller.model.snapshot())
    try:
        win.inspector.show_node("optimizer")
        enabled = {k for k, w in win.inspector.widgets.items() if w.isEnabled()}
        assert enabled == {"lr", "weight_decay", "clip_norm"}
    finally:
        win.training.lock.release()
    Inspector.show_node(win.inspector, "optimizer")
    assert all(w.isEnabled() for w in win.inspector.widgets.values())


def test_dock_fields_edit_the_optimizer_node_as_one_undo_step(make_window):
    win = make_window("spiral_mlp")
    hot = win.training.dock_widget.controls.hot
    assert list(hot.fields) == win.controller.catalog.hot_params("optimizer")
    assert hot.fields["lr"].text() == "0.01"  # the document's value before any run
    count = win.controller.stack.count()
    hot.fields["lr"].setText("1e30")
    hot.fields["lr"].editingFinished.emit()
    assert win.controller.model.node("optimizer")["params"]["lr"] == 1e30
    assert win.controller.stack.count() == count + 1
    assert hot.fields["lr"].text() == "1e+30"  # the real value, not 10.000000
    win.inspector.show_node("optimizer")
    assert win.inspector.widgets["lr"].text() == "1e+30"  # dock and inspector agree
    win.controller.stack.undo()
    assert win.controller.model.node("optimizer")["params"]["lr"] == 0.01
    assert hot.fields["lr"].text() == "0.01"
    # the inspector's edit shows in the dock
    win.controller.set_param("optimizer", "weight_decay", 3e-4)
    assert hot.fields["weight_decay"].text() == "0.0003"


def test_out_of_range_values_are_refused_not_clamped(make_window):
    win = make_window("spiral_mlp")
    hot = win.training.dock_widget.controls.hot
    messages: list[str] = []
    hot.refused.connect(messages.append)
    count = win.controller.stack.count()
    for text in ("-0.1", "abc", "inf"):
        hot.fields["lr"].setText(text)
        hot.fields["lr"].editingFinished.emit()
        assert hot.fields["lr"].property("invalid") is True
        assert hot.fields["lr"].text() == text  # left for the user to correct
    assert win.controller.model.node("optimizer")["params"]["lr"] == 0.01
    assert win.controller.stack.count() == count
    assert len(messages) == 3 and "lr" in messages[0] and "not applied" in messages[0]
    assert "lr" in win.statusBar().currentMessage()


def test_a_graph_without_optimizer_shows_no_fields(make_window):
    win = make_window()
    hot = win.training.dock_widget.controls.hot
    assert hot.fields == {}
    win.controller.add_node("optimizer", (0, 0))
    assert "lr" in hot.fields
