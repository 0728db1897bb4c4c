"""The worker's inspection numbers equal the engine's own on the same batch; attention maps
are causal distributions; the worker process trains, pauses, steps and reports NaN by node."""

from __future__ import annotations

import time

import numpy as np

from engine import api
from engine.graphs import builders as templates
from engine.graphs import presets
from engine.insight.inspection import attention_maps, downsample, histogram, tensor_stats
from engine.sample.sampler import Sampler
from engine.train.trainer import Trainer
from engine.worker import _RecordingBatcher, inspect_trainer


def test_edge_stats_equal_a_manual_forward_on_the_same_batch():
    doc, path = presets.load("spiral_mlp")
    trainer = Trainer(doc, base_dir=path.parent, steps=5)
    trainer.batchers = {k: _RecordingBatcher(b) for k, b in trainer.batchers.items()}
    for _ in range(3):
        trainer.train_step()
    out = inspect_trainer(trainer, doc, "fc1")
    batch = {k: b.last for k, b in trainer.batchers.items()}
    tape = trainer.executor.forward(trainer._feeds(batch), trainer.params,
                                    {k: v.copy() for k, v in trainer.state.items()},
                                    training=False)
    fc1 = tape.values[trainer.program.node_outputs["fc1"][0]]
    stats = next(s for s in out["edges"] if (s["src"], s["dst"]) == ("fc1", "act1"))
    assert stats["shape"] == list(fc1.shape)
    assert stats["mean"] == float(fc1.astype(np.float64).mean())
    assert stats["max"] == float(fc1.max()) and stats["min"] == float(fc1.min())
    grad_in = next(s for s in out["edges"] if (s["src"], s["dst"]) == ("act1", "fc2"))
    assert grad_in["grad_norm"] > 0
    weights = out["detail"]["weights"]
    assert set(weights) == {"fc1.weight", "fc1.bias"}
    assert sum(weights["fc1.weight"]["hist"]["counts"]) == 128


def test_histogram_downsample_and_stats_helpers():
    h = histogram(np.arange(10.0), bins=5)
    assert h["counts"] == [2, 2, 2, 2, 2]
    img = downsample(np.ones((300, 70)), 64)
    assert img.shape[0] <= 64 and img.shape[1] <= 64 and np.allclose(img, 1)
    s = tensor_stats(np.array([1.0, 3.0]), np.array([3.0, 4.0]))
    assert (s["mean"], s["std"], s["grad_norm"]) == (2.0, 1.0, 5.0)


def test_attention_maps_rows_are_causal_distributions():
    doc = templates.char_gpt(layers=1, heads=2, width=16, block=16)
    maps = attention_maps(Sampler(doc, None), "ROMEO:")
    att = maps["block1.attn"]
    assert att.shape == (2, 6, 6)
    np.testing.assert_allclose(att.sum(-1), 1.0, rtol=1e-5)
    assert np.all(np.triu(att, 1) == 0)


def _collect(handle, until, timeout=120.0) -> list[dict]:
    out, end = [], time.time() + timeout
    while time.time() < end:
        for m in handle.poll():
            out.append(m)
            if until(m):
                return out
        time.sleep(0.01)
    raise AssertionError(f"timed out; got {[m['kind'] for m in out]}")


def test_worker_pause_step_and_nan_by_node(tmp_path):
    doc, path = presets.load("spiral_mlp")
    handle = api.start_worker(threads=1)
    try:
        handle.send("train", doc=doc, base_dir=str(path.parent), run_dir=str(tmp_path / "r"),
                    steps=10_000, paused=True)
        msgs = _collect(handle, lambda m: m["kind"] == "state" and m["state"] == "paused")
        assert [m for m in msgs if m["kind"] == "started"]
        handle.send("step")
        msgs = _collect(handle, lambda m: m["kind"] == "records")
        train = [r for m in msgs if m["kind"] == "records" for r in m["records"]
                 if r["kind"] == "train"]
        assert [r["step"] for r in train] == [1]
        handle.send("stop")
        done = _collect(handle, lambda m: m["kind"] == "done")[-1]
        assert done["step"] == 1 and done["reason"] == "stopped"
        bad = {**doc, "nodes": [dict(n) for n in doc["nodes"]]}
        bad["nodes"].append({"id": "bad_log", "type": "log", "params": {}})
        bad["edges"] = [dict(e) for e in doc["edges"]]
        for e in bad["edges"]:
            if e["src"] == {"node": "fc1", "port": "y"}:
                e["dst"] = {"node": "bad_log", "port": "x"}
        bad["edges"].append({"src": {"node": "bad_log", "port": "out"},
                             "dst": {"node": "act1", "port": "x"}})
        handle.send("train", doc=bad, base_dir=str(path.parent),
                    run_dir=str(tmp_path / "nan"), steps=20)
        err = _collect(handle, lambda m: m["kind"] == "error")[-1]
        assert err["node"] == "bad_log" and err["error_type"] == "NonFiniteError"
        handle.send("ping")
        assert _collect(handle, lambda m: m["kind"] == "pong")  # still serving
    finally:
        handle.close()
