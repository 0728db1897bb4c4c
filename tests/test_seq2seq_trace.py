"""What the editor shows of a seq2seq decode (engine.api.decode_pairs): tokens with their
probabilities and cross-attention maps whose rows sum to 1, on the shipped dates model."""

from __future__ import annotations

import numpy as np
import pytest

from engine import api
from engine.base.errors import WiregradError
from engine.sample.seq2seq import load_model
from engine.sample.seq2seq_search import translate

TEXT = "3rd of March, 1987"


@pytest.fixture(scope="module")
def dates():
    doc, path = api.open_graph("seq2seq_dates")
    return doc, api.document_weights(doc, path)


def test_greedy_decode_has_tokens_probabilities_and_cross_attention(dates):
    doc, weights = dates
    assert api.is_seq2seq(doc) and not api.is_seq2seq({"nodes": [{"type": "text_corpus"}]})
    out = api.decode_pairs(doc, weights, TEXT)
    assert out["output"] == "1987-03-03"
    assert out["output"] == translate(load_model(doc, weights), [TEXT])[0]
    tokens = out["tokens"]
    assert [t["token"] for t in tokens][-1] == "<end>" and len(tokens) == 11
    for t in tokens:
        assert 0 < t["p"] <= 1
        probs = [p for _, p in t["alternatives"]]
        assert probs == sorted(probs, reverse=True) and t["p"] == pytest.approx(probs[0])
    assert out["input_tokens"] == list(TEXT)
    maps = out["cross_attention"]
    assert list(maps) == ["dec1", "dec2"]
    for m in maps.values():
        assert m.shape == (4, len(tokens), len(TEXT))
        np.testing.assert_allclose(m.sum(axis=-1), 1.0, atol=1e-12)
        assert np.all(m >= 0)


def test_month_digits_attend_to_the_month_name(dates):
    doc, weights = dates
    out = api.decode_pairs(doc, weights, TEXT)
    march = range(TEXT.index("March"), TEXT.index("March") + 5)
    month_row = 6  # "1987-03": the "3" of the month
    tops = [int(np.argmax(m[h, month_row])) for m in out["cross_attention"].values()
            for h in range(m.shape[0])]
    assert sum(t in march for t in tops) >= 4  # most heads look at "March" there


def test_beam_and_sampling_and_bad_input(dates):
    doc, weights = dates
    assert api.decode_pairs(doc, weights, TEXT, beam=3)["output"] == "1987-03-03"
    hot = api.decode_pairs(doc, weights, TEXT, temperature=1.5, seed=1)
    assert all(0 < t["p"] <= 1 for t in hot["tokens"])
    again = api.decode_pairs(doc, weights, TEXT, temperature=1.5, seed=1)
    assert again["output"] == hot["output"]
    with pytest.raises(WiregradError, match="does not know"):
        api.decode_pairs(doc, weights, "3rd of March ☃")
