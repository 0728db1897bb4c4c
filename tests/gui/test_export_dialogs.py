"""File ▸ Export ▸ ONNX… / PyTorch project…: the dialogs call the engine and show its errors."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QMessageBox, QWidget

from engine import api
from nodegraph import export_dialogs

pytestmark = pytest.mark.gui


@pytest.fixture
def shown(monkeypatch):
    messages: list[tuple[str, str, str]] = []
    monkeypatch.setattr(QMessageBox, "critical",
                        lambda parent, title, text: messages.append(("error", title, text)))
    monkeypatch.setattr(QMessageBox, "information",
                        lambda parent, title, text: messages.append(("info", title, text)))
    return messages


def test_onnx_dialog_writes_the_file_with_the_chosen_opset(qtbot, tmp_path, monkeypatch, shown):
    parent = QWidget()
    qtbot.addWidget(parent)
    doc, path = api.open_graph("spiral_mlp")
    monkeypatch.setattr(export_dialogs, "ask_options",
                        lambda p, t, onnx: {"weights": None, "opset": 20})
    monkeypatch.setattr(export_dialogs, "ask_onnx_path", lambda p, s: str(tmp_path / "m.onnx"))
    result = export_dialogs.export_onnx_dialog(parent, doc, path)
    assert (tmp_path / "m.onnx").is_file() and result["outputs"] == ["fc2"]
    assert shown[0][0] == "info" and "opset 20" in shown[0][2]
    import onnx

    assert onnx.load(str(tmp_path / "m.onnx")).opset_import[0].version == 20


def test_onnx_dialog_shows_the_engine_error_naming_the_node(qtbot, tmp_path, monkeypatch,
                                                            shown):
    from engine.export.onnx_export import ONNX_OPS

    parent = QWidget()
    qtbot.addWidget(parent)
    monkeypatch.delitem(ONNX_OPS, "relu")
    doc, path = api.open_graph("spiral_mlp")
    monkeypatch.setattr(export_dialogs, "ask_options",
                        lambda p, t, onnx: {"weights": None, "opset": 17})
    monkeypatch.setattr(export_dialogs, "ask_onnx_path", lambda p, s: str(tmp_path / "m.onnx"))
    assert export_dialogs.export_onnx_dialog(parent, doc, path) is None
    assert shown[0][0] == "error" and "node 'act1'" in shown[0][2]
    assert not (tmp_path / "m.onnx").exists()


def test_torch_dialog_writes_the_project(qtbot, tmp_path, monkeypatch, shown):
    parent = QWidget()
    qtbot.addWidget(parent)
    doc, path = api.open_graph("spiral_mlp")
    monkeypatch.setattr(export_dialogs, "ask_options",
                        lambda p, t, onnx: {"weights": None, "opset": 17})
    monkeypatch.setattr(export_dialogs, "ask_folder", lambda p, s: str(tmp_path))
    assert export_dialogs.export_torch_dialog(parent, doc, path) is not None
    folder = tmp_path / "spiral_mlp_torch"
    assert {p.name for p in folder.iterdir()} == {"model.py", "weights.safetensors",
                                                   "train.py", "data.npz"}
    assert shown[0][0] == "info" and "train.py" in shown[0][2]


def test_cancelling_the_options_exports_nothing(qtbot, tmp_path, monkeypatch, shown):
    parent = QWidget()
    qtbot.addWidget(parent)
    monkeypatch.setattr(export_dialogs, "ask_options", lambda p, t, onnx: None)
    doc, path = api.open_graph("spiral_mlp")
    assert export_dialogs.export_onnx_dialog(parent, doc, path) is None
    assert export_dialogs.export_torch_dialog(parent, doc, path) is None
    assert shown == [] and list(tmp_path.iterdir()) == []
