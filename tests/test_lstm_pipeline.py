"""A hand-written char-LSTM (stacked LSTM layer, untied head) goes the whole way from the CLI:
validate → gradcheck → train → evaluate → ONNX export → run (equal to onnxruntime) → sample."""

from __future__ import annotations

import numpy as np
import pytest

from engine.cli import main
from engine.core import document
from engine.graphs.builders import char_lstm


@pytest.fixture
def lstm_doc(tmp_path):
    doc = char_lstm(layers=2, width=8, hidden=8, block=8, batch=2, steps=3)
    doc["training"].update(eval_batches=2, eval_every=3, checkpoint_every=0)
    path = tmp_path / "lstm.json"
    document.save(doc, path)
    return path


def test_lstm_graph_validates_gradchecks_trains_evaluates_exports_runs_and_samples(
        lstm_doc, tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime")
    graph, run = str(lstm_doc), tmp_path / "run"
    assert main(["validate", graph]) == 0
    assert main(["gradcheck", graph]) == 0
    out = capsys.readouterr().out
    assert "lstm" in out and "all nodes pass" in out
    assert main(["train", graph, "--steps", "3", "--out", str(run), "--quiet"]) == 0
    weights = str(run / "weights.safetensors")
    capsys.readouterr()
    assert main(["evaluate", graph, "--weights", weights, "--batches", "2", "--json"]) == 0
    assert '"val_loss"' in capsys.readouterr().out
    onnx_path = tmp_path / "m.onnx"
    assert main(["export", graph, "--weights", weights, "--format", "onnx",
                 "--out", str(onnx_path)]) == 0
    vocab = len(document.load(lstm_doc)["nodes"][0]["params"]["vocab"])
    tokens = np.random.default_rng(0).integers(0, vocab, size=(3, 8)).astype(np.int64)
    np.savez(tmp_path / "in.npz", **{"text.tokens": tokens})
    assert main(["run", graph, "--weights", weights, "--inputs", str(tmp_path / "in.npz"),
                 "--outputs", str(tmp_path / "out.npz")]) == 0
    with np.load(tmp_path / "out.npz") as ran:
        ours = ran["head"]
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    theirs = session.run(None, {"text.tokens": tokens})[0]
    assert ours.shape == (3, 8, vocab)
    np.testing.assert_allclose(theirs, ours, rtol=1e-4, atol=1e-5)
    capsys.readouterr()
    assert main(["sample", graph, "--weights", weights, "-n", "30", "--prompt", "ROMEO:",
                 "--verbose", "--no-echo"]) == 0
    captured = capsys.readouterr()
    assert "decoding: recurrent (unbounded context)" in captured.err
    assert len(captured.out.strip("\n")) >= 20
