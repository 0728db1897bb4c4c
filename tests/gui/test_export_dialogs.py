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
                        lambda p, t, onnx, run=None: {"weights": None, "opset": 20})
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
                        lambda p, t, onnx, run=None: {"weights": None, "opset": 17})
    monkeypatch.setattr(export_dialogs, "ask_onnx_path", lambda p, s: str(tmp_path / "m.onnx"))
    assert export_dialogs.export_onnx_dialog(parent, doc, path) is None
    assert shown[0][0] == "error" and "node 'act1'" in shown[0][2]
    assert not (tmp_path / "m.onnx").exists()


def test_torch_dialog_writes_the_project(qtbot, tmp_path, monkeypatch, shown):
    parent = QWidget()
    qtbot.addWidget(parent)
    doc, path = api.open_graph("spiral_mlp")
    monkeypatch.setattr(export_dialogs, "ask_options",
                        lambda p, t, onnx, run=None: {"weights": None, "opset": 17})
    monkeypatch.setattr(export_dialogs, "ask_folder", lambda p, s: str(tmp_path))
    assert export_dialogs.export_torch_dialog(parent, doc, path) is not None
    folder = tmp_path / "spiral_mlp_torch"
    assert {p.name for p in folder.iterdir()} == {"model.py", "weights.safetensors",
                                                   "train.py", "data.npz"}
    assert shown[0][0] == "info" and "train.py" in shown[0][2]


def test_cancelling_the_options_exports_nothing(qtbot, tmp_path, monkeypatch, shown):
    parent = QWidget()
    qtbot.addWidget(parent)
    monkeypatch.setattr(export_dialogs, "ask_options", lambda p, t, onnx, run=None: None)
    doc, path = api.open_graph("spiral_mlp")
    assert export_dialogs.export_onnx_dialog(parent, doc, path) is None
    assert export_dialogs.export_torch_dialog(parent, doc, path) is None
    assert shown == [] and list(tmp_path.iterdir()) == []


def test_the_menu_exports_a_presets_own_weights(make_window, tmp_path, monkeypatch, shown):
    """A preset opened as a template exports with its shipped weights, as the CLI does."""
    win = make_window("spiral_mlp")
    shipped = tmp_path / "shipped.safetensors"
    weights = api.load_weights_file(_fresh_weights(win, shipped))
    preset = tmp_path / "spiral_mlp.json"
    api.document.save(win.controller.model.doc, preset)
    shipped.rename(preset.with_suffix(".safetensors"))
    monkeypatch.setattr(win.files, "document_source", lambda: str(preset))
    asked: list = []
    monkeypatch.setattr(export_dialogs, "ask_options",
                        lambda p, t, onnx, run=None: asked.append(run) or
                        {"weights": None, "opset": 17})
    monkeypatch.setattr(export_dialogs, "ask_folder", lambda p, s: str(tmp_path))
    win.actions_by_name["export_torch"].trigger()
    assert asked == [None]  # no run yet: only the graph's own weights or a file
    assert shown and shown[-1][0] == "info", shown
    assert "spiral_mlp.safetensors" in shown[-1][2] and "fresh" not in shown[-1][2]
    out = api.load_weights_file(tmp_path / "spiral_mlp_torch" / "weights.safetensors")
    name = next(iter(weights))
    assert (out[name] == weights[name]).all()


def test_the_document_source_of_a_template_is_its_preset(make_window):
    win = make_window("char_gpt")
    assert win.path is None and win.template
    source = win.files.document_source()
    assert source is not None and source.endswith("char_gpt.json")
    assert api.document_weights_path(win.controller.model.doc, source) is not None


def test_the_options_offer_the_last_runs_weights(qtbot, tmp_path):
    parent = QWidget()
    qtbot.addWidget(parent)
    run_file = tmp_path / "run.safetensors"
    dialog = export_dialogs.ExportOptions(parent, "Export", True, (str(run_file), "run 1"))
    qtbot.addWidget(dialog)
    assert dialog.weights.count() == 3 and "run 1" in dialog.weights.itemText(2)
    dialog.weights.setCurrentIndex(2)
    dialog._choose(2)
    assert dialog.weights_path == str(run_file)
    dialog._choose(0)
    assert dialog.weights_path is None
    plain = export_dialogs.ExportOptions(parent, "Export", True)
    qtbot.addWidget(plain)
    assert plain.weights.count() == 2


def _fresh_weights(win, path) -> str:
    from engine.base.io import save_weights
    from engine.core.inference import extract_model, resolve_weights

    model = extract_model(win.controller.model.snapshot())
    arrays, _ = resolve_weights(model, None, None, seed=123)
    save_weights(path, arrays)
    return str(path)
