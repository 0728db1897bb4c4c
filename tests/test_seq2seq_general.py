"""Decoding encoder–decoder graphs that are not shaped like the preset: different layer counts
on each side, a shared embedding table with a tied head, no final norm, a dropout or a Linear
between the encoder blocks, no target positions, a decoder wired from attention layers by
hand. On each, KV-cache decoding equals a full forward pass of the document at every step
(float64, ≤ 1e-9) and beam search with beam 1 equals greedy; a decoder that cannot run token
by token falls back to full recomputation (and says so); one that cannot decode is refused
naming the node."""

from __future__ import annotations

import numpy as np
import pytest

from engine.base.errors import WiregradError
from engine.core.compile import compile_document
from engine.core.run import Executor, init_weights
from engine.graphs.seq2seq_builder import seq2seq_custom, seq2seq_dates
from engine.ops.seq2seq import BOS, PAD
from engine.sample import seq2seq as S
from engine.sample import seq2seq_search as search
from engine.sample.seq2seq_graph import GraphSeq2Seq

TEXTS = ["3rd of March, 1987", "03/03/87", "march 3 1987"]

GRAPHS = {
    "1 encoder + 3 decoder blocks": dict(enc_layers=1, dec_layers=3),
    "shared table, tied head, no final norm, dropout between": dict(
        shared_embedding=True, tied_head=True, final_norm=False, between="dropout"),
    "hand-wired decoder, Linear between, no target positions, 3 heads of 4": dict(
        enc_layers=2, dec_layers=2, decoder="parts", between="linear",
        target_positions="none", width=12, heads=3),
    "one position table for both sides through positions ops, hand-wired decoder": dict(
        enc_layers=1, dec_layers=2, decoder="parts", target_positions="shared"),
    "GRU decoder attending over the source (no self-attention)": dict(
        enc_layers=1, decoder="gru", final_norm=False),
    "3 encoder + 1 decoder, 4 heads, separate tables": dict(
        enc_layers=3, dec_layers=1, width=16, heads=4, final_norm=False),
}


def _random(doc: dict, seed: int = 3):
    program = compile_document(doc, "float64")
    rng = np.random.default_rng(seed)
    weights = init_weights(program.parameters, seed, np.float64)
    return program, {k: v + rng.uniform(-0.3, 0.3, v.shape) for k, v in weights.items()}


def _worst_step_error(program, weights, model) -> tuple[float, int]:
    """Largest |cached − full forward| over every greedy step of TEXTS, and the steps run."""
    ids, mask = S.encode_texts(model, TEXTS)
    source = np.zeros((len(TEXTS), model.src_len), np.int64)
    full_mask = np.zeros(source.shape)
    source[:, :ids.shape[1]], full_mask[:, :ids.shape[1]] = ids, mask
    out, trace = search.greedy(model, ids, mask, max_tokens=model.max_steps)
    logits = program.node_outputs["head"][0]
    worst = 0.0
    for t, step_logits in enumerate(trace):
        target_in = np.full((len(TEXTS), model.max_steps), PAD, np.int64)
        target_in[:, 0] = BOS
        target_in[:, 1:t + 1] = out[:, :t]
        feed = (source, full_mask, target_in, np.full(target_in.shape, -100, np.int64))
        tape = Executor(program, "float64").forward({"pairs": feed}, weights, {},
                                                    training=False)
        worst = max(worst, float(np.abs(tape.values[logits][:, t] - step_logits).max()))
    return worst, len(trace)


@pytest.mark.parametrize("name", list(GRAPHS))
def test_kv_cache_decoding_equals_full_forward_and_beam_one_is_greedy(name):
    doc = seq2seq_custom(**GRAPHS[name])
    program, weights = _random(doc)
    model = S.load_model(doc, weights)
    assert isinstance(model, GraphSeq2Seq)  # not read as the preset
    assert model.decoding.startswith(("kv-cache", "incremental")), model.decoding
    worst, steps = _worst_step_error(program, weights, model)
    assert steps == model.max_steps  # random weights: every position was decoded
    assert worst <= 1e-9, worst
    for text in TEXTS:
        ids, mask = S.encode_texts(model, [text])
        greedy_ids, _ = search.greedy(model, ids, mask)
        best = search.beam_search(model, text, beam=1)[0]
        assert best.tokens == [int(t) for t in greedy_ids[0][:len(best.tokens)]]


def test_decoder_that_sees_later_positions_falls_back_to_full_recomputation():
    doc = seq2seq_custom(decoder="parts", dec_layers=1, self_causal=False)
    program, weights = _random(doc)
    model = S.load_model(doc, weights)
    assert isinstance(model, GraphSeq2Seq)
    assert model.decoding.startswith("full recomputation"), model.decoding
    assert "d1_self" in model.decoding  # names the node that is not incremental
    worst, _ = _worst_step_error(program, weights, model)
    assert worst <= 1e-9, worst
    assert search.beam_search(model, TEXTS[1], 1)[0].tokens[:3] == [
        int(t) for t in search.greedy(model, *S.encode_texts(model, [TEXTS[1]]))[0][0][:3]]


