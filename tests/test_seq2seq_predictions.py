"""Live predictions of a seq2seq graph: a few fixed validation pairs decoded greedily, wrong
ones marked; the worker sends them for a seq2seq run (shipped weights: all right)."""

from __future__ import annotations

import time

import numpy as np

from engine import api
from engine.data.datasets import load_dataset
from engine.insight.seq2seq_predictions import chosen, live_pairs


def _dates():
    doc, path = api.open_graph("seq2seq_dates")
    node = next(n for n in doc["nodes"] if n["type"] == "sequence_pairs")
    ds = load_dataset("sequence_pairs", node.get("params", {}), path.parent, node["id"])
    return doc, path, {node["id"]: ds}


def test_live_pairs_marks_wrong_outputs():
    doc, path, datasets = _dates()
    weights = api.document_weights(doc, path)
    good = live_pairs(doc, weights, datasets, step=7)
    assert good["task"] == "seq2seq" and good["step"] == 7 and len(good["pairs"]) == 8
    assert good["exact_match"] == 1.0 and all(p["correct"] for p in good["pairs"])
    val = datasets[next(iter(datasets))].info["val_pairs"]
    assert [(p["source"], p["target"]) for p in good["pairs"]] == chosen(val)
    broken = dict(weights)
    broken["head.weight"] = np.random.default_rng(0).normal(size=weights["head.weight"].shape)
    bad = live_pairs(doc, broken, datasets, step=8)
    assert bad["exact_match"] < 1.0
    assert [p["correct"] for p in bad["pairs"]] == [p["output"] == p["target"]
                                                    for p in bad["pairs"]]
    assert not live_pairs(doc, weights, {}, step=1)["pairs"]  # no data: a note, no crash


def _collect(handle, until, timeout=120.0) -> list[dict]:
    out, end = [], time.time() + timeout
    while time.time() < end:
        for m in handle.poll():
            out.append(m)
            if until(m):
                return out
        time.sleep(0.01)
    raise AssertionError(f"timed out; got {[m['kind'] for m in out]}")


def test_worker_sends_seq2seq_predictions(tmp_path):
    doc, path = api.open_graph("seq2seq_dates")
    weights = api.document_weights_path(doc, path)
    handle = api.start_worker(threads=1)
    try:
        handle.send("train", doc=doc, base_dir=str(path.parent), run_dir=str(tmp_path / "r"),
                    steps=100, paused=True, weights=str(weights))
        _collect(handle, lambda m: m["kind"] == "state" and m["state"] == "paused")
        handle.send("predictions")
        got = _collect(handle, lambda m: m["kind"] in ("predictions", "error"))[-1]
        assert got["kind"] == "predictions", got
        assert got["task"] == "seq2seq" and len(got["pairs"]) == 8
        assert got["exact_match"] == 1.0
        handle.send("stop")
    finally:
        handle.close()
