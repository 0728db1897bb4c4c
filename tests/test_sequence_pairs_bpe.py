"""A ``sequence_pairs`` node with a BPE tokenizer: trained on the training pairs only, ids 0–2
pad / begin / end, the TSV pairs round-trip through it, a tiny model trains and decodes to
text, the document keeps the tokenizer and decodes without its TSV file, and clear errors
name the node and field."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine import api
from engine.base.errors import WiregradError
from engine.base.io import model_weights
from engine.cli import main
from engine.core import document
from engine.data.pair_tokenizer import SPECIAL_LABELS, stored
from engine.data.sequence_pairs import build, tokenizer_for
from engine.graphs.seq2seq_builder import seq2seq_custom
from engine.ops.seq2seq import BOS, EOS, IGNORE, PAD, SPECIALS
from engine.sample import seq2seq as S
from engine.sample import seq2seq_search as search

ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def _pairs() -> list[tuple[str, str]]:
    """Numbers in words → digits (and a few non-ASCII lines: BPE is byte-level)."""
    out = [(f"{TENS[n // 10]} {ONES[n % 10]}", str(n)) for n in range(20, 100)]
    return out + [("zwölf", "12"), ("dreiundzwanzig", "23"), ("éclair", "ÉCLAIR")]


def _tsv(tmp_path):
    path = tmp_path / "numbers.tsv"
    path.write_text("".join(f"{a}\t{b}\n" for a, b in _pairs()), encoding="utf-8")
    return path


def _params(path, **kw) -> dict:
    doc = seq2seq_custom(source="file", path=str(path), tokenizer="bpe", vocab_size=300,
                         max_source_len=16, max_target_len=8, dec_layers=1)
    params = {**doc["nodes"][0]["params"], "val_fraction": 0.2, "seed": 0, **kw}
    from engine.core import registry

    return {**registry.get("sequence_pairs").defaults(), **params}


def test_bpe_pairs_round_trip_and_carry_the_special_tokens(tmp_path):
    params = _params(_tsv(tmp_path))
    ds = build(params, None, "pairs")
    tok = tokenizer_for(params, None, "pairs")
    assert tok.kind == "bpe" and tok.vocab_size <= 300 + SPECIALS
    assert [tok.label(i) for i in (PAD, BOS, EOS)] == list(SPECIAL_LABELS)
    pairs = ds.info["val_pairs"]
    assert ds.info["train"] + ds.info["val"] == len(_pairs())  # none too long
    for split in (ds.train, ds.val):
        for row in range(len(split["source"])):
            src, tout = split["source"][row], split["target_out"][row]
            assert split["target_in"][row][0] == BOS
            assert src[split["source_mask"][row] == 0].tolist() == [PAD] * int(
                (split["source_mask"][row] == 0).sum())
            assert IGNORE in tout.tolist() or EOS in tout.tolist()
            assert np.all(src[split["source_mask"][row] == 1] >= SPECIALS)
    for a, b in _pairs():  # decode(encode(text)) == text, non-ASCII included
        assert tok.decode(tok.encode(a)) == a and tok.decode(tok.encode(b)) == b
    row = 0
    a, b = pairs[row]
    assert tok.decode(ds.val["source"][row]) == a
    assert tok.decode(ds.val["target_out"][row][ds.val["target_out"][row] >= 0]) == b
    assert ds.info["classes"] == 300 + SPECIALS and ds.info["tokenizer"] == "bpe"
    # Pieces, not characters: the tokenizer merged the frequent words.
    assert len(tok.encode("seventy seven")) < len("seventy seven")


def test_bpe_is_trained_on_the_training_pairs_only(tmp_path):
    params = _params(_tsv(tmp_path))
    ds = build(params, None, "pairs")
    val = ds.info["val_pairs"]
    train = [p for p in _pairs() if p not in val]
    assert len(train) == ds.info["train"] and val
    from engine.data.tokenizers import train_bpe

    def text(pairs):
        return "".join(f"{a}\n{b}\n" for a, b in pairs)
    assert ds.info["tokenizer_data"] == train_bpe(text(train), 300)
    assert ds.info["tokenizer_data"] != train_bpe(text(_pairs()), 300)  # val text left out


def test_bpe_lengths_count_tokens_and_refuse_names_the_line(tmp_path):
    path = _tsv(tmp_path)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(" ".join(ONES * 3) + "\t1\n")  # 30 words: more than 16 tokens
    params = _params(path, too_long="refuse")
    with pytest.raises(WiregradError) as err:
        build(params, None, "pairs")
    assert f"line {len(_pairs()) + 1}" in str(err.value) and "tokens" in str(err.value)
    assert err.value.node == "pairs" and err.value.field == "max_source_len"
    ds = build(_params(path), None, "pairs")  # skip (the default) counts it
    assert ds.info["skipped"] == 1


def test_a_bpe_node_without_its_tokenizer_or_file_is_a_clear_error(tmp_path):
    params = _params(tmp_path / "missing.tsv")
    with pytest.raises(WiregradError) as err:
        tokenizer_for(params, None, "pairs")
    assert err.value.node == "pairs" and err.value.field == "path"
    with pytest.raises(WiregradError) as err:
        stored(params, "pairs")
    assert err.value.node == "pairs" and err.value.field == "tokenizer_data"
    trained = tokenizer_for(_params(_tsv(tmp_path)), None, "pairs")
    small = {**params, "tokenizer_data": trained.inner.data, "vocab_size": 256}
    if trained.inner.vocab_size > 256:
        with pytest.raises(WiregradError) as err:
            stored(small, "pairs")
        assert err.value.field == "vocab_size" and err.value.node == "pairs"


def test_a_tiny_bpe_model_trains_and_decodes_without_its_tsv_file(tmp_path, capsys):
    path = _tsv(tmp_path)
    doc = seq2seq_custom(source="file", path=path.name, tokenizer="bpe", vocab_size=300,
                         max_source_len=16, max_target_len=8, dec_layers=1, width=16)
    doc["training"].update(steps=6, eval_every=3, eval_batches=1, checkpoint_every=0)
    graph = tmp_path / "numbers.json"
    document.save(doc, graph)
    code = main(["train", str(graph), "--out", str(tmp_path / "run"), "--quiet", "--json"])
    assert code == 0
    weights = model_weights(json.loads(capsys.readouterr().out)["weights"])
    kept = api.store_tokenizers(document.load(graph), tmp_path)
    node = next(n for n in kept["nodes"] if n["type"] == "sequence_pairs")
    assert json.loads(node["params"]["tokenizer_data"])["model"]["type"] == "BPE"
    shipped = tmp_path / "shipped.json"
    document.save(kept, shipped)
    path.unlink()  # the TSV is gone: the document's tokenizer must do
    model = S.load_model(document.load(shipped), weights)
    assert model.tokenizer is not None and model.tokenizer.kind == "bpe"
    outputs = search.translate(model, ["seventy seven", "zwölf"])
    assert all(isinstance(o, str) for o in outputs)
    ids, mask = S.encode_texts(model, ["seventy seven"])
    greedy, _ = search.greedy(model, ids, mask)
    assert outputs[0] == model.tokenizer.decode(greedy[0])  # detokenized text
    assert search.beam_search(model, "seventy seven", 1)[0].tokens == [
        int(t) for t in greedy[0]][:len(search.beam_search(model, "seventy seven", 1)[0].tokens)]
    trace = api.decode_pairs(document.load(shipped), weights, "seventy seven")
    assert trace["output"] == outputs[0]
    assert "".join(t["token"] for t in trace["tokens"] if t["id"] >= SPECIALS) == outputs[0]
    assert "".join(trace["input_tokens"]).replace("Ġ", " ") == "seventy seven"
    code = main(["sample", str(shipped), "--weights", str(tmp_path / "run" /
                                                        "weights.safetensors"),
                 "--input", "zwölf", "--verbose"])
    out, err = capsys.readouterr()
    assert code == 0 and out.rstrip("\n") == outputs[1] and "decoding:" in err


def test_live_predictions_decode_a_bpe_run_whose_file_path_is_relative(tmp_path):
    from engine.core.compile import compile_document
    from engine.core.run import init_weights
    from engine.data import load_dataset
    from engine.insight.seq2seq_predictions import live_pairs

    _tsv(tmp_path)
    doc = seq2seq_custom(source="file", path="numbers.tsv", tokenizer="bpe", vocab_size=300,
                         max_source_len=16, max_target_len=8, dec_layers=1, width=16)
    node = doc["nodes"][0]
    datasets = {"pairs": load_dataset("sequence_pairs", node["params"], tmp_path, "pairs")}
    weights = init_weights(compile_document(doc, "float64").parameters, 0, np.float64)
    shown = live_pairs(doc, weights, datasets, step=1)  # the TSV is not under the cwd
    assert "note" not in shown, shown.get("note")
    val = dict(datasets["pairs"].info["val_pairs"])
    assert shown["pairs"] and all(val[p["source"]] == p["target"] for p in shown["pairs"])
    assert all(isinstance(p["output"], str) for p in shown["pairs"])


def test_the_tokenizer_view_and_explorer_read_a_bpe_pairs_node(tmp_path):
    from engine.core.compile import compile_document
    from engine.core.run import init_weights

    params = _params(_tsv(tmp_path))
    tok = tokenizer_for(params, None, "pairs")
    doc = seq2seq_custom(source="file", path="gone.tsv", tokenizer="bpe", vocab_size=300,
                         max_source_len=16, max_target_len=8, dec_layers=1, width=16)
    doc["nodes"][0]["params"]["tokenizer_data"] = tok.inner.data
    pieces = api.tokenize(doc, "seventy seven")
    assert "".join(p["token"] for p in pieces) == "seventy seven"
    assert [p["id"] for p in pieces] == tok.encode("seventy seven").tolist()
    assert all(p["id"] >= SPECIALS for p in pieces) and len(pieces) < len("seventy seven")
    weights = init_weights(compile_document(doc, "float32").parameters, 0, np.float32)
    shown = api.embedding_map(doc, weights)
    assert shown["labels"][:3] == list(SPECIAL_LABELS)
    assert shown["labels"][SPECIALS:SPECIALS + 3] == [tok.label(i) for i in range(3, 6)]
