"""The PyTorch project export trains a seq2seq graph: train.py follows Wiregrad's trainer step
for step (float64), learns, starts the shipped preset at the engine's first-step loss, its
checkpoint evaluates back in Wiregrad, and its exact match equals the engine's greedy
decoding."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine import api
from engine.base.io import model_weights, save_weights
from engine.cli import main
from engine.core import document
from engine.data.datasets import load_dataset
from engine.graphs.seq2seq_builder import seq2seq_dates
from engine.insight.seq2seq_predictions import chosen
from engine.sample.seq2seq import load_model
from engine.sample.seq2seq_search import evaluate_pairs
from engine.train.trainer import Trainer

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")


def _load(path: Path, name: str):
    sys.modules.pop("model", None)  # train.py imports its own folder's model.py
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _export(graph, out: Path, *extra) -> Path:
    assert main(["export", str(graph), "--format", "torch", "--out", str(out),
                 *map(str, extra)]) == 0
    return out


def _rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def _small_seq2seq(tmp_path: Path, **optimizer) -> Path:
    """1 encoder + 2 decoder blocks, width 32 (not the preset's shape), 120 training pairs."""
    doc = seq2seq_dates(layers=2, width=32, heads=2, batch=8, n_train=120, steps=40)
    doc["nodes"] = [n for n in doc["nodes"] if n["id"] != "enc2"]
    edges = [e for e in doc["edges"] if "enc2" not in (e["src"]["node"], e["dst"]["node"])]
    edges.append({"src": {"node": "enc1", "port": "y"}, "dst": {"node": "enc_ln", "port": "x"}})
    doc["edges"] = edges
    next(n for n in doc["nodes"] if n["id"] == "pairs")["params"]["n_val"] = 40
    next(n for n in doc["nodes"] if n["type"] == "optimizer")["params"].update(optimizer)
    doc["training"].update(eval_every=10, eval_batches=2)
    path = tmp_path / "s2s.json"
    document.save(doc, path)
    return path


def test_train_py_follows_wiregrad_step_for_step_on_a_seq2seq_graph(tmp_path, capsys):
    graph = _small_seq2seq(tmp_path, warmup=2)  # AdamW, decay set, cosine, clipping
    folder = _export(graph, tmp_path / "proj")
    config = _load(folder / "train.py", "train_s2s").CONFIG
    assert config["seq2seq"]["node"] == "pairs" and config["loss"]["ignore_index"] == -100
    assert [config["inputs"][config["seq2seq"]["target_in"]]] == [["pairs", "target_in"]]
    train = _load(folder / "train.py", "train_s2s")
    run = tmp_path / "run"
    steps = 3
    train.main(["--steps", str(steps), "--dtype", "float64", "--out", str(run),
                "--log-every", "1000"])
    trainer = Trainer(document.load(graph), base_dir=graph.parent, steps=steps,
                      dtype="float64", weights=model_weights(folder / "weights.safetensors"))
    ours = [trainer.train_step()["loss"] for _ in range(steps)]
    theirs = [json.loads(line)["loss"] for line in (run / "metrics.jsonl").open()]
    assert _rel(theirs, ours) <= 1e-9, (theirs, ours)
    after = model_weights(run / "ckpt.safetensors")
    for name, value in trainer.params.items():
        assert _rel(after[name], value) <= 1e-9, name
    # the validation loss (padding ignored, examples weighted) is Wiregrad's too
    net = train.Model().double()
    net.load_state_dict({k: torch.from_numpy(v) for k, v in after.items()})
    val = train.evaluate(net, train.load_data(), torch.float64, torch.device("cpu"))
    assert _rel(val, trainer.evaluate()["val_loss"]) <= 1e-9
    # the checkpoint evaluates back in Wiregrad, exact match included
    capsys.readouterr()
    assert main(["evaluate", str(graph), "--weights", str(run / "ckpt.safetensors"),
                 "--pairs", "10", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["pairs"] == 10 and 0.0 <= result["exact_match"] <= 1.0


def test_exported_seq2seq_learns_and_prints_exact_match(tmp_path, capsys):
    graph = _small_seq2seq(tmp_path, lr=1e-2, warmup=0, schedule="constant")
    folder = _export(graph, tmp_path / "proj")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "train.py", "--steps", "40", "--out",
                           str(tmp_path / "run"), "--log-every", "100"], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    losses = [json.loads(line)["loss"] for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert len(losses) == 40
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.5, losses
    evals = [line for line in proc.stdout.splitlines() if "val_loss" in line]
    assert [line.split(":")[0] for line in evals] == [f"step {s}" for s in (10, 20, 30, 40)]
    assert all(", exact_match " in line for line in evals)


def test_the_preset_project_starts_at_the_engines_first_step_loss(tmp_path):
    folder = _export("seq2seq_dates", tmp_path / "proj")  # the shipped weights
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "train.py", "--steps", "2", "--dtype", "float64",
                           "--out", str(tmp_path / "run")], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    theirs = [json.loads(line)["loss"] for line in (tmp_path / "run" / "metrics.jsonl").open()]
    doc, path = api.open_graph("seq2seq_dates")
    trainer = Trainer(doc, base_dir=path.parent, steps=2, dtype="float64",
                      weights=api.document_weights(doc, path))
    ours = [trainer.train_step()["loss"] for _ in range(2)]
    assert _rel(theirs, ours) <= 1e-9, (theirs, ours)


def test_train_py_exact_match_equals_the_engines_greedy_decoding(tmp_path):
    doc, path = api.open_graph("seq2seq_dates")
    weights = api.document_weights(doc, path)
    noisy = dict(weights)  # some outputs wrong, some right
    noisy["head.weight"] = weights["head.weight"] + np.random.default_rng(0).normal(
        scale=0.5, size=weights["head.weight"].shape).astype(np.float32)
    save_weights(tmp_path / "noisy.safetensors", noisy)
    folder = _export("seq2seq_dates", tmp_path / "proj", "--weights",
                     tmp_path / "noisy.safetensors")
    train = _load(folder / "train.py", "train_preset")
    net = train.Model().double()
    net.load_state_dict({k: torch.from_numpy(v.astype(np.float64)) for k, v in noisy.items()})
    theirs = train.exact_match(net, train.load_data(), torch.float64, torch.device("cpu"))
    node = next(n for n in doc["nodes"] if n["type"] == "sequence_pairs")
    pairs = load_dataset("sequence_pairs", node["params"], path.parent,
                         node["id"]).info["val_pairs"]
    picked = chosen(pairs, train.CONFIG["seq2seq"]["pairs"])
    ours = evaluate_pairs(load_model(doc, noisy, np.float64), picked)["exact_match"]
    assert 0.0 < ours < 1.0 and theirs == ours


def test_graphs_without_sequence_pairs_get_no_exact_match(tmp_path):
    folder = _export("spiral_mlp", tmp_path / "proj")
    train = _load(folder / "train.py", "train_spiral")
    assert "seq2seq" not in train.CONFIG
    assert train.exact_match(None, {}, torch.float64, torch.device("cpu")) is None


def test_train_py_greedy_outputs_equal_the_engines_on_a_non_causal_decoder(tmp_path):
    """A decoder whose self-attention sees later positions: train.py recomputes the whole
    decoder each step like Wiregrad's full recomputation, so every output is the same."""
    from engine.core.compile import compile_document
    from engine.core.run import init_weights
    from engine.graphs.seq2seq_builder import seq2seq_custom

    doc = seq2seq_custom(enc_layers=1, dec_layers=1, width=16, heads=2, decoder="parts",
                         self_causal=False)
    weights = init_weights(compile_document(doc, "float64").parameters, 3, np.float64)
    document.save(doc, tmp_path / "g.json")
    save_weights(tmp_path / "w.safetensors", weights)
    folder = _export(tmp_path / "g.json", tmp_path / "proj", "--weights",
                     tmp_path / "w.safetensors")
    train = _load(folder / "train.py", "train_noncausal")
    net = train.Model().double()
    net.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    spec, data = train.CONFIG["seq2seq"], train.load_data()
    val = data[spec["node"]]["val"]
    rows = train.spread(len(val["target_out"]), spec["pairs"])
    outputs = train.greedy_outputs(net, {k: v[rows] for k, v in val.items()}, spec,
                                   torch.float64, torch.device("cpu"))
    node = next(n for n in doc["nodes"] if n["type"] == "sequence_pairs")
    vocab = node["params"]["vocab"]
    theirs = ["".join(vocab[i - spec["specials"]] for i in train.visible(o, spec))
              for o in outputs]
    pairs = load_dataset("sequence_pairs", node["params"], None, node["id"]).info["val_pairs"]
    model = load_model(doc, weights, np.float64)
    assert "full recomputation" in model.decoding
    ours = evaluate_pairs(model, chosen(pairs, spec["pairs"]))["outputs"]
    assert len(set(ours)) > 1 and theirs == ours
