"""File ▸ Import ONNX Model: the model opens as a graph with its layers, saved where the user
chose with its weights beside it; a model that does not map shows the reason and writes nothing."""

from __future__ import annotations

import pytest
from guihelp import save_screenshot

from engine import api

pytestmark = pytest.mark.gui
pytest.importorskip("onnx")


def test_import_opens_the_model_as_a_graph_with_layers(make_window, dialogs, tmp_path,
                                                        monkeypatch):
    from nodegraph import dialogs as dlg

    doc, _ = api.open_graph("shapes_cnn")
    model = tmp_path / "cnn.onnx"
    api.export_onnx(doc, model)
    shown = []
    monkeypatch.setattr(dlg, "onnx_path", lambda parent: str(model))
    monkeypatch.setattr(dlg, "info", lambda parent, title, text: shown.append(text))
    dialogs.save_path = str(tmp_path / "imported" / "cnn.json")
    win = make_window(None)
    win.actions_by_name["import_onnx"].trigger()
    assert not dialogs.errors
    types = {n["type"] for n in win.controller.model.doc["nodes"]}
    assert {"Conv2d", "BatchNorm2d", "MaxPool2d", "Flatten", "Linear"} <= types
    assert win.path == tmp_path / "imported" / "cnn.json"
    assert (tmp_path / "imported" / "cnn.safetensors").is_file()
    assert win.controller.validation["ok"]
    assert shown and "Conv2d×2" in shown[0]
    win.resize(1400, 820)
    win.view.fit()
    win.scene.clearSelection()
    win.inspector.show_node("conv1")
    save_screenshot(win, "import-shapes_cnn", tmp_path)


def test_a_model_that_does_not_map_shows_why_and_writes_nothing(make_window, dialogs, tmp_path,
                                                                monkeypatch):
    from nodegraph import dialogs as dlg

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    monkeypatch.setattr(dlg, "onnx_path", lambda parent: str(bad))
    dialogs.save_path = str(tmp_path / "out" / "bad.json")
    win = make_window("spiral_mlp")
    before = win.controller.model.snapshot()
    win.actions_by_name["import_onnx"].trigger()
    assert dialogs.errors and "not a readable ONNX model" in dialogs.errors[0][1]
    assert win.controller.model.snapshot() == before
    assert not (tmp_path / "out").exists()


def test_the_inspector_freezes_a_layer_in_one_undo_step(make_window, dialogs):
    win = make_window("spiral_mlp")
    win.inspector.show_node("fc1")
    box = win.inspector.widgets["trainable"]
    assert box.isChecked() and box.isEnabled()
    box.setChecked(False)
    node = win.controller.model.node("fc1")
    assert node["trainable"] is False
    win.controller.stack.undo()
    assert "trainable" not in win.controller.model.node("fc1")
    win.inspector.show_node("act")  # no parameters: nothing to freeze
    assert "trainable" not in win.inspector.widgets
