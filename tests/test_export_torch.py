"""PyTorch project export: model.py equals Wiregrad's forward, train.py follows Wiregrad's
trainer step for step in float64, runs as a script and under torchrun (DDP, gloo), and its
checkpoints load back into Wiregrad."""

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
from engine.base.io import model_weights
from engine.cli import main
from engine.core import document
from engine.core.inference import example_inputs, extract_model
from engine.core.run import Executor
from engine.graphs import builders as templates
from engine.graphs import presets
from engine.train.trainer import Trainer
from tests.helpers import input_mlp

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")  # README: torch is optional; without it these skip
ROOT = Path(__file__).resolve().parent.parent
PRESETS = [p["name"] for p in presets.list_presets()]


def _load(path: Path, name: str):
    sys.modules.pop("model", None)  # train.py imports its own folder's model.py
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _export(graph: str, out: Path) -> Path:
    assert main(["export", graph, "--format", "torch", "--out", str(out)]) == 0
    return out


def _tiny_gpt(tmp_path: Path, **optimizer) -> Path:
    doc = templates.char_gpt(layers=1, heads=2, width=16, block=16, batch=4, steps=20)
    for node in doc["nodes"]:
        if node["type"] == "optimizer":
            node["params"].update(optimizer)
    path = tmp_path / "tiny_gpt.json"
    document.save(doc, path)
    return path


def _rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


# ------------------------------------------------------------------ model.py


@pytest.mark.parametrize("preset", PRESETS)
def test_model_py_forward_equals_wiregrad_in_float64(preset, tmp_path, capsys):
    folder = _export(preset, tmp_path / "proj")
    source = (folder / "model.py").read_text()
    assert "class Model(nn.Module)" in source and "# (B" in source  # shape comments
    doc, _ = presets.load(preset)
    model = extract_model(doc, "float64")
    weights = model_weights(folder / "weights.safetensors")
    assert set(weights) == set(model.parameters) | set(model.state)
    net = _load(folder / "model.py", f"exported_{preset}").Model().double().eval()
    assert set(net.state_dict()) == set(weights)  # Wiregrad's names
    net.load_state_dict({k: torch.from_numpy(v.astype(np.float64)) for k, v in weights.items()})
    inputs = {k: v.astype(np.float64) if v.dtype.kind == "f" else v
              for k, v in example_inputs(model, {"B": 3, "T": 9}, seed=2).items()}
    w64 = {k: v.astype(np.float64) for k, v in weights.items()}
    tape = Executor(model.program, "float64").forward(
        {}, w64, {k: w64[k].copy() for k in model.state}, training=False,
        equations=model.equations, values={p.value: inputs[p.name] for p in model.inputs})
    with torch.no_grad():
        got = net(*[torch.from_numpy(inputs[p.name]) for p in model.inputs])
    assert _rel(got.numpy(), tape.values[model.outputs[0].value]) <= 1e-9


def test_each_layer_instance_is_an_attribute_and_identical_layers_share_a_class(tmp_path,
                                                                              capsys):
    source = (_export("char_gpt", tmp_path / "gpt") / "model.py").read_text()
    assert source.count("class TransformerBlock(nn.Module)") == 1
    for i in range(1, 5):
        assert f"self.block{i} = TransformerBlock()" in source
    assert "self.wte = nn.Parameter(torch.zeros(83, 128))" in source


def test_a_forward_only_graph_exports_model_and_weights_only(tmp_path):
    result = api.export_torch(input_mlp(), tmp_path / "p")
    assert [Path(f).name for f in result["files"]] == ["model.py", "weights.safetensors"]
    assert result["inputs"] == ["points"] and result["outputs"] == ["fc2"]


# ------------------------------------------------------------------ train.py vs Wiregrad


SPIRAL_OPTIMIZERS = {
    "adam": {},
    "sgd": {"algorithm": "sgd", "momentum": 0.9, "nesterov": True, "weight_decay": 0.01,
            "schedule": "step", "step_size": 2, "gamma": 0.5},
    "rmsprop": {"algorithm": "rmsprop", "momentum": 0.5, "schedule": "cosine", "warmup": 2,
                "min_lr": 1e-4, "clip_norm": 0.5, "weight_decay": 0.001},
}


def _spiral_with(tmp_path: Path, optimizer: dict) -> Path:
    doc, _ = presets.load("spiral_mlp")
    for node in doc["nodes"]:
        if node["type"] == "optimizer":
            node["params"].update(optimizer)
    path = tmp_path / "spiral.json"
    document.save(doc, path)
    return path


def _compare_with_trainer(graph: Path, folder: Path, steps: int) -> None:
    train = _load(folder / "train.py", f"train_{folder.name}")
    run = folder / "run"
    train.main(["--steps", str(steps), "--dtype", "float64", "--out", str(run),
                "--log-every", "1000"])
    doc = document.load(graph)
    trainer = Trainer(doc, base_dir=graph.parent, steps=steps, dtype="float64",
                      weights=model_weights(folder / "weights.safetensors"))
    ours = [trainer.train_step()["loss"] for _ in range(steps)]
    theirs = [json.loads(line)["loss"] for line in (run / "metrics.jsonl").open()]
    assert _rel(theirs, ours) <= 1e-9, (theirs, ours)
    after = model_weights(run / "ckpt.safetensors")
    assert set(after) == set(trainer.params) | set(trainer.state)
    for name, value in trainer.params.items():
        assert _rel(after[name], value) <= 1e-9, name