@pytest.mark.parametrize("name", ["1 encoder + 3 decoder blocks",
                                  "GRU decoder attending over the source (no self-attention)"])
def test_beam_search_reorders_graph_state_rows_consistently(name):
    doc = seq2seq_custom(**GRAPHS[name])
    _, weights = _random(doc, 5)
    model = S.load_model(doc, weights)
    assert ("recurrent cells carry their state" in model.decoding) == ("GRU" in name)
    best = search.beam_search(model, TEXTS[0], beam=3)
    assert len(best) == 3 and best[0].score >= best[1].score >= best[2].score
    # Each hypothesis's score is its own tokens' log-probabilities, re-scored alone.
    for h in best:
        state = S.start(model, S.encode(model, *S.encode_texts(model, [TEXTS[0]])))
        previous, score = BOS, 0.0
        for token in h.tokens:
            score += float(search._log_softmax(S.step(model, state, np.array([previous])))[0,
                                                                                          token])
            previous = token
        assert score == pytest.approx(h.score, abs=1e-9)


def test_preset_shaped_graph_keeps_the_fast_path_and_an_extra_op_does_not():
    doc = seq2seq_dates(layers=1, width=16, heads=2, n_train=100)
    _, weights = _random(doc)
    assert isinstance(S.load_model(doc, weights), S.Seq2SeqModel)
    extended = {**doc, "nodes": [*doc["nodes"], {"id": "scale", "type": "mul", "params": {},
                                                 "ui": {"pos": [0, 0]}},
                                 {"id": "two", "type": "constant",
                                  "params": {"value": 2.0}, "ui": {"pos": [0, 0]}}]}
    edges = [e for e in doc["edges"] if not (e["src"]["node"] == "head"
                                             and e["dst"]["node"] == "loss")]
    edges += [{"src": {"node": "head", "port": "y"}, "dst": {"node": "scale", "port": "a"}},
              {"src": {"node": "two", "port": "out"}, "dst": {"node": "scale", "port": "b"}},
              {"src": {"node": "scale", "port": "out"},
               "dst": {"node": "loss", "port": "logits"}}]
    extended["edges"] = edges
    model = S.load_model(extended, weights)
    assert isinstance(model, GraphSeq2Seq)  # the scale after the head is part of the model
    fast = S.load_model(doc, weights)
    ids, mask = S.encode_texts(fast, TEXTS[:1])
    a = S.step(fast, S.start(fast, S.encode(fast, ids, mask)), np.array([BOS]))
    b = S.step(model, S.start(model, S.encode(model, ids, mask)), np.array([BOS]))
    np.testing.assert_allclose(b, 2.0 * a, atol=1e-9)


def test_a_graph_whose_logits_ignore_the_target_is_refused_naming_the_node():
    doc = seq2seq_custom(dec_layers=1, final_norm=False)
    doc["nodes"].append({"id": "first", "type": "slice", "params": {"axis": 1, "stop": 11},
                         "ui": {"pos": [0, 0]}})  # the memory's first T positions
    doc["edges"] = [e for e in doc["edges"] if e["dst"]["node"] != "head"]
    doc["edges"] += [{"src": {"node": "enc1", "port": "y"}, "dst": {"node": "first", "port": "x"}},
                     {"src": {"node": "first", "port": "out"},
                      "dst": {"node": "head", "port": "x"}}]
    _, weights = _random(doc)
    with pytest.raises(WiregradError) as err:
        S.load_model(doc, weights)
    assert err.value.node == "head"
    assert "target_in" in str(err.value)


def test_the_graph_reader_agrees_with_the_preset_fast_path_on_the_preset():
    doc = seq2seq_dates(layers=2, width=16, heads=2, n_train=100)
    _, weights = _random(doc, 7)
    fast = S.load_model(doc, weights)
    assert isinstance(fast, S.Seq2SeqModel)
    graph = GraphSeq2Seq(doc, weights, np.float64, fast.tokenizer)
    assert graph.decoding.startswith("kv-cache")
    ids, mask = S.encode_texts(fast, TEXTS)
    a_ids, a_trace = search.greedy(fast, ids, mask)
    b_ids, b_trace = search.greedy(graph, ids, mask)
    np.testing.assert_array_equal(a_ids, b_ids)
    assert max(float(np.abs(x - y).max()) for x, y in zip(a_trace, b_trace)) <= 1e-9
    assert [site.prefix for site in graph.decoder] == ["dec1", "dec2"]  # named like the preset


def test_verbose_sample_says_how_a_graph_is_decoded(tmp_path, capsys):
    from engine.base.io import save_weights
    from engine.cli import main
    from engine.core import document

    doc = seq2seq_custom(decoder="parts", dec_layers=1, self_causal=False)
    _, weights = _random(doc)
    document.save(doc, tmp_path / "odd.json")
    save_weights(tmp_path / "odd.safetensors", {k: v.astype(np.float32)
                                                for k, v in weights.items()})
    code = main(["sample", str(tmp_path / "odd.json"), "--weights",
                 str(tmp_path / "odd.safetensors"), "--input", "03/03/87", "--verbose"])
    out, err = capsys.readouterr()
    assert code == 0 and out.strip()
    assert "decoding: full recomputation per step" in err and "d1_self" in err
