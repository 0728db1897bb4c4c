"""The im2col / col2im loops inside the parallel GEMM kernels (engine.kernels.conv_gemm) against
numpy slicing, on each of their loop nests (stride 1 and dilation 1; a larger stride through
the image's stride phases; any dilation), at a column offset, and as each other's adjoint."""

from __future__ import annotations

import numpy as np
import pytest

from engine.kernels import conv_gemm


def _columns_ref(xp, b, kh, kw, s, d, ho, wo):
    rows = []
    for ch in range(xp.shape[1]):
        for i in range(kh):
            for j in range(kw):
                rows.append(xp[b, ch, i * d:i * d + s * (ho - 1) + 1:s,
                               j * d:j * d + s * (wo - 1) + 1:s].reshape(-1))
    return np.stack(rows)


@pytest.mark.parametrize("s,d,kh,kw", [(1, 1, 3, 2), (1, 2, 3, 2), (2, 1, 3, 2), (2, 3, 3, 2),
                                        (3, 1, 3, 2), (2, 1, 7, 7), (2, 1, 1, 1), (3, 1, 4, 5),
                                        (4, 1, 3, 6)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_columns_and_scatter_match_slicing(s, d, kh, kw, dtype):
    # a stride > 1 with dilation 1 reads the image's stride phases: kernels smaller, equal to
    # and larger than the stride, odd image sizes (ragged phases)
    rng = np.random.default_rng(s * 10 + d + kh)
    n, c, hp, wp = 3, 2, 11 + kh, 9 + kw
    ho, wo = (hp - d * (kh - 1) - 1) // s + 1, (wp - d * (kw - 1) - 1) // s + 1
    xp = rng.standard_normal((n, c, hp, wp)).astype(dtype)
    off = 5  # the image's columns start past others' (the block routes)
    cols = np.full((c * kh * kw, off + ho * wo + 4), np.nan, dtype)
    conv_gemm._columns(xp, 1, kh, kw, s, d, ho, wo, cols, off)
    want = _columns_ref(xp, 1, kh, kw, s, d, ho, wo)
    np.testing.assert_array_equal(cols[:, off:off + ho * wo], want)
    assert np.isnan(cols[:, :off]).all() and np.isnan(cols[:, off + ho * wo:]).all()

    g = rng.standard_normal(cols.shape).astype(dtype)
    gxp = np.zeros_like(xp)
    conv_gemm._scatter(g, 1, kh, kw, s, d, ho, wo, gxp, off)
    # col2im is im2col's adjoint: <cols(x), g> = <x, col2im(g)>, and other images stay zero
    lhs = float(np.sum(want.astype(np.float64) * g[:, off:off + ho * wo]))
    rhs = float(np.sum(xp.astype(np.float64) * gxp))
    assert lhs == pytest.approx(rhs, rel=1e-5 if dtype == np.float32 else 1e-12)
    assert not gxp[0].any() and not gxp[2].any()


@pytest.mark.parametrize("cout,k,p", [(16, 147, 576), (64, 100, 1024), (16, 108, 64),
                                      (32, 27, 1024), (16, 150, 36), (64, 288, 256)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_weight_gradient_in_either_orientation_adds_g_times_columns_transposed(cout, k, p,
                                                                               dtype):
    # both sides of the orientation rule (k ≥ 96 and P ≥ 16·Cout: cols · gᵀ, else g · colsᵀ)
    rng = np.random.default_rng(k + p)
    g = rng.standard_normal((cout, p)).astype(dtype)
    cols = rng.standard_normal((k, p)).astype(dtype)
    start = rng.standard_normal((cout, k)).astype(dtype)
    gw = start.copy()
    conv_gemm._weight_gradient(g, cols, gw,
                               np.empty((k, cout), dtype))
    want = start.astype(np.float64) + g.astype(np.float64) @ cols.astype(np.float64).T
    np.testing.assert_allclose(gw, want, rtol=1e-4 if dtype == np.float32 else 1e-12,
                               atol=1e-3 if dtype == np.float32 else 1e-10)
