"""`wiregrad run`: the model's outputs for inputs from an .npz file, with the export's names."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from engine import api
from engine.base.io import save_weights
from engine.cli import main
from engine.core import document
from engine.core.inference import example_inputs, extract_model, resolve_weights
from engine.graphs import presets
from tests.helpers import doc_of, e, input_mlp, n

ROOT = Path(__file__).resolve().parent.parent


def test_run_as_a_process_writes_the_model_outputs(tmp_path):
    doc, path = presets.load("spiral_mlp")
    model = extract_model(doc)
    assert model.input_names == ["spirals.points"] and model.output_names == ["fc2"]
    points = np.random.default_rng(0).standard_normal((5, 2)).astype(np.float32)
    np.savez(tmp_path / "in.npz", **{"spirals.points": points})
    proc = subprocess.run(
        [sys.executable, "-m", "engine.cli", "run", "spiral_mlp", "--inputs",
         str(tmp_path / "in.npz"), "--outputs", str(tmp_path / "out.npz")],
        cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    with np.load(tmp_path / "out.npz") as out:
        assert out.files == ["fc2"]
        logits = out["fc2"]
    # The reference: the spiral MLP by hand, with the same (seeded) weights.
    w, _ = resolve_weights(model, path)
    hidden = np.maximum(points @ w["fc1.weight"].T + w["fc1.bias"], 0)
    np.testing.assert_allclose(logits, hidden @ w["fc2.weight"].T + w["fc2.bias"], atol=1e-5)


def test_run_uses_the_given_weights(tmp_path, capsys):
    doc, path = presets.load("spiral_mlp")
    model = extract_model(doc)
    w, _ = resolve_weights(model, path)
    other = {k: (v * 2 + 0.5).astype(np.float32) for k, v in w.items()}
    save_weights(tmp_path / "w.safetensors", other)
    inputs = example_inputs(model, {"B": 4})
    np.savez(tmp_path / "in.npz", **inputs)
    args = ["run", "spiral_mlp", "--inputs", str(tmp_path / "in.npz"), "--outputs"]
    assert main(args + [str(tmp_path / "a.npz")]) == 0
    assert main(args + [str(tmp_path / "b.npz"), "--weights",
                        str(tmp_path / "w.safetensors")]) == 0
    a, b = np.load(tmp_path / "a.npz")["fc2"], np.load(tmp_path / "b.npz")["fc2"]
    assert not np.allclose(a, b)
    np.testing.assert_allclose(b, api.run_model(doc, other, inputs)["fc2"], atol=1e-6)


def test_wrong_input_names_and_shapes_exit_2(tmp_path, capsys):
    np.savez(tmp_path / "bad.npz", points=np.zeros((3, 2), np.float32))
    rc = main(["run", "spiral_mlp", "--inputs", str(tmp_path / "bad.npz"), "--outputs",
               str(tmp_path / "o.npz")])
    err = capsys.readouterr().err
    assert rc == 2 and "'spirals.points'" in err and "'points'" in err
    np.savez(tmp_path / "bad.npz", **{"spirals.points": np.zeros((3, 5), np.float32)})
    rc = main(["run", "spiral_mlp", "--inputs", str(tmp_path / "bad.npz"), "--outputs",
               str(tmp_path / "o.npz")])
    err = capsys.readouterr().err
    assert rc == 2 and "B×2" in err and "3×5" in err
    rc = main(["run", "spiral_mlp", "--inputs", str(tmp_path / "missing.npz"), "--outputs",
               str(tmp_path / "o.npz")])
    assert rc == 2 and "no such file" in capsys.readouterr().err
    assert not (tmp_path / "o.npz").exists()


def test_input_nodes_are_named_by_id_and_graphs_without_loss_export_their_sinks(tmp_path):
    model = extract_model(input_mlp())
    assert model.input_names == ["points"]  # labels only feed the loss
    assert model.output_names == ["fc2"]
    nodes = [n("x", "input", shape=["B", 3]), n("parts", "split", parts=3),
             n("double", "mul")]
    edges = [e("x:out", "parts:x"), e("parts:out0", "double:a"), e("parts:out1", "double:b")]
    doc = doc_of(nodes, edges)
    model = extract_model(doc)
    assert model.input_names == ["x"]
    assert model.output_names == ["double"]
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    out = api.run_model(doc, None, {"x": x})
    np.testing.assert_array_equal(out["double"], (x[:, :1] * x[:, 1:2]))
    document.save(doc, tmp_path / "g.json")
    np.savez(tmp_path / "in.npz", x=x)
    assert main(["run", str(tmp_path / "g.json"), "--inputs", str(tmp_path / "in.npz"),
                 "--outputs", str(tmp_path / "out.npz")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "out.npz")["double"], out["double"])
