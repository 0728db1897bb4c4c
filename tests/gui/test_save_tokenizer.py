"""Save stores a BPE graph's trained tokenizer (trained by a run or cached) in the file, so
the saved graph samples without its corpus or TSV; Save never trains one itself."""

from __future__ import annotations

import pytest

from engine import api
from engine.core import document
from engine.graphs.parts import finish, node
from engine.graphs.seq2seq_builder import seq2seq_custom

pytestmark = pytest.mark.gui

WORDS = "one two three four five six seven eight nine zero".split()


def _pairs(folder, vocab_size: int = 260) -> dict:
    lines = [f"{WORDS[i % 10]} {WORDS[i * 7 % 10]}\t{i % 10}{i * 7 % 10}" for i in range(60)]
    (folder / "pairs.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return seq2seq_custom(enc_layers=1, dec_layers=1, width=8, heads=2, source="file",
                          path="pairs.tsv", max_source_len=40, max_target_len=12,
                          tokenizer="bpe", vocab_size=vocab_size)


def _text(folder, vocab_size: int = 280) -> dict:
    (folder / "corpus.txt").write_text("der Bär schläft. Über Brücken fließt Wasser. " * 40,
                                       encoding="utf-8")
    nodes = [node("text", "text_corpus", (0, 0), source="file", path="corpus.txt",
                  block_size=8, batch_size=2, tokenizer="bpe", vocab_size=vocab_size),
             node("emb", "Embedding", (200, 0), num_embeddings=vocab_size, embedding_dim=8),
             node("head", "Linear", (400, 0), in_features=8, out_features=vocab_size),
             node("loss", "cross_entropy", (600, 0))]
    edges = [("text:tokens", "emb:ids"), ("emb:y", "head:x"), ("head:y", "loss:logits"),
             ("text:targets", "loss:labels")]
    return finish("bpe text", "", nodes, edges, {"steps": 1})


def _stored(path) -> str:
    doc = document.load(path)
    data = next(n for n in doc["nodes"] if n["type"] in ("text_corpus", "sequence_pairs"))
    return data["params"].get("tokenizer_data", "")


@pytest.mark.parametrize("build", [_pairs, _text])
def test_save_stores_a_trained_bpe_tokenizer(make_window, dialogs, tmp_path, build):
    document.save(build(tmp_path), tmp_path / "g.json")
    trained = api.store_tokenizers(document.load(tmp_path / "g.json"), tmp_path)  # a run
    win = make_window(str(tmp_path / "g.json"))
    win.controller.move({win.controller.model.doc["nodes"][1]["id"]: (5.0, 5.0)}, 1)
    dialogs.save_path = str(tmp_path / "saved.json")
    assert win.files.save_as() and not dialogs.errors
    data = next(n for n in trained["nodes"] if n["params"].get("tokenizer_data"))
    assert _stored(tmp_path / "saved.json") == data["params"]["tokenizer_data"]


@pytest.mark.parametrize("build", [_pairs, _text])
def test_save_never_trains_a_tokenizer(make_window, dialogs, tmp_path, build):
    document.save(build(tmp_path, 333), tmp_path / "g.json")  # a size never trained
    win = make_window(str(tmp_path / "g.json"))
    dialogs.save_path = str(tmp_path / "saved.json")
    assert win.files.save_as() and not dialogs.errors
    assert _stored(tmp_path / "saved.json") == ""
