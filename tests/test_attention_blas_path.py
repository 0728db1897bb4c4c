"""The float32 attention path (BLAS products + the probability / dscore kernels) equals its
numpy twins and the exact float64 op, masked rows included."""

from __future__ import annotations

import numpy as np
import pytest

from engine.kernels import attention as A
from engine.ops import attention as op_attention
from tests.test_kernels_nn import run_op

RNG = np.random.default_rng(77)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("causal,tq,tk", [(True, 6, 6), (False, 3, 7), (True, 3, 7),
                                          (True, 7, 3)])
def test_probability_and_dscore_kernels_match_twins(dtype, causal, tq, tk):
    s = (RNG.standard_normal((3, tq, tk)) * 4).astype(dtype)
    offset = tk - tq
    probs, lse = s.copy(), np.empty((3, tq))
    (A.attention_probs if dtype == np.float64 else A.attention_probs32)(probs, A.no_mask(3),
                                                                          0.7, causal, offset,
                                                                          lse)
    ref_p, ref_lse = A.attention_probs_ref(s, 0.7, causal, offset)
    rtol = 1e-11 if dtype == np.float64 else 2e-6
    np.testing.assert_allclose(probs, ref_p, rtol=rtol, atol=rtol * 1e-2)
    np.testing.assert_allclose(lse, ref_lse, rtol=1e-11 if dtype == np.float64 else 1e-6)
    g, out = RNG.standard_normal((3, tq, 5)).astype(dtype), RNG.standard_normal(
        (3, tq, 5)).astype(dtype)
    dp = RNG.standard_normal((3, tq, tk)).astype(dtype)
    ref_ds = A.attention_dscores_ref(probs, dp, g, out, 0.7)
    A.attention_dscores(probs[None], dp[None], g[None].swapaxes(1, 2).copy(),
                        out[None].swapaxes(1, 2).copy(), 0.7)  # (1, Tq, H, Dv) g and out
    # dS = scale·P∘(dP − rowsum(g∘out)) cancels: in float32 an element near zero keeps an
    # absolute error of a few ulps of the largest (an AVX2 host: 2.9e-8 on -2.8e-3, max ~1)
    atol = rtol * 1e-2 if dtype == np.float64 else 1e-6 * np.abs(ref_ds).max()
    np.testing.assert_allclose(dp, ref_ds, rtol=rtol, atol=atol)


@pytest.mark.parametrize("kernel", ["attention_probs", "attention_probs32"])
def test_extreme_scores_give_finite_probabilities(kernel):
    s = np.array([[[1e4, -1e4, 0.0, 3e38]]], np.float32)
    lse = np.empty((1, 1))
    getattr(A, kernel)(s, A.no_mask(1), 1.0, False, 0, lse)
    assert np.isfinite(s).all() and np.isclose(s.sum(), 1.0)


@pytest.mark.parametrize("causal,tq,tk", [(True, 8, 8), (False, 4, 9), (True, 9, 4)])
def test_float32_op_matches_the_float64_op(causal, tq, tk):
    q = RNG.standard_normal((2, 3, tq, 8))
    k = RNG.standard_normal((2, 3, tk, 8))
    v = RNG.standard_normal((2, 3, tk, 5))
    g = RNG.standard_normal((2, 3, tq, 5))
    params = {"causal": causal}
    assert op_attention._use_blas(np.zeros((6, tq, 8), np.float32), np.zeros((6, tk, 8),
                                                                           np.float32))
    o64, grads64 = run_op("scaled_dot_product_attention", [q, k, v], params, grad=g)
    o32, grads32 = run_op("scaled_dot_product_attention",
                          [a.astype(np.float32) for a in (q, k, v)], params,
                          grad=g.astype(np.float32))
    assert o32.dtype == np.float32
    np.testing.assert_allclose(o32, o64, rtol=1e-4, atol=1e-5)
    for ours, ref in zip(grads32, grads64):
        np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("causal,tq,tk", [(True, 64, 64), (True, 5, 9), (False, 7, 7)])
def test_unmasked_float32_probs_equal_the_masked_path_and_ignore_hidden_keys(causal, tq, tk):
    """Without a key mask the float32 softmax runs whole-row passes: hidden (future) keys get
    exactly 0 whatever their raw score (inf, NaN), and the result matches the masked loop;
    asked for no log-sum-exp (an lse without columns) it gives the same probabilities (to
    float32 rounding: the two loops are compiled apart)."""
    s = (RNG.standard_normal((3, tq, tk)) * 4).astype(np.float32)
    hidden = ~A.causal_allowed(tq, tk, tk - tq)
    if causal:
        s[:, hidden] = np.nan
        s[0, 0, -1] = np.inf
    fast, lse_fast = s.copy(), np.empty((3, tq))
    A.attention_probs32_unmasked(fast, 0.7, causal, tk - tq, lse_fast)
    bare = s.copy()  # an lse without columns: the probabilities only (what the op keeps)
    A.attention_probs32_unmasked(bare, 0.7, causal, tk - tq, np.empty((3, 0)))
    np.testing.assert_allclose(bare, fast, rtol=2e-6, atol=1e-9)  # its own lanes' rounding
    slow, lse_slow = s.copy(), np.empty((3, tq))
    A.attention_probs32(slow, np.ones((3, tk), np.bool_), 0.7, causal, tk - tq, lse_slow)
    empty, lse_empty = s.copy(), np.empty((3, tq))  # the masked kernel with an empty mask
    A.attention_probs32(empty, A.no_mask(3), 0.7, causal, tk - tq, lse_empty)
    np.testing.assert_array_equal(empty, slow)
    assert np.isfinite(fast).all()
    np.testing.assert_allclose(fast, slow, rtol=2e-6, atol=1e-9)
    np.testing.assert_allclose(lse_fast, lse_slow, rtol=1e-6)
    if causal:
        assert (fast[:, hidden] == 0.0).all()


