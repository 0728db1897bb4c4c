"""The explorer's engine side (issue 18 §3): the labelled PCA map of a token table, neighbours
by token id, a seq2seq graph's source / target tables and its characters as a tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine import api
from engine.base.errors import WiregradError
from engine.insight.inspection import pca_2d

PRESETS = Path(__file__).resolve().parents[1] / "presets"


def _preset(name: str) -> tuple[dict, dict]:
    doc = json.loads((PRESETS / f"{name}.json").read_text())
    return doc, api.document_weights(doc, PRESETS / f"{name}.json")


def _brute(table: np.ndarray, row: int, k: int) -> list[int]:
    t = table.astype(np.float64)
    sims = t @ t[row] / (np.linalg.norm(t, axis=1) * np.linalg.norm(t[row]))
    sims[row] = -np.inf
    return [int(i) for i in np.argsort(-sims, kind="stable")[:k]]


def test_char_gpt_map_is_the_pca_of_its_table_labelled_by_character():
    doc, weights = _preset("char_gpt")
    found = api.embedding_map(doc, weights)
    assert found["weight"] == "wte" and found["tables"] == ["tokens"]
    vocab = next(n for n in doc["nodes"] if n["type"] == "text_corpus")["params"]["vocab"]
    assert found["labels"] == list(vocab) and found["vocab_size"] == len(vocab)
    svd = pca_2d(weights["wte"][: len(vocab)])  # the debugger's PCA, up to each axis's sign
    xy = np.asarray(found["xy"])
    assert np.allclose(xy * np.sign((xy * svd).sum(axis=0)), svd, atol=1e-4)
    assert np.array_equal(api.embedding_map(doc, weights)["xy"], xy)  # deterministic


def test_neighbours_by_token_id_equal_those_by_word_and_brute_force():
    doc, weights = _preset("word_gpt")
    by_word = api.embedding_neighbours(doc, weights, "king", 6)
    token = by_word["query"]["token"]
    by_id = api.embedding_neighbours(doc, weights, token, 6)
    assert by_id["neighbours"] == by_word["neighbours"]
    assert by_id["query"]["label"] == " king" == by_id["query"]["text"]
    assert [n["token"] for n in by_id["neighbours"]] == _brute(weights["wte"][:2048], token, 6)
    with pytest.raises(WiregradError, match="outside the table"):
        api.embedding_neighbours(doc, weights, 5000, 3)


def test_seq2seq_has_a_source_and_a_target_table_named_by_its_characters():
    doc, weights = _preset("seq2seq_dates")
    source = api.embedding_map(doc, weights)
    target = api.embedding_map(doc, weights, "target")
    assert source["tables"] == ["source", "target"] and source["table"] == "source"
    assert (source["weight"], target["weight"]) == ("src_emb.weight", "tgt_emb.weight")
    assert source["labels"][:4] == ["<pad>", "<bos>", "<eos>", " "]
    assert len(source["labels"]) == weights["src_emb.weight"].shape[0] == 71
    report = api.embedding_neighbours(doc, weights, "7", 5, "target")
    seven = source["labels"].index("7")
    assert report["query"]["token"] == seven
    assert [n["token"] for n in report["neighbours"]] == _brute(weights["tgt_emb.weight"],
                                                                seven, 5)
    with pytest.raises(WiregradError, match="no token table 'middle'"):
        api.embedding_map(doc, weights, "middle")
    assert [t["id"] for t in api.tokenize(doc, "Mar 3")] == [source["labels"].index(c)
                                                             for c in "Mar 3"]
    with pytest.raises(WiregradError, match="outside the vocabulary"):
        api.tokenize(doc, "é")


def test_a_graph_without_tokens_is_a_clear_error():
    doc = json.loads((PRESETS / "spiral_mlp.json").read_text())
    with pytest.raises(WiregradError, match="no text data node"):
        api.embedding_map(doc, {})