@pytest.mark.parametrize("optimizer", list(SPIRAL_OPTIMIZERS))
def test_spiral_train_py_follows_wiregrad_step_for_step(optimizer, tmp_path, capsys):
    graph = _spiral_with(tmp_path, SPIRAL_OPTIMIZERS[optimizer])
    _compare_with_trainer(graph, _export(str(graph), tmp_path / "proj"), 4)


def test_gpt_train_py_follows_wiregrad_step_for_step(tmp_path, capsys):
    graph = _tiny_gpt(tmp_path, warmup=2)  # AdamW, decay set, cosine, warm-up, clipping
    _compare_with_trainer(graph, _export(str(graph), tmp_path / "proj"), 3)


# ------------------------------------------------------------------ running the project


def test_train_py_runs_as_a_script_and_its_checkpoint_loads_back(tmp_path, capsys):
    graph = _tiny_gpt(tmp_path)
    folder = _export(str(graph), tmp_path / "proj")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "train.py", "--steps", "3", "--out",
                           str(tmp_path / "out")], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    ckpt = tmp_path / "out" / "ckpt.safetensors"
    proc = subprocess.run([sys.executable, "-m", "engine.cli", "evaluate", str(graph),
                           "--weights", str(ckpt), "--batches", "2", "--json"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    assert np.isfinite(json.loads(proc.stdout)["val_loss"])
    capsys.readouterr()
    assert main(["sample", str(graph), "--weights", str(ckpt), "-n", "8", "--prompt", "To",
                 "--no-echo"]) == 0
    assert len(capsys.readouterr().out.strip("\n")) >= 1


def test_torchrun_two_processes_end_at_the_one_process_loss(tmp_path, capsys):
    folder = _export("spiral_mlp", tmp_path / "proj")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
         "train.py", "--steps", "50", "--out", str(tmp_path / "ddp")],
        cwd=folder, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _load(folder / "train.py", "train_single").main(
        ["--steps", "50", "--out", str(tmp_path / "single"), "--log-every", "1000"])
    last = [json.loads((tmp_path / run / "metrics.jsonl").read_text().splitlines()[-1])
            for run in ("ddp", "single")]
    assert last[0]["step"] == last[1]["step"] == 50
    assert abs(last[0]["loss"] - last[1]["loss"]) <= 1e-4 * abs(last[1]["loss"])
    # The checkpoint loads back into Wiregrad with the torch model's outputs.
    ckpt = tmp_path / "ddp" / "ckpt.safetensors"
    doc, _ = presets.load("spiral_mlp")
    inputs = example_inputs(extract_model(doc), {"B": 7})
    ours = api.run_model(doc, str(ckpt), inputs)["fc2"]
    net = _load(folder / "model.py", "ddp_model").Model()
    from safetensors.torch import load_file

    net.load_state_dict(load_file(str(ckpt)))
    with torch.no_grad():
        theirs = net(torch.from_numpy(inputs["spirals.points"])).numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_exported_gpt_learns_in_20_steps(tmp_path, capsys):
    graph = _tiny_gpt(tmp_path, lr=1e-2, warmup=0, schedule="constant")
    folder = _export(str(graph), tmp_path / "proj")
    _load(folder / "train.py", "train_gpt").main(["--steps", "20", "--out",
                                                  str(tmp_path / "run"), "--log-every", "100"])
    losses = [json.loads(line)["loss"] for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert len(losses) == 20
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.1


def test_torchrun_keeps_batch_norm_one_batch_and_saves_one_set_of_statistics(tmp_path):
    """Two processes normalise over the whole global batch (synchronised statistics): the
    loss and the saved running statistics equal one process's (shapes_cnn has batch norm)."""
    folder = _export("shapes_cnn", tmp_path / "proj")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    steps = "6"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
         "train.py", "--steps", steps, "--dtype", "float64", "--out", str(tmp_path / "ddp"),
         "--log-every", "1000"],
        cwd=folder, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _load(folder / "train.py", "train_bn_single").main(
        ["--steps", steps, "--dtype", "float64", "--out", str(tmp_path / "single"),
         "--log-every", "1000"])
    runs = {run: [json.loads(line)["loss"] for line in
                  (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
            for run in ("ddp", "single")}
    np.testing.assert_allclose(runs["ddp"], runs["single"], rtol=1e-9)
    from safetensors.numpy import load_file

    two, one = (load_file(str(tmp_path / run / "ckpt.safetensors")) for run in ("ddp", "single"))
    stats = [k for k in one if "running" in k]
    assert stats
    for key in stats:
        np.testing.assert_allclose(two[key], one[key], rtol=1e-7, atol=1e-9, err_msg=key)
