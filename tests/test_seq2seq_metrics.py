"""Exact-match sequence accuracy and character error rate as metrics a user sees: in
`wiregrad evaluate` (over the validation pairs, a --pairs cap) and in every evaluation record
of a training run (metrics.jsonl, the summary, the editor's worker); graphs without sequence
pairs are unaffected."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import numpy as np
import pytest

from engine import api, cli
from engine.base.io import model_weights, save_weights
from engine.core import document
from engine.data.datasets import load_dataset
from engine.graphs.seq2seq_builder import seq2seq_dates
from engine.insight.seq2seq_metrics import TRAIN_PAIRS, ExactMatch, eval_hooks
from engine.insight.seq2seq_predictions import chosen
from engine.sample import seq2seq_search as search
from engine.sample.seq2seq import load_model


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _val_pairs(doc: dict, base) -> list[tuple[str, str]]:
    node = next(n for n in doc["nodes"] if n["type"] == "sequence_pairs")
    return load_dataset("sequence_pairs", node["params"], base, node["id"]).info["val_pairs"]


def _brute_force(doc: dict, weights: dict, pairs: list) -> tuple[int, float]:
    """Exact matches and CER, decoding each pair alone (beam 1, not the batched greedy)."""
    model = load_model(doc, weights, np.float64)
    outputs = [search.to_text(model, search.beam_search(model, a, 1)[0].tokens)
               for a, _ in pairs]
    exact = sum(o == b for o, (_, b) in zip(outputs, pairs))
    edits = sum(search.edit_distance(o, b) for o, (_, b) in zip(outputs, pairs))
    return exact, edits / sum(len(b) for _, b in pairs)


def test_evaluate_reports_exact_match_and_cer_of_the_decoded_pairs(capsys, tmp_path):
    doc, path = api.open_graph("seq2seq_dates")
    weights = api.document_weights(doc, path)
    noisy = dict(weights)  # the shipped weights, damaged so that some outputs go wrong
    rng = np.random.default_rng(0)
    noisy["head.weight"] = weights["head.weight"] + rng.normal(
        scale=0.5, size=weights["head.weight"].shape).astype(np.float32)
    save_weights(tmp_path / "noisy.safetensors", noisy)
    code, out, _ = _run(capsys, "evaluate", "seq2seq_dates", "--weights",
                        tmp_path / "noisy.safetensors", "--pairs", 60, "--json")
    assert code == 0
    got = json.loads(out)
    pairs = chosen(_val_pairs(doc, path.parent), 60)
    exact, cer = _brute_force(doc, noisy, pairs)
    assert got["pairs"] == 60 and 0 < exact < 60
    assert got["exact_match"] == exact / 60
    assert got["cer"] == pytest.approx(cer, rel=1e-12) and cer > 0
    assert {"val_loss", "token_accuracy"} <= set(got)
    code, out, _ = _run(capsys, "evaluate", "seq2seq_dates", "--pairs", 40)
    assert code == 0  # the shipped weights: every output right, printed for people
    assert "pairs: 40\n" in out and "exact_match: 1\n" in out and "cer: 0\n" in out


def _one_encoder_two_decoders(tmp_path, steps: int = 4):
    """A seq2seq graph not shaped like the preset: 1 encoder + 2 decoder blocks, width 32."""
    doc = seq2seq_dates(layers=2, width=32, heads=2, batch=8, n_train=200, steps=steps)
    doc["nodes"] = [n for n in doc["nodes"] if n["id"] != "enc2"]
    edges = [e for e in doc["edges"] if "enc2" not in (e["src"]["node"], e["dst"]["node"])]
    edges.append({"src": {"node": "enc1", "port": "y"}, "dst": {"node": "enc_ln", "port": "x"}})
    doc["edges"] = edges
    next(n for n in doc["nodes"] if n["id"] == "pairs")["params"]["n_val"] = 40
    doc["training"].update(eval_every=2, eval_batches=1, checkpoint_every=0)
    path = tmp_path / "s2s_1x2.json"
    document.save(doc, path)
    return document.load(path), path


def test_a_training_run_writes_exact_match_into_its_metrics(capsys, tmp_path):
    doc, path = _one_encoder_two_decoders(tmp_path)
    metrics = tmp_path / "m.jsonl"
    code, out, _ = _run(capsys, "train", path, "--metrics", metrics, "--out", tmp_path / "run",
                        "--quiet", "--json")
    assert code == 0
    evals = [r for r in map(json.loads, metrics.open()) if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [2, 4]
    for r in evals:
        assert 0.0 <= r["exact_match"] <= 1.0 and r["cer"] >= 0.0
    summary = json.loads(out)
    assert summary["eval"]["exact_match"] == evals[-1]["exact_match"]
    weights = model_weights(summary["weights"])  # the final weights = those of the last eval
    pairs = chosen(_val_pairs(doc, path.parent), TRAIN_PAIRS)
    assert len(pairs) == 40  # fewer than TRAIN_PAIRS: all of them
    exact, cer = _brute_force(doc, weights, pairs)
    assert evals[-1]["exact_match"] == exact / len(pairs)
    assert evals[-1]["cer"] == pytest.approx(cer, rel=1e-12)
    assert evals[0]["cer"] != evals[-1]["cer"]  # measured afresh at each evaluation


def test_the_progress_lines_and_summary_show_exact_match(capsys, tmp_path):
    _, path = _one_encoder_two_decoders(tmp_path, steps=2)
    code, out, err = _run(capsys, "train", path, "--out", tmp_path / "run")
    assert code == 0
    assert "step 2: val_loss" in err and "exact_match" in err.split("step 2:")[1]
    assert "last evaluation at step 2:" in out and "exact_match" in out and "cer" in out


def test_graphs_without_sequence_pairs_are_unaffected(capsys, tmp_path):
    doc, _ = api.open_graph("spiral_mlp")
    assert eval_hooks(doc) == []
    metrics = tmp_path / "m.jsonl"
    code, _, _ = _run(capsys, "train", "spiral_mlp", "--steps", 3, "--metrics", metrics,
                      "--out", tmp_path / "run", "--quiet")
    assert code == 0
    evals = [r for r in map(json.loads, metrics.open()) if r["kind"] == "eval"]
    assert evals and not any("exact_match" in r or "cer" in r for r in evals)
    weights = tmp_path / "run" / "last.safetensors"
    code, out, _ = _run(capsys, "evaluate", "spiral_mlp", "--weights", weights, "--json")
    assert code == 0 and not {"exact_match", "cer", "pairs"} & set(json.loads(out))
    code, _, err = _run(capsys, "evaluate", "spiral_mlp", "--weights", weights, "--pairs", 5)
    assert code == 2 and "--pairs" in err and "sequence" in err


def test_a_graph_the_decoder_cannot_read_notes_it_once_and_trains_on(tmp_path):
    doc, path = _one_encoder_two_decoders(tmp_path)
    datasets = {"pairs": load_dataset("sequence_pairs", doc["nodes"][0]["params"],
                                      path.parent, "pairs")}
    trainer = SimpleNamespace(doc=doc, graph=SimpleNamespace(datasets=datasets), params={},
                              state={})  # no weights at all: the decoder refuses
    hook = ExactMatch()
    first = hook(trainer)
    assert set(first) == {"exact_match_note"} and "weights" in first["exact_match_note"]
    assert hook(trainer) == {}


class _Scores:
    """A hook handing out fixed exact-match scores, higher being better."""

    higher_is_better = frozenset({"exact_match"})

    def __init__(self, values: list[float]) -> None:
        self.values = iter(values)

    def __call__(self, trainer) -> dict:
        return {"exact_match": next(self.values)}


def test_early_stopping_on_exact_match_maximises_it():
    from engine.train.trainer import Trainer

    doc = seq2seq_dates(layers=1, width=16, heads=2, batch=8, n_train=50, steps=3)
    doc["nodes"][0]["params"]["n_val"] = 8
    trainer = Trainer(doc, steps=3, early_stop_metric="exact_match",
                      eval_hooks=[_Scores([0.2, 0.5, 0.4]), lambda t: {}])
    marks = [bool(trainer._eval_record().get("best")) for _ in range(3)]
    assert marks == [True, True, False] and trainer.best == 0.5


def _collect(handle, until, timeout=180.0) -> list[dict]:
    out, end = [], time.time() + timeout
    while time.time() < end:
        for m in handle.poll():
            out.append(m)
            if until(m):
                return out
        time.sleep(0.01)
    raise AssertionError(f"timed out; got {[m['kind'] for m in out]}")


def test_the_editors_worker_sends_exact_match_in_its_eval_records(tmp_path):
    doc, path = _one_encoder_two_decoders(tmp_path)
    handle = api.start_worker(threads=1)
    try:
        handle.send("train", doc=doc, base_dir=str(path.parent), run_dir=str(tmp_path / "r"),
                    steps=2)
        got = _collect(handle, lambda m: m["kind"] in ("done", "error"))
        assert got[-1]["kind"] == "done", got[-1]
        evals = [r for m in got if m["kind"] == "records" for r in m["records"]
                 if r["kind"] == "eval"]
        assert evals and 0.0 <= evals[-1]["exact_match"] <= 1.0 and "cer" in evals[-1]
        assert got[-1]["final"]["exact_match"] == evals[-1]["exact_match"]
    finally:
        handle.close()