@pytest.mark.parametrize("causal,tq,tk", [(True, 8, 8), (False, 4, 9)])
def test_float32_op_on_strided_heads_writes_the_merged_heads_layout(causal, tq, tk):
    """q, k, v as a qkv projection's permuted views: the float32 op reads them in place, its
    output (and q, k, v gradients) come laid out as (B, T, H, D), so the heads' merge
    permute is contiguous; values equal the float64 op's on contiguous copies."""
    b, h, d = 2, 3, 8
    kv = RNG.standard_normal((b, tk, 2, h, d))
    qs = RNG.standard_normal((b, tq, h, d))
    g = RNG.standard_normal((b, h, tq, d))
    heads = kv.astype(np.float32).transpose(2, 0, 3, 1, 4)  # (2, B, H, Tk, D) strided
    q32 = qs.astype(np.float32).transpose(0, 2, 1, 3)
    o32, grads32 = run_op("scaled_dot_product_attention", [q32, heads[0], heads[1]],
                          {"causal": causal}, grad=g.astype(np.float32))
    assert not heads[0].flags.c_contiguous and not q32.flags.c_contiguous
    assert o32.dtype == np.float32 and o32.transpose(0, 2, 1, 3).flags.c_contiguous
    for ours in grads32[:3]:
        assert ours.transpose(0, 2, 1, 3).flags.c_contiguous
    x64 = kv.transpose(2, 0, 3, 1, 4)
    o64, grads64 = run_op("scaled_dot_product_attention",
                          [np.ascontiguousarray(qs.transpose(0, 2, 1, 3)),
                           np.ascontiguousarray(x64[0]), np.ascontiguousarray(x64[1])],
                          {"causal": causal}, grad=g)
    np.testing.assert_allclose(o32, o64, rtol=1e-4, atol=1e-5)
    for ours, ref in zip(grads32, grads64):
        np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-5)


def test_float32_op_on_three_axes_stays_contiguous():
    """(BH, T, D) inputs (no head axis) take the same BLAS path with plain layouts."""
    q, k, v, g = (RNG.standard_normal((4, 6, 5)) for _ in range(4))
    o32, grads32 = run_op("scaled_dot_product_attention",
                          [a.astype(np.float32) for a in (q, k, v)], {"causal": True},
                          grad=g.astype(np.float32))
    o64, grads64 = run_op("scaled_dot_product_attention", [q, k, v], {"causal": True}, grad=g)
    assert o32.shape == (4, 6, 5) and o32.flags.c_contiguous
    np.testing.assert_allclose(o32, o64, rtol=1e-4, atol=1e-5)
    for ours, ref in zip(grads32, grads64):
        assert ours.shape == (4, 6, 5)
        np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("t,lowered", [(op_attention.MIN_HALVED_T, False),
                                       (op_attention.MIN_HALVED_T + 1, False),
                                       (7, True), (4, True)])
def test_causal_halves_skip_the_hidden_block_and_match_float64(t, lowered, monkeypatch):
    """Causal self-attention from MIN_HALVED_T on computes its products in two halves (the
    first half of the queries against the first half of the keys only): the same values and
    gradients as the float64 op, odd lengths included; also at small lengths with the
    threshold lowered, so every split point is exercised."""
    if lowered:
        monkeypatch.setattr(op_attention, "MIN_HALVED_T", 2)
    assert op_attention._causal_half(True, 0, t, t) == t // 2 > 0
    assert op_attention._causal_half(False, 0, t, t) == 0
    assert op_attention._causal_half(True, 1, t - 1, t) == 0
    b, h, d = 2, 2, 8
    x = RNG.standard_normal((b, t, 3, h, d))
    g = RNG.standard_normal((b, h, t, d))
    heads32 = x.astype(np.float32).transpose(2, 0, 3, 1, 4)
    o32, grads32 = run_op("scaled_dot_product_attention", list(heads32), {"causal": True},
                          grad=g.astype(np.float32))
    heads64 = [np.ascontiguousarray(a) for a in x.transpose(2, 0, 3, 1, 4)]
    o64, grads64 = run_op("scaled_dot_product_attention", heads64, {"causal": True}, grad=g)
    np.testing.assert_allclose(o32, o64, rtol=1e-4, atol=1e-5)
    for ours, ref in zip(grads32, grads64):
        assert np.isfinite(ours).all()
        np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=2e-5)


def test_causal_products_below_the_threshold_stay_whole():
    """Shorter than MIN_HALVED_T (the char-GPT's 64 included), causal self-attention runs
    each product whole: halving would double its small BLAS calls for no gain."""
    t = op_attention.MIN_HALVED_T - 1
    assert op_attention._causal_half(True, 0, t, t) == 0
    assert op_attention._causal_half(True, 0, 64, 64) == 0
