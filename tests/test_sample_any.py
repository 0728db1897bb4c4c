"""Sampling any language model: graphs unlike the presets take the right decoding path, decode
like full recomputation, and a graph that cannot be sampled names its node."""

from __future__ import annotations

import numpy as np
import pytest

from engine.base.errors import GraphError, WiregradError
from engine.cli import main
from engine.core import registry
from engine.core.compile import compile_document
from engine.core.run import init_weights
from engine.graphs import bundle
from engine.sample.rules import RULES
from engine.sample.sampler import Sampler
from tests.sample_graphs import biased_gpt, char_lstm, unrolled_elman


def _weights(doc: dict, seed: int = 1) -> dict:
    program = compile_document(doc, "float64")
    return init_weights(program.parameters, seed, np.float64)


def test_a_hand_unrolled_rnn_samples_over_a_left_padded_window():
    doc = unrolled_elman(length=6)
    sampler = Sampler(doc, _weights(doc), "float64")
    assert sampler.decoding.kind == "padded window"
    assert "x3" in sampler.decoding.reason or "index" in sampler.decoding.reason
    logits = sampler.prefill(sampler.codec.encode("ab"))
    padded = [sampler.pad] * 4 + list(sampler.codec.encode("ab"))
    np.testing.assert_allclose(logits, sampler.full_logits(padded)[-1])
    for token in np.random.default_rng(0).integers(len(sampler.codec.vocab), size=12):
        logits = sampler.advance(int(token))
        assert len(sampler.window) <= 6
        ids = [sampler.pad] * (6 - len(sampler.window)) + sampler.window
        np.testing.assert_allclose(logits, sampler.full_logits(ids)[-1])
    assert len(sampler.window) == 6
    text = "".join(sampler.generate("hello", 30, seed=3))
    assert len(text) == 30 and set(text) <= set(sampler.codec.vocab)


def test_the_cli_samples_a_bundled_unrolled_rnn_and_says_how(tmp_path, capsys):
    doc = unrolled_elman(length=6)
    path = bundle.pack(doc, _weights(doc), tmp_path / "rnn.wgz")
    code = main(["sample", str(path), "-n", "25", "--prompt", "abc", "--verbose", "--seed", "1"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.startswith("abc") and len(out.strip("\n")) >= 25
    assert "decoding: padded window (6 positions)" in err


def test_a_gpt_with_biases_and_an_untied_head_decodes_with_the_kv_cache():
    doc = biased_gpt(block=12)
    weights = _weights(doc, 4)
    sampler = Sampler(doc, weights, "float64")
    assert sampler.decoding.kind == "kv-cache" and sampler.decoding.length == 12
    logits = sampler.prefill(sampler.codec.encode("the "))
    rng = np.random.default_rng(2)
    slides = 0
    for _ in range(40):
        reference = sampler.full_logits(sampler.window)[-1]
        assert np.abs(reference - logits).max() <= 1e-9 * max(1.0, np.abs(reference).max())
        before = len(sampler.window)
        logits = sampler.advance(int(rng.integers(len(sampler.codec.vocab))))
        slides += len(sampler.window) < before
    assert slides >= 3


def _named_nodes(error: WiregradError) -> set:
    """The nodes an error names: its own, or (a compile error) its diagnostics'."""
    nodes = {error.node}
    if isinstance(error, GraphError):
        nodes |= {d.node for d in error.diagnostics}
    return nodes - {None}


def test_a_window_that_runs_past_the_unrolled_length_names_the_node():
    doc = unrolled_elman(length=6)
    doc["nodes"][0]["params"]["block_size"] = 4  # the model indexes positions 4 and 5
    with pytest.raises(WiregradError) as info:
        Sampler(doc, None, "float64")
    assert "x4" in _named_nodes(info.value)


def test_logits_not_one_row_per_position_are_refused_naming_the_node():
    doc = unrolled_elman(length=6)
    doc["nodes"][0]["params"]["block_size"] = 8  # 8 tokens in, 6 rows of logits out
    with pytest.raises(WiregradError) as info:
        Sampler(doc, None, "float64")
    assert _named_nodes(info.value) & {"logits", "loss"}


def test_every_inference_rule_names_a_registered_op():
    names = {spec.name for spec in registry.all_ops()}
    assert set(RULES) <= names
    elementwise = {s.name for s in registry.all_ops() if s.family == "elementwise"}
    assert elementwise <= set(RULES)  # a new elementwise op declares how it decodes
    assert RULES["scaled_dot_product_attention"].kind == "kv-cache"
    assert RULES["positions"].kind == "offset"


def test_the_kv_cache_module_has_no_per_op_switch():
    import inspect

    from engine.sample import kvcache

    source = inspect.getsource(kvcache)
    assert "op.name ==" not in source and "name ==" not in source


def test_an_lstm_decodes_with_its_recurrent_state_past_the_block():
    doc = char_lstm(block=10)
    weights = {k: v * 3 for k, v in _weights(doc, 6).items()}  # a less uniform model
    sampler = Sampler(doc, weights, "float64")
    assert sampler.decoding.kind == "recurrent" and sampler.decoding.length is None
    logits = sampler.prefill(sampler.codec.encode("to be"))
    rng = np.random.default_rng(3)
    for _ in range(25):  # 30 tokens: three times the training window, never re-filled
        reference = sampler.full_logits(sampler.window)[-1]
        assert np.abs(reference - logits).max() <= 1e-9 * max(1.0, np.abs(reference).max())
        logits = sampler.advance(int(rng.integers(len(sampler.codec.vocab))))
    assert len(sampler.window) == 30
    text = "".join(Sampler(doc, weights).generate("ab", 40, seed=1))
    assert len(text) == 40


def test_a_recurrent_rule_carries_state_between_calls():
    doc = char_lstm(block=10, layers=1)
    sampler = Sampler(doc, _weights(doc, 2), "float64")
    ids = sampler.codec.encode("abcdef")
    whole = sampler.incremental.run(np.asarray(ids), 0)[-1]
    sampler.incremental.run(np.asarray(ids[:3]), 0)
    sampler.incremental.run(np.asarray(ids[3:5]), 3)
    np.testing.assert_allclose(sampler.incremental.run(np.asarray(ids[5:]), 5)[-1], whole,
                               rtol=1e-12)
    restarted = sampler.incremental.run(np.asarray(ids[5:]), 0)[-1]
    assert np.abs(restarted - whole).max() > 1e-6  # past = 0 starts from the zero state



def test_sample_help_counts_tokens_characters_for_char_models(capsys):
    assert main(["sample", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "-n N tokens to generate (characters for a char model, word pieces for BPE" in text
    assert "characters to generate" not in text
