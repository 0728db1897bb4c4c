"""The fused decoder-block step (engine.kernels.decoder_step) equals its numpy twin, and the
seq2seq decoder that uses it equals the numpy path it replaced (float64, ≤ 1e-12)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.kernels.decoder_step import block_step, block_step_numpy, gelu_exact, pack


def _block(rng, c=8, ratio=4, bias=True):
    names = {"ln1": (c,), "ln2": (c,), "ln3": (c,), "self_attn.q_proj": (c, c),
             "self_attn.kv_proj": (2 * c, c), "self_attn.proj": (c, c),
             "cross_attn.q_proj": (c, c), "cross_attn.proj": (c, c),
             "mlp.fc": (ratio * c, c), "mlp.proj": (c, ratio * c)}
    w = {}
    for name, shape in names.items():
        w[f"{name}.weight"] = rng.standard_normal(shape) * (0.3 if len(shape) > 1 else 1)
        if bias:
            w[f"{name}.bias"] = rng.standard_normal(shape[0]) * 0.1
    return w


@pytest.mark.parametrize("t", [0, 3])
@pytest.mark.parametrize("bias", [True, False])
def test_block_step_equals_its_numpy_twin(t, bias):
    rng = np.random.default_rng(t)
    b, h, c, s = 3, 2, 8, 5
    w = _block(rng, c, bias=bias)
    packed = pack(w.get, c, np.float64)
    x = rng.standard_normal((b, c))
    k, v = rng.standard_normal((2, b, h, t, c // h))
    ck, cv = rng.standard_normal((2, b, h, s, c // h))
    keep = np.ones((b, s))
    keep[1, 3:] = 0  # padding
    keep[2, :] = 0  # a row that sees no source position: zeros, never NaN
    for masked in (True, False):
        ours = block_step(x, *packed, k, v, ck, cv, keep, masked)
        twin = block_step_numpy(x, *packed, k, v, ck, cv, keep, masked)
        for a, ref in zip(ours, twin):
            assert np.isfinite(a).all()
            np.testing.assert_allclose(a, ref, rtol=1e-12, atol=1e-12)
        probs = ours[3]
        if masked:
            assert (probs[1, :, 3:] == 0).all() and (probs[2] == 0).all()
            np.testing.assert_allclose(probs[0].sum(-1), 1.0)
        else:
            np.testing.assert_allclose(probs.sum(-1), 1.0)


def test_gelu_exact_equals_the_ops_float64_formula():
    from engine.ops.elementwise import gelu_exact as reference

    x = np.random.default_rng(0).standard_normal((4, 7)).astype(np.float32) * 3
    np.testing.assert_array_equal(gelu_exact(x), reference(x, "none"))


def test_fused_decoding_equals_the_numpy_path(monkeypatch):
    """Greedy decoding of the dates graph with and without the fused block step."""
    from engine.core.compile import compile_document
    from engine.core.run import init_weights
    from engine.graphs.seq2seq_builder import seq2seq_dates
    from engine.sample import decoder_fused
    from engine.sample import seq2seq as S

    doc = seq2seq_dates(layers=2, width=16, heads=2, batch=8, n_train=50)
    weights = init_weights(compile_document(doc, "float64").parameters, 3, np.float64)
    ids_mask = None
    logits = {}
    for fused in (True, False):
        if not fused:
            monkeypatch.setattr(decoder_fused, "packs", lambda model: None)
        model = S.load_model(doc, weights)
        ids_mask = ids_mask or S.encode_texts(model, ["3rd of March, 1987", "03/03/87"])
        state = S.start(model, S.encode(model, *ids_mask))
        tokens = np.full(2, S.BOS)
        steps = []
        for _ in range(6):
            out = S.step(model, state, tokens)
            steps.append((out, [p.copy() for p in state.cross_probs]))
            tokens = out.argmax(-1)
        logits[fused] = steps
    for (a, pa), (b, pb) in zip(logits[True], logits[False]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
        for x, y in zip(pa, pb):
            np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12)
