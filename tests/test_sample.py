"""Sampling: the KV cache equals full recomputation; seeded, greedy, top-k and top-p rules."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.base.errors import WiregradError
from engine.core.compile import compile_document
from engine.core.run import init_weights
from engine.graphs.builders import char_gpt
from engine.sample.sampler import Sampler, draw, next_token_distribution


@pytest.fixture(scope="module")
def tiny_gpt():
    doc = char_gpt(layers=2, heads=2, width=16, block=16, batch=2, steps=10)
    program = compile_document(doc, "float64")
    weights = init_weights(program.parameters, 3, np.float64)
    # A less uniform model than the init: scale the embeddings up.
    weights["wte"] *= 20
    return doc, weights


def test_kv_cache_equals_full_recomputation_past_the_block(tiny_gpt):
    doc, weights = tiny_gpt
    sampler = Sampler(doc, weights, "float64")
    rng = np.random.default_rng(0)
    logits = sampler.prefill(sampler.codec.encode("ROMEO:\n"))
    slides = 0
    for _ in range(150):
        reference = sampler.full_logits(sampler.window)[-1]
        assert np.max(np.abs(reference - logits)) <= 1e-9 * max(1.0, np.abs(reference).max())
        before = len(sampler.window)
        logits = sampler.advance(int(rng.integers(len(sampler.codec.vocab))))
        slides += len(sampler.window) < before
        assert len(sampler.window) <= sampler.block_size
    assert slides >= 5  # the window slid past the block size several times


def test_attention_of_the_last_step_is_available(tiny_gpt):
    doc, weights = tiny_gpt
    sampler = Sampler(doc, weights, "float64")
    sampler.prefill(sampler.codec.encode("To be"))
    assert set(sampler.last_attention) == {"block1.attn", "block2.attn"}
    probs = sampler.last_attention["block1.attn"]
    assert probs.shape == (2, 5)
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0)


def test_seeded_sampling_is_reproducible_and_seeds_differ(tiny_gpt):
    doc, weights = tiny_gpt
    runs = ["".join(Sampler(doc, weights).generate("A", 60, seed=s)) for s in (1, 1, 2)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_temperature_zero_is_argmax(tiny_gpt):
    doc, weights = tiny_gpt
    sampler = Sampler(doc, weights, "float64")
    text = "".join(sampler.generate("KING", 30, temperature=0.0, seed=5))
    check = Sampler(doc, weights, "float64")
    ids = list(check.codec.encode("KING"))
    expected = []
    for _ in range(30):
        window = ids[-check.block_size:]
        token = int(np.argmax(check.full_logits(window)[-1]))
        expected.append(check.codec.vocab[token])
        ids.append(token)
    # The sliding window keeps 3/4 of a block; compare within the first block only.
    limit = check.block_size - len("KING")
    assert text[:limit] == "".join(expected)[:limit]


def test_top_k_and_top_p_never_leave_the_kept_set():
    rng = np.random.default_rng(0)
    for trial in range(300):
        logits = rng.normal(0, 3, size=20)
        k = int(rng.integers(1, 10))
        probs = next_token_distribution(logits, 1.0, top_k=k)
        allowed = set(np.argsort(-logits)[:k])
        assert set(np.flatnonzero(probs)) <= allowed
        p = float(rng.uniform(0.05, 0.95))
        probs = next_token_distribution(logits, 0.7, top_p=p)
        full = next_token_distribution(logits, 0.7)
        order = np.argsort(-full)
        needed = int(np.searchsorted(np.cumsum(full[order]), p)) + 1
        assert set(np.flatnonzero(probs)) == set(order[:needed])
        draws = np.random.default_rng(trial).choice(20, size=50, p=probs)
        assert set(draws) <= set(order[:needed])


def test_temperature_sharpens_the_distribution():
    logits = np.array([2.0, 1.0, 0.5])
    cold = next_token_distribution(logits, 0.5)
    warm = next_token_distribution(logits, 2.0)
    assert cold[0] > warm[0]
    assert np.isclose(cold.sum(), 1.0) and np.isclose(warm.sum(), 1.0)


def test_prompt_outside_the_vocabulary_is_a_clear_error(tiny_gpt):
    doc, weights = tiny_gpt
    with pytest.raises(WiregradError, match="outside the model's vocabulary"):
        list(Sampler(doc, weights).generate("naïve €", 5))


def test_bad_sampling_settings_are_refused():
    with pytest.raises(WiregradError):
        next_token_distribution(np.zeros(3), top_p=0.0)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 100), st.integers(0, 2**32 - 1), st.floats(0.05, 3.0))
def test_draw_picks_what_rng_choice_picks_from_the_same_stream(size, seed, temperature):
    logits = np.random.default_rng(seed).standard_normal(size) * 4
    probs = next_token_distribution(logits, temperature, top_k=size // 2)
    ours, theirs = np.random.default_rng(seed), np.random.default_rng(seed)
    for _ in range(20):
        assert draw(probs, ours) == int(theirs.choice(size, p=probs))


def test_float32_kv_cache_equals_full_recomputation(tiny_gpt):
    """float32 decoding takes the lean paths (GELU kernel, embedding rows, decode kernel)."""
    doc, weights = tiny_gpt
    sampler = Sampler(doc, {k: v.astype(np.float32) for k, v in weights.items()}, "float32")
    logits = sampler.prefill(sampler.codec.encode("ROMEO:\n"))
    for token in np.random.default_rng(1).integers(len(sampler.codec.vocab), size=40):
        reference = sampler.full_logits(sampler.window)[-1]
        assert logits.dtype == np.float32
        np.testing.assert_allclose(logits, reference, rtol=1e-4, atol=1e-4)
        logits = sampler.advance(int(token))


def test_an_id_outside_the_table_names_the_embedding_node(tiny_gpt):
    doc, weights = tiny_gpt
    sampler = Sampler(doc, weights, "float64")
    sampler.prefill(sampler.codec.encode("ROMEO:"))
    with pytest.raises(WiregradError, match="outside the embedding") as info:
        sampler.incremental.run(np.array([10_000]), len(sampler.window))
    assert info.value.node and info.value.node.startswith("tok_emb")


def test_the_editor_decodes_on_one_blas_thread_the_cli_on_the_process_setting(tiny_gpt):
    from threadpoolctl import threadpool_info, threadpool_limits

    from engine import api

    def blas_threads():
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    doc, weights = tiny_gpt
    sampler = Sampler(doc, weights, "float64")
    "".join(sampler.generate("ROMEO:", 2, seed=0))  # loads every library decoding uses
    with threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads()
        in_editor: list[list[int]] = []
        editor = []
        for token in api.sample_tokens(sampler, "ROMEO:", 5, seed=0):
            in_editor.append(blas_threads())
            editor.append(token["char"])
        assert len(in_editor) == 5 and all(t == [1] * len(before) for t in in_editor)
        assert blas_threads() == before
        in_cli: list[list[int]] = []
        cli = "".join(sampler.generate("ROMEO:", 5, seed=0, temperature=0.8,
                                       callback=lambda info: in_cli.append(blas_threads())))
        assert in_cli and all(t == before for t in in_cli)
        assert cli == "".join(editor)
    assert before and max(before) == 2
