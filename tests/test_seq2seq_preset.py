"""The shipped seq2seq_dates preset: its weights translate the 1,000 held-out calendar dates
(never seen in training, in any format) with ≥ 99 % exact match by greedy decoding, and
`wiregrad sample seq2seq_dates --input …` prints the ISO date."""

from __future__ import annotations

import pytest

from engine import cli
from engine.data.datasets import load_dataset
from engine.graphs import presets
from engine.sample.seq2seq import load_model
from engine.sample.seq2seq_search import beam_search, evaluate_pairs, to_text
from engine.train.cli import _doc_weights


@pytest.fixture(scope="module")
def shipped():
    doc, path = presets.load("seq2seq_dates")
    weights = _doc_weights(doc, path, None, "sample")
    assert weights is not None, "presets/seq2seq_dates.safetensors is missing"
    node = next(n for n in doc["nodes"] if n["type"] == "sequence_pairs")
    dataset = load_dataset("sequence_pairs", node["params"], path.parent, node["id"])
    return doc, load_model(doc, weights), dataset


def test_held_out_dates_are_translated_exactly(shipped):
    _, model, dataset = shipped
    pairs = dataset.info["val_pairs"]
    assert len(pairs) >= 1000
    report = evaluate_pairs(model, pairs)
    assert report["exact_match"] >= 0.99, report["exact_match"]
    assert report["cer"] <= 0.01


def test_beam_search_agrees_on_examples(shipped):
    _, model, _ = shipped
    for text, iso in [("3rd of March, 1987", "1987-03-03"), ("03/03/87", "1987-03-03"),
                      ("Tuesday, 3rd of March 1987", "1987-03-03")]:
        assert to_text(model, beam_search(model, text, 3)[0].tokens) == iso


def test_the_cli_translates_a_date(capsys):
    assert cli.main(["sample", "seq2seq_dates", "--input", "march 3 1987"]) == 0
    assert capsys.readouterr().out == "1987-03-03\n"
