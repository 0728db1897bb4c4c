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
