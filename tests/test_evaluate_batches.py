"""``wiregrad evaluate`` reproduces the training run's own evaluation by default: text graphs
use the document's ``eval_batches`` (not 50 validation windows); other graphs use the whole
validation split; ``--batches`` still overrides (issue 16 §6)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from engine import cli
from engine.core import registry
from engine.data import load_dataset
from engine.train import cli as train_cli
from tests.helpers import doc_of, e, n

TEXT = "all the world's a stage, and all the men and women merely players.\n" * 20


@pytest.fixture
def calls(monkeypatch):
    """The max_batches each evaluate call asked for (the Trainer is a stand-in)."""
    seen: list = []

    class Trainer:
        def __init__(self, doc, base_dir=None, weights=None):
            self.graph = SimpleNamespace(datasets={
                node["id"]: load_dataset(node["type"], node["params"], base_dir)
                for node in doc["nodes"]
                if registry.get(node["type"]).category == "data" and node["type"] != "input"})

        def evaluate(self, max_batches=None):
            seen.append(max_batches)
            return {"val_loss": 1.0}

    monkeypatch.setattr("engine.train.trainer.Trainer", Trainer)
    monkeypatch.setattr(train_cli, "_doc_weights", lambda *a, **k: {"w": np.zeros(1)})
    return seen


def _save(doc: dict, path) -> str:
    from engine.core import document

    document.save(doc, path)
    return str(path)


def _text_graph(tmp_path) -> str:
    (tmp_path / "c.txt").write_text(TEXT, encoding="utf-8")
    nodes = [n("text", "text_corpus", source="file", path="c.txt", block_size=8,
               vocab="".join(sorted(set(TEXT)))),
             n("logits", "input", shape=["B", 8, len(set(TEXT))]), n("loss", "cross_entropy")]
    doc = doc_of(nodes, [e("logits:out", "loss:logits"), e("text:targets", "loss:labels")])
    return _save(doc, tmp_path / "text.json")


def test_text_graphs_use_the_documents_eval_batches(tmp_path, calls, capsys):
    assert cli.main(["evaluate", _text_graph(tmp_path)]) == 0
    assert calls == [None]  # None: the trainer reads the document's eval_batches


def test_batches_given_on_the_command_line_win(tmp_path, calls, capsys):
    assert cli.main(["evaluate", _text_graph(tmp_path), "--batches", "3"]) == 0
    assert calls == [3]


def test_example_graphs_still_evaluate_the_whole_validation_split(calls, capsys):
    assert cli.main(["evaluate", "spiral_mlp"]) == 0
    assert calls == [0]
