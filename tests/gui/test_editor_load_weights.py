"""File ▸ Load Weights… (issue 14 §4): weights for the current graph from a weights file,
checkpoint or ONNX model, matched by parameter name; the report names what matched, what did
not and shape mismatches with both shapes; the next Train, sampling and export use them."""

from __future__ import annotations

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

pytestmark = pytest.mark.gui


def _source(tmp_path):
    """fc1 right, fc2.weight of another shape, fc2.bias absent, one tensor the graph lacks."""
    rng = np.random.default_rng(0)
    tensors = {"fc1.weight": rng.normal(size=(64, 2)).astype(np.float32),
               "fc1.bias": np.full(64, 0.25, np.float32),
               "fc2.weight": np.zeros((4, 64), np.float32),
               "extra.scale": np.ones(3, np.float32)}
    path = tmp_path / "other.safetensors"
    save_file(tensors, str(path))
    return path, tensors


def test_menu_loads_weights_reports_and_feeds_train_sampling_export(make_window, tmp_path,
                                                                    monkeypatch, dialogs):
    from nodegraph.training import loadweights

    win = make_window("spiral_mlp")
    path, tensors = _source(tmp_path)
    monkeypatch.setattr(loadweights, "ask_file", lambda *a, **k: str(path))
    win.actions_by_name["load_weights"].trigger()

    dialog = win.training.weight_loader.dialog
    assert dialog is not None and dialog.isVisible()
    rows = {dialog.table.topLevelItem(i).text(0): [dialog.table.topLevelItem(i).text(c)
                                                   for c in range(1, 4)]
            for i in range(dialog.table.topLevelItemCount())}
    assert rows["fc1.weight"][0] == "matched" and rows["fc1.bias"][0] == "matched"
    assert rows["fc2.weight"] == ["shape mismatch", "4×64", "3×64"]
    assert rows["fc2.bias"][0] == "missing in the file"
    assert rows["extra.scale"][0] == "unused (not in the graph)"
    assert "2 matched" in dialog.headline.text() and "1 of another shape" in \
        dialog.headline.text()
    dialog.resize(640, 300)
    dialog.grab().save("/tmp/h10/load_report.png")

    written, label = win.training.weight_loader.loaded
    loaded = load_file(written)
    assert np.array_equal(loaded["fc1.weight"], tensors["fc1.weight"])
    assert np.all(loaded["fc1.bias"] == 0.25)
    assert loaded["fc2.weight"].shape == (3, 64) and loaded["fc2.bias"].shape == (3,)
    assert "extra.scale" not in loaded
    # the next Train, sampling and export take them
    settings = win.training.dock_widget.controls.settings
    assert settings.start_weights() == written and "other" in settings.start.currentText()
    assert win.training.sampling.weights_path == written
    assert win.training.run_weights() == (written, label)
    from nodegraph.export_dialogs import ExportOptions

    options = ExportOptions(win, "Export", True, win.training.run_weights())
    assert options.weights.itemText(2) == "The loaded weights (loaded from other.safetensors)"
    options.weights.setCurrentIndex(2)
    options._choose(2)
    assert options.weights_path == written
    started = {}
    monkeypatch.setattr(win.training.session, "train",
                        lambda *a, **k: started.update(k))
    win.training.train()
    assert started["weights"] == written
    assert not dialogs.errors


def test_a_file_that_matches_nothing_is_refused_and_another_document_forgets(
        make_window, tmp_path, dialogs, qtbot):
    win = make_window("spiral_mlp")
    bad = tmp_path / "bad.safetensors"
    save_file({"nothing.here": np.ones(2, np.float32)}, str(bad))
    assert win.training.load_weights(str(bad), show=False) is None
    qtbot.waitUntil(lambda: bool(dialogs.errors))
    assert "none of the file's 1 tensors" in dialogs.errors[0][1]
    assert win.training.weight_loader.loaded is None

    path, _ = _source(tmp_path)
    assert win.training.load_weights(str(path), show=False)["matched"]
    win.files.new()
    settings = win.training.dock_widget.controls.settings
    assert win.training.weight_loader.loaded is None and settings.start_weights() is None
    assert win.training.run_weights() is None


def test_an_onnx_model_and_a_training_checkpoint_load_too(make_window, tmp_path):
    from engine import api

    win = make_window("spiral_mlp")
    doc = win.training.host.snapshot()
    rng = np.random.default_rng(1)
    weights = {"fc1.weight": rng.normal(size=(64, 2)).astype(np.float32),
               "fc1.bias": np.full(64, 0.25, np.float32),
               "fc2.weight": rng.normal(size=(3, 64)).astype(np.float32),
               "fc2.bias": np.full(3, -0.5, np.float32)}
    onnx = tmp_path / "m.onnx"
    api.export_onnx(doc, onnx, weights=weights)
    report = win.training.load_weights(str(onnx), show=False)
    assert sorted(report["matched"]) == sorted(weights) and not report["mismatched"]
    loaded = load_file(win.training.weight_loader.loaded[0])
    for name, value in weights.items():
        np.testing.assert_allclose(loaded[name], value, rtol=0, atol=0)
    assert win.training.weight_loader.loaded[1] == "loaded from m.onnx"
