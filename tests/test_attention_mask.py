"""The key padding mask of scaled-dot-product attention: kernels equal their numpy twins
(forward and backward, both float paths), a padded key changes no output, and a query that
sees only padding gets zeros (never NaN)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.kernels import attention as A
from tests.test_kernels_nn import run_op

RNG = np.random.default_rng(17)


def _keep(bh: int, tk: int) -> np.ndarray:
    keep = RNG.random((bh, tk)) < 0.6
    keep[0, :] = False  # one row sees only padding
    keep[1, :] = True
    return keep


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("causal,tq,tk", [(False, 4, 6), (True, 5, 5), (True, 3, 6)])
def test_fused_kernels_with_a_mask_match_the_twin(dtype, causal, tq, tk):
    q, k, v, g = (RNG.standard_normal(s).astype(dtype)
                  for s in ((4, tq, 8), (4, tk, 8), (4, tk, 5), (4, tq, 5)))
    keep, offset = _keep(4, tk), tk - tq
    out, lse = np.empty((4, tq, 5), dtype), np.empty((4, tq))
    A.attention_fwd(q, k, v, keep, 0.3, causal, offset, out, lse)
    ref_out, ref_lse, p = A.attention_fwd_ref(q, k, v, 0.3, causal, offset, keep)
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out, ref_out, **tol)
    np.testing.assert_array_equal(out[0], 0.0)
    np.testing.assert_allclose(lse, ref_lse, rtol=1e-5)
    gq, gk, gv = np.empty_like(q), np.empty_like(k), np.empty_like(v)
    A.attention_bwd(q, k, v, keep, out, lse, g, 0.3, causal, offset, gq, gk, gv)
    for ours, ref in zip((gq, gk, gv), A.attention_bwd_ref(q, k, v, out, p, g, 0.3)):
        np.testing.assert_allclose(ours, ref, **tol)
    assert np.all(gk[~keep] == 0) and np.all(gv[~keep] == 0)  # padding learns nothing


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_probability_kernels_with_a_mask_match_the_twin(dtype):
    s = (RNG.standard_normal((4, 3, 7)) * 3).astype(dtype)
    keep = _keep(4, 7)
    probs, lse = s.copy(), np.empty((4, 3))
    (A.attention_probs if dtype == np.float64 else A.attention_probs32)(probs, keep, 0.7, False,
                                                                          4, lse)
    ref_p, ref_lse = A.attention_probs_ref(s, 0.7, False, 4, keep)
    rtol = 1e-11 if dtype == np.float64 else 2e-6
    np.testing.assert_allclose(probs, ref_p, rtol=rtol, atol=rtol * 1e-2)
    np.testing.assert_allclose(lse, ref_lse, rtol=1e-6)
    assert np.all(probs[~np.broadcast_to(keep[:, None, :], probs.shape)] == 0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("causal", [False, True])
def test_a_padded_key_changes_no_output(dtype, causal):
    q = RNG.standard_normal((2, 3, 5, 4)).astype(dtype)
    k = RNG.standard_normal((2, 3, 5, 4)).astype(dtype)
    v = RNG.standard_normal((2, 3, 5, 4)).astype(dtype)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 0]], np.int64)
    out = run_op("scaled_dot_product_attention", [q, k, v, mask], {"causal": causal})
    k2, v2 = k.copy(), v.copy()
    k2[0, :, 3:] += 5.0
    v2[1, :, 4] -= 7.0
    out2 = run_op("scaled_dot_product_attention", [q, k2, v2, mask], {"causal": causal})
    np.testing.assert_array_equal(out, out2)
    k2[0, :, 2] += 1.0  # a real key does matter
    out3 = run_op("scaled_dot_product_attention", [q, k2, v2, mask], {"causal": causal})
    assert not np.allclose(out3, out)


def test_float32_masked_op_matches_float64():
    q, k, v = (RNG.standard_normal((2, 2, 6, 8)) for _ in range(3))
    g = RNG.standard_normal((2, 2, 6, 8))
    mask = np.array([[1, 1, 1, 1, 0, 0], [0, 0, 0, 0, 0, 0]], np.float64)
    o64, g64 = run_op("scaled_dot_product_attention", [q, k, v, mask], {"causal": False},
                      grad=g)
    o32, g32 = run_op("scaled_dot_product_attention",
                      [a.astype(np.float32) for a in (q, k, v)] + [mask], {"causal": False},
                      grad=g.astype(np.float32))
    assert np.isfinite(o32).all() and np.all(o64[1] == 0)
    np.testing.assert_allclose(o32, o64, rtol=1e-4, atol=1e-5)
    for ours, ref in zip(g32[:3], g64[:3]):
        np.testing.assert_allclose(ours, ref, rtol=1e-3, atol=1e-4)
