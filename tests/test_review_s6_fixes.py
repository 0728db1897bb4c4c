"""Fixes for the session-6 review (seq2seq / tokenizers): each test failed before its fix."""

from __future__ import annotations

import argparse

import pytest

from engine.base.errors import WiregradError
from engine.data.sequence_pairs import read_lines
from engine.data.text import read_text_file
from engine.sample.seq2seq_command import _inputs

BOM = "\ufeff"


def test_a_utf8_bom_is_not_part_of_the_first_pair(tmp_path):
    path = tmp_path / "bom.tsv"
    path.write_text(BOM + "ab\tba\ncd\tdc\n", encoding="utf-8")
    assert read_lines(path, "pairs")[0] == (1, "ab", "ba")


def test_a_utf8_bom_is_not_part_of_a_text_corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(BOM + "hello", encoding="utf-8")
    assert read_text_file(path, "text") == "hello"


def test_a_utf8_bom_is_not_part_of_the_first_input_line(tmp_path):
    path = tmp_path / "in.txt"
    path.write_text(BOM + "one two\nthree\n", encoding="utf-8")
    args = argparse.Namespace(input=None, input_file=str(path))
    assert _inputs(args) == ["one two", "three"]


# ------------------------------------------------ a broken stored tokenizer (fixes 2 and 6)

TEXT = "der Bär schläft. Über Brücken fließt Wasser. " * 40


def _bpe_lm(tokenizer_data: str, vocab_size: int = 300) -> dict:
    from engine.graphs.parts import finish, node

    nodes = [node("text", "text_corpus", (0, 0), source="file", path="corpus.txt",
                  block_size=8, batch_size=2, tokenizer="bpe", vocab_size=vocab_size,
                  tokenizer_data=tokenizer_data),
             node("emb", "Embedding", (200, 0), num_embeddings=vocab_size, embedding_dim=8),
             node("head", "Linear", (400, 0), in_features=8, out_features=vocab_size),
             node("loss", "cross_entropy", (600, 0)),
             node("optimizer", "optimizer", (800, 0), algorithm="adam", lr=3e-3)]
    edges = [("text:tokens", "emb:ids"), ("emb:y", "head:x"), ("head:y", "loss:logits"),
             ("text:targets", "loss:labels"), ("loss:loss", "optimizer:loss")]
    return finish("bpe text", "", nodes, edges, {"steps": 1, "eval_every": 0})


def _trained(vocab_size: int = 300) -> str:
    from engine.data.tokenizers import trained_bpe

    return trained_bpe(TEXT, vocab_size)


BROKEN = ['{"a": 1}', "{not json", "[1, 2]", '{"model": {"type": "BPE", "vocab": 3}}']


@pytest.mark.parametrize("data", BROKEN)
def test_validate_refuses_an_unreadable_stored_tokenizer_naming_node_and_field(data):
    from engine import api

    report = api.validate(_bpe_lm(data))
    assert not report["ok"]
    bad = [d for d in report["diagnostics"] if d["severity"] == "error"]
    assert bad and bad[0]["node"] == "text" and "tokenizer_data" in bad[0]["message"]


def test_validate_refuses_a_stored_tokenizer_larger_than_vocab_size():
    from engine import api

    data = _trained(300)
    assert api.validate(_bpe_lm(data, 300))["ok"]
    report = api.validate(_bpe_lm(data, 256))
    assert not report["ok"]
    message = report["diagnostics"][0]["message"]
    assert "tokenizer_data" in message and "vocab_size" in message


@pytest.mark.parametrize("data", BROKEN)
def test_the_tokenizer_of_an_unreadable_stored_tokenizer_names_node_and_field(data):
    from engine.data.tokenizers import from_params

    with pytest.raises(WiregradError) as info:
        from_params({"tokenizer": "bpe", "tokenizer_data": data}, "text")
    assert (info.value.node, info.value.field) == ("text", "tokenizer_data")


@pytest.mark.parametrize("data", BROKEN)
def test_export_refuses_an_unreadable_stored_tokenizer(data):
    from engine.export.tokenizer_file import exported_tokenizer

    with pytest.raises(WiregradError) as info:
        exported_tokenizer(_bpe_lm(data))
    assert (info.value.node, info.value.field) == ("text", "tokenizer_data")


def test_export_refuses_a_stored_tokenizer_larger_than_vocab_size():
    from engine.export.tokenizer_file import exported_tokenizer

    assert exported_tokenizer(_bpe_lm(_trained(300), 300)).kind == "bpe"
    with pytest.raises(WiregradError) as info:
        exported_tokenizer(_bpe_lm(_trained(300), 256))
    assert (info.value.node, info.value.field) == ("text", "tokenizer_data")
    assert "vocab_size" in info.value.message


def test_export_command_with_a_broken_tokenizer_exits_2_and_writes_nothing(tmp_path, capsys):
    from engine.cli import main
    from engine.core import document

    document.save(_bpe_lm('{"a": 1}'), tmp_path / "g.json")
    out = tmp_path / "out.onnx"
    assert main(["export", str(tmp_path / "g.json"), "--format", "onnx", "--out",
                 str(out)]) == 2
    err = capsys.readouterr().err
    assert "node 'text'" in err and "tokenizer_data" in err
    assert not (tmp_path / "out.tokenizer.json").exists()


# ------------------------------------------------ an empty validation split (fix 3)

