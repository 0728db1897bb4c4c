"""The float32-lane cross-entropy kernels equal the numpy twins (and the float64 kernels) on
word-GPT-sized rows, odd widths, ignored rows, label smoothing and extreme logits."""

from __future__ import annotations

import numpy as np
import pytest

from engine.kernels import loss as L


@pytest.mark.parametrize("n, c", [(9, 5), (7, 83), (12, 2048), (3, 13)])
@pytest.mark.parametrize("smoothing, ignore", [(0.0, -100), (0.2, 2)])
def test_float32_kernels_match_the_twins(n, c, smoothing, ignore):
    rng = np.random.default_rng(c)
    x = (rng.standard_normal((n, c)) * 3).astype(np.float32)
    x[0, c // 2] = 60.0  # a dominant logit beyond the exp floor of the others
    y = rng.integers(0, c, n).astype(np.int64)
    y[1] = 2
    lse = np.empty(n)
    total, kept = L.cross_entropy_fwd32(x, y, ignore, smoothing, lse)
    ref_total, ref_kept, ref_lse = L.cross_entropy_fwd_ref(x.astype(np.float64), y, ignore,
                                                           smoothing)
    assert kept == ref_kept == int((y != ignore).sum())
    np.testing.assert_allclose(lse, ref_lse, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(total, ref_total, rtol=1e-6)
    gx = np.empty_like(x)
    L.cross_entropy_bwd32(x, y, lse, ignore, smoothing, 0.25, gx)
    ref = L.cross_entropy_bwd_ref(x.astype(np.float64), y, ref_lse, ignore, smoothing, 0.25)
    np.testing.assert_allclose(gx, ref, rtol=1e-5, atol=1e-7)
    assert (gx[y == ignore] == 0).all()


def test_float32_kernels_stay_finite_on_extreme_rows():
    x = np.array([[1e3, -1e3, 0.0, 5.0], [7.0] * 4, [-1e3] * 4], np.float32)
    y = np.array([0, 1, 3], np.int64)
    lse = np.empty(3)
    total, _ = L.cross_entropy_fwd32(x, y, -100, 0.0, lse)
    gx = np.empty_like(x)
    L.cross_entropy_bwd32(x, y, lse, -100, 0.0, 1.0, gx)
    assert np.isfinite(total) and np.isfinite(lse).all() and np.isfinite(gx).all()
    np.testing.assert_allclose(lse[1], 7.0 + np.log(4.0), rtol=1e-6)
    np.testing.assert_allclose(gx.sum(-1), 0.0, atol=1e-6)
