"""Bits per character for text models: a char model's bpc is its loss / ln 2; a BPE model's
counts the characters its validation tokens cover; `wiregrad evaluate --json` reports it."""

from __future__ import annotations

import json
import math

import pytest

from engine.base.io import save_weights
from engine.core import document
from engine.graphs.builders import char_gpt
from engine.graphs.word_gpt import word_gpt
from engine.train.trainer import Trainer

TEXT = ("Now is the winter of our discontent\nMade glorious summer by this sun of York;\n"
        "And all the clouds that lour'd upon our house\nIn the deep bosom of the ocean buried."
        "\n\n") * 30


def _on_file(doc: dict, tmp_path) -> dict:
    (tmp_path / "play.txt").write_text(TEXT, encoding="utf-8")
    text = next(n for n in doc["nodes"] if n["id"] == "text")
    text["params"].update(source="file", path="play.txt", block_size=8, batch_size=4)
    return doc


def _char_doc(tmp_path) -> dict:
    doc = char_gpt(layers=1, heads=2, width=16, block=8, batch=4, steps=3)
    vocab = "".join(sorted(set(TEXT)))
    nodes = {n["id"]: n for n in doc["nodes"]}
    nodes["text"]["params"]["vocab"] = vocab
    nodes["wte"]["params"]["shape"] = [len(vocab), 16]
    return _on_file(doc, tmp_path)


def test_a_char_models_bpc_is_its_loss_over_ln2(tmp_path):
    result = Trainer(_char_doc(tmp_path), base_dir=tmp_path).evaluate(3)
    assert result["bpc"] == pytest.approx(result["val_loss"] / math.log(2), rel=1e-12)


def test_a_bpe_models_bpc_counts_characters_not_tokens(tmp_path):
    doc = _on_file(word_gpt(layers=1, heads=2, width=16, block=8, batch=4, steps=3,
                            vocab_size=300), tmp_path)
    trainer = Trainer(doc, base_dir=tmp_path)
    result = trainer.evaluate(3)
    info = trainer.graph.datasets["text"].info
    assert info["val"] < info["val_characters"]  # tokens span several characters
    expected = result["val_loss"] * info["val"] / (info["val_characters"] * math.log(2))
    assert result["bpc"] == pytest.approx(expected, rel=1e-12)
    assert result["bpc"] < result["val_loss"] / math.log(2)


def test_a_model_that_is_not_a_text_lm_has_no_bpc(tmp_path):
    from engine.graphs.builders import spiral_mlp

    assert "bpc" not in Trainer(spiral_mlp()).evaluate(2)


def test_evaluate_json_reports_bpc(tmp_path, capsys):
    from engine.cli import main

    doc = _char_doc(tmp_path)
    trainer = Trainer(doc, base_dir=tmp_path)
    save_weights(tmp_path / "w.safetensors", {**trainer.params, **trainer.state})
    document.save(doc, tmp_path / "g.json")
    capsys.readouterr()
    code = main(["evaluate", str(tmp_path / "g.json"), "--weights",
                 str(tmp_path / "w.safetensors"), "--batches", "3", "--json"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0
    assert out["bpc"] == pytest.approx(out["val_loss"] / math.log(2), rel=1e-9)