def _pairs_file(folder) -> str:
    lines = [f"{'ab'[i % 2]}{'cd'[i % 3 % 2]}\t{'cd'[i % 2]}" for i in range(20)]
    (folder / "p.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(folder / "p.tsv")


@pytest.mark.parametrize("tokenizer", ["char", "bpe"])
def test_pairs_with_no_validation_split_are_refused_before_training(tmp_path, tokenizer):
    from engine.core import registry
    from engine.data.sequence_pairs import build

    params = {**registry.get("sequence_pairs").defaults(), "source": "file",
              "path": _pairs_file(tmp_path), "vocab": "abcd", "val_fraction": 0.0,
              "tokenizer": tokenizer, "vocab_size": 256}
    with pytest.raises(WiregradError) as info:
        build(params, tmp_path, "pairs")
    assert (info.value.node, info.value.field) == ("pairs", "val_fraction")
    assert build({**params, "val_fraction": 0.2}, tmp_path, "pairs").info["val"] > 0


def test_an_error_at_evaluation_keeps_the_trained_weights(tmp_path, monkeypatch, capsys):
    from engine.cli import main
    from engine.train.trainer import Trainer

    def failing(self, max_batches=None):
        raise WiregradError("cannot evaluate", node="data", field="val_fraction")

    monkeypatch.setattr(Trainer, "evaluate", failing)
    out = tmp_path / "run"
    assert main(["train", "spiral_mlp", "--steps", "3", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "node 'data'" in err and "cannot evaluate" in err
    assert (out / "weights.safetensors").is_file() and str(out) in err


# ------------------------------------------------ evaluate on an encoder-only graph (fix 5)

def _encoder_only(folder):
    import numpy as np

    from engine.base.io import save_weights
    from engine.core import document
    from engine.core.compile import compile_document
    from engine.core.run import init_weights
    from engine.graphs.parts import finish, node

    _pairs_file(folder)
    v = 4 + 3
    nodes = [node("pairs", "sequence_pairs", (0, 0), source="file", path="p.tsv", vocab="abcd",
                  max_source_len=4, max_target_len=3, batch_size=4, val_fraction=0.2),
             node("se", "Embedding", (200, 0), num_embeddings=v, embedding_dim=8),
             node("head", "Linear", (400, 0), in_features=8, out_features=v),
             node("loss", "cross_entropy", (600, 0)),
             node("optimizer", "optimizer", (800, 0), algorithm="adam", lr=3e-3)]
    edges = [("pairs:source", "se:ids"), ("se:y", "head:x"), ("head:y", "loss:logits"),
             ("pairs:target_out", "loss:labels"), ("loss:loss", "optimizer:loss")]
    doc = finish("encoder only", "", nodes, edges, {"steps": 1})
    weights = init_weights(compile_document(doc, "float32").parameters, 1, np.float32)
    document.save(doc, folder / "g.json")
    save_weights(folder / "w.safetensors", weights)
    return folder / "g.json", folder / "w.safetensors"


@pytest.mark.parametrize("json_output", [False, True])
def test_evaluate_reports_the_loss_of_a_graph_the_decoder_cannot_read(tmp_path, capsys,
                                                                     json_output):
    import json

    from engine.cli import main

    graph, weights = _encoder_only(tmp_path)
    extra = ["--json"] if json_output else []
    assert main(["evaluate", str(graph), "--weights", str(weights), *extra]) == 0
    out = capsys.readouterr().out
    if json_output:
        result = json.loads(out)
        assert result["val_loss"] > 0 and "target_in" in result["exact_match_note"]
    else:
        assert "val_loss: " in out and "exact_match_note: exact match not measured" in out


def test_decode_pairs_names_the_panels_input_not_a_command_line_option():
    from engine import api

    doc, path = api.open_graph("seq2seq_dates")
    with pytest.raises(WiregradError) as info:
        api.decode_pairs(doc, api.document_weights(doc, path), "")
    assert info.value.field == "Input" and "--input" not in str(info.value)


# ------------------------------------------------ vocab_size larger than BPE learns (fix 10)

def test_a_bpe_smaller_than_vocab_size_is_noted_in_the_data_summary(tmp_path):
    from engine import api

    (tmp_path / "corpus.txt").write_text(TEXT, encoding="utf-8")
    summary = api.dataset_summary(_bpe_lm("", 5000), "text", tmp_path)
    assert "learned 293 pieces of the 5,000" in summary["note"]
    assert "vocab_size is a maximum" in summary["note"]
    assert "note" not in api.dataset_summary(_bpe_lm("", 290), "text", tmp_path)


def test_a_bpe_pairs_node_smaller_than_vocab_size_is_noted(tmp_path):
    from engine.core import registry
    from engine.data.sequence_pairs import build

    params = {**registry.get("sequence_pairs").defaults(), "source": "file",
              "path": _pairs_file(tmp_path), "val_fraction": 0.2, "tokenizer": "bpe",
              "vocab_size": 4000}
    assert "of the 4,000 vocab_size allows" in build(params, tmp_path, "pairs").info["note"]


def test_train_tells_the_user_that_bpe_learned_fewer_pieces(tmp_path, capsys):
    from engine.cli import main
    from engine.core import document

    (tmp_path / "corpus.txt").write_text(TEXT, encoding="utf-8")
    document.save(_bpe_lm("", 5000), tmp_path / "g.json")
    assert main(["train", str(tmp_path / "g.json"), "--out", str(tmp_path / "run"),
                 "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "note: node 'text': the BPE learned 293 pieces of the 5,000" in err
