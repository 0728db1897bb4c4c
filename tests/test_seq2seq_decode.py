"""Seq2seq decoding: the cached decoder (encoder once, self-attention KV cache, cross-attention
K/V computed once) equals a full forward pass of the document at every step (float64,
≤ 1e-9); beam search with beam 1 is greedy decoding; sampling, the metrics and errors."""

from __future__ import annotations

import numpy as np
import pytest

from engine.base.errors import WiregradError
from engine.core.compile import compile_document
from engine.core.run import Executor, init_weights
from engine.graphs.builders import char_gpt
from engine.graphs.seq2seq_builder import seq2seq_dates
from engine.ops.seq2seq import BOS, PAD
from engine.sample import seq2seq as S
from engine.sample import seq2seq_search as search

TEXTS = ["3rd of March, 1987", "03/03/87", "march 3 1987", "Tuesday, 3rd of March 1987"]


@pytest.fixture(scope="module")
def small():
    """A 2+2-layer, 16-wide model with random weights, in float64."""
    doc = seq2seq_dates(layers=2, width=16, heads=2, n_train=100)
    program = compile_document(doc, "float64")
    rng = np.random.default_rng(3)
    weights = init_weights(program.parameters, 3, np.float64)
    weights = {k: v + rng.uniform(-0.3, 0.3, v.shape) for k, v in weights.items()}
    return doc, program, weights, S.load_model(doc, weights)


def _full_logits(program, weights, source, mask, target_in):
    """Logits of a plain forward pass of the whole document (no cache)."""
    ex = Executor(program, "float64")
    feed = (source, mask, target_in, np.full(target_in.shape, -100, np.int64))
    tape = ex.forward({"pairs": feed}, weights, {}, training=False)
    return tape.values[program.node_outputs["head"][0]]


def test_cached_decoding_equals_full_recomputation_at_every_step(small):
    doc, program, weights, model = small
    ids, mask = S.encode_texts(model, TEXTS)
    source = np.zeros((len(TEXTS), model.src_len), np.int64)
    full_mask = np.zeros(source.shape)
    source[:, :ids.shape[1]], full_mask[:, :ids.shape[1]] = ids, mask
    out, trace = search.greedy(model, ids, mask, max_tokens=model.max_steps)
    assert len(trace) == model.max_steps  # random weights: run every position
    worst = 0.0
    for t, logits in enumerate(trace):
        target_in = np.full((len(TEXTS), model.max_steps), PAD, np.int64)
        target_in[:, 0] = BOS
        target_in[:, 1:t + 1] = out[:, :t]
        full = _full_logits(program, weights, source, full_mask, target_in)[:, t]
        worst = max(worst, float(np.max(np.abs(full - logits))))
    assert worst <= 1e-9, worst


def test_cross_attention_hides_padding_in_decoding(small):
    _, _, _, model = small
    ids, mask = S.encode_texts(model, ["03/03/87", "march 3 1987"])
    assert mask[0, 8:].sum() == 0
    state = S.start(model, S.encode(model, ids, mask))
    S.step(model, state, np.array([BOS, BOS]))
    for probs in state.cross_probs:  # (B, H, S)
        assert np.all(probs[0, :, 8:] == 0.0)
        np.testing.assert_allclose(probs.sum(-1), 1.0)


def test_beam_of_one_is_greedy(small):
    _, _, _, model = small
    for text in TEXTS:
        ids, mask = S.encode_texts(model, [text])
        greedy_ids, trace = search.greedy(model, ids, mask)
        best = search.beam_search(model, text, beam=1)
        assert len(best) == 1
        assert best[0].tokens == [int(t) for t in greedy_ids[0][:len(best[0].tokens)]]
        score = sum(float(search._log_softmax(lg)[0, t]) for lg, t in zip(trace, best[0].tokens))
        assert best[0].score == pytest.approx(score, abs=1e-12)


def test_wider_beams_are_ordered_and_no_worse_than_greedy_here(small):
    _, _, _, model = small
    for text in TEXTS[:2]:
        hyps = search.beam_search(model, text, beam=4)
        scores = [h.score for h in hyps]
        assert scores == sorted(scores, reverse=True) and len(hyps) == 4
        assert len({tuple(h.tokens) for h in hyps}) == 4
        assert hyps[0].score >= search.beam_search(model, text, beam=1)[0].score - 1e-12


def test_sampling_at_zero_temperature_or_top_1_is_greedy(small):
    _, _, _, model = small
    rng = np.random.default_rng(0)
    greedy = search.translate(model, TEXTS[:2])
    assert [search.sample(model, t, rng, temperature=0.0) for t in TEXTS[:2]] == greedy
    assert [search.sample(model, t, rng, top_k=1) for t in TEXTS[:2]] == greedy
    logits = np.array([0.0, 5.0, 4.9, -3.0])
    draws = {search.pick(logits, rng, top_p=0.5) for _ in range(50)}
    assert draws == {1}
    assert {search.pick(logits, rng, top_k=2) for _ in range(200)} == {1, 2}


def test_metrics_count_exact_matches_and_character_errors(small):
    _, _, _, model = small
    outs = search.translate(model, TEXTS[:2])
    pairs = [(TEXTS[0], outs[0]), (TEXTS[1], outs[1] + "x")]
    report = search.evaluate_pairs(model, pairs)
    assert report["exact_match"] == 0.5
    assert report["cer"] == pytest.approx(1 / (len(outs[0]) + len(outs[1]) + 1))
    assert search.edit_distance("kitten", "sitting") == 3


def test_inputs_and_graphs_are_checked(small):
    _, _, _, model = small
    with pytest.raises(WiregradError, match="characters the model does not know: '€'"):
        S.encode_texts(model, ["3 € 1987"])
    with pytest.raises(WiregradError, match="1 to 34 characters"):
        S.encode_texts(model, ["1" * 40])
    with pytest.raises(WiregradError, match="not a sequence-to-sequence model"):
        S.load_model(char_gpt(layers=1, width=16), {})
    with pytest.raises(WiregradError, match="--beam must be at least 1"):
        search.beam_search(model, "03/03/87", beam=0)
