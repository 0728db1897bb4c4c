"""The debugger's Node tab before any run (issue 14 §4): selecting a node shows the histograms
(and weight images) of the document's shipped weights, or of weights File ▸ Load Weights…
loaded; a graph with no weights keeps the hint."""

from __future__ import annotations

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from engine import api

pytestmark = pytest.mark.gui


def _select(win, node_id: str) -> None:
    win.scene.clearSelection()
    win.scene.nodes[node_id].setSelected(True)


def test_node_tab_shows_the_shipped_weights_before_a_run(make_window, qtbot):
    win = make_window("char_gpt")
    panel = win.training.inspect_widget.node
    assert not win.training.session.has_trainer
    _select(win, "block1")
    detail = panel.detail
    assert detail is not None and detail["node"] == "block1"
    shipped = load_file(str(api.document_weights_path(
        win.controller.model.doc, win.files.document_source())))
    assert detail["weights"], "no weight histograms"
    for name, entry in detail["weights"].items():
        assert entry["shape"] == list(shipped[name].shape)
        assert sum(entry["hist"]["counts"]) == shipped[name].size
        lo, hi = entry["hist"]["edges"][0], entry["hist"]["edges"][-1]
        assert lo <= float(shipped[name].min()) and hi >= float(shipped[name].max())
    assert "char_gpt.safetensors" in panel.title.text() and "step" not in panel.title.text()
    win.training.docks[2].raise_()
    win.training.inspect_widget.setCurrentWidget(panel)
    panel.resize(420, 520)
    panel.grab().save("/tmp/h10/shipped_hist.png")


def test_no_weights_keeps_the_hint_and_loaded_weights_are_shown(make_window, tmp_path):
    win = make_window("spiral_mlp")
    panel = win.training.inspect_widget.node
    _select(win, "fc1")
    assert panel.detail is None and "Select a node" in panel.title.text()
    path = tmp_path / "w.safetensors"
    save_file({"fc1.weight": np.full((64, 2), 0.5, np.float32),
               "fc1.bias": np.full(64, -1.0, np.float32)}, str(path))
    win.training.load_weights(str(path), show=False)
    _select(win, "fc2")
    _select(win, "fc1")
    bias = panel.detail["weights"]["fc1.bias"]["hist"]
    assert sum(bias["counts"]) == 64
    assert bias["edges"][0] <= -1.0 <= bias["edges"][-1] and bias["edges"][-1] < 0
    assert "w.safetensors" in panel.title.text()
