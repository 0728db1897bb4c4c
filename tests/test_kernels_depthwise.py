"""Depthwise convolution kernels (engine.kernels.depthwise) against their numpy twins, and the
conv2d depthwise route split over two threads against the same op run whole."""

from __future__ import annotations

import numpy as np
import pytest

from engine.core import registry
from engine.kernels import depthwise as k
from tests.split_help import force_split, set_split_limits

# (N, C, Hp, Wp, multiplier, kh, kw, stride, dilation)
SHAPES = [
    (3, 2, 8, 9, 1, 3, 3, 1, 1),
    (2, 3, 10, 7, 2, 3, 2, 1, 2),
    (2, 4, 11, 12, 1, 5, 5, 2, 1),
    (1, 2, 9, 9, 3, 3, 3, 3, 2),
    (4, 5, 6, 6, 1, 1, 1, 1, 1),
    (2, 1, 7, 8, 4, 2, 3, 2, 1),  # one input channel, four outputs from it
]


def _out_size(size: int, k_: int, stride: int, dilation: int) -> int:
    return (size - dilation * (k_ - 1) - 1) // stride + 1


def _arrays(shape, dtype, seed=0):
    n, c, hp, wp, m, kh, kw, s, d = shape
    rng = np.random.default_rng(seed)
    xp = rng.standard_normal((n, c, hp, wp)).astype(dtype)
    w = rng.standard_normal((c * m, kh, kw)).astype(dtype)
    b = rng.standard_normal(c * m).astype(dtype)
    ho, wo = _out_size(hp, kh, s, d), _out_size(wp, kw, s, d)
    g = rng.standard_normal((n, c * m, ho, wo)).astype(dtype)
    return xp, w, b, g, ho, wo


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", SHAPES)
def test_kernels_match_their_twins(shape, dtype):
    n, c, hp, wp, m, kh, kw, s, d = shape
    xp, w, b, g, ho, wo = _arrays(shape, dtype)
    tol = {"rtol": 1e-12, "atol": 1e-12} if dtype == np.float64 else {"rtol": 1e-5,
                                                                         "atol": 1e-5}
    out = np.empty((n, c * m, ho, wo), dtype)
    k.depthwise_forward(xp, w, b, s, d, out, k.phase_buffer(xp.shape, s, dtype), 0, n)
    np.testing.assert_allclose(out, k.depthwise_forward_ref(xp, w, b, s, d, ho, wo), **tol)

    dxp = np.zeros(xp.shape, dtype)
    k.depthwise_input_grad(g, w, s, d, dxp, k.phase_buffer(xp.shape, s, dtype), 0, n)
    np.testing.assert_allclose(dxp, k.depthwise_input_grad_ref(g, w, s, d, xp.shape), **tol)

    dw, db = np.empty((c * m, kh, kw)), np.empty(c * m)
    k.depthwise_weight_grad(g, xp, s, d, dw, db, k.phase_buffer(xp.shape, s, dtype), 0, n)
    ref_dw, ref_db = k.depthwise_weight_grad_ref(g, xp, s, d, kh, kw)
    np.testing.assert_allclose(dw, ref_dw, **tol)
    np.testing.assert_allclose(db, ref_db, **tol)


def test_image_ranges_touch_only_their_images():
    """Two ranges of images give the whole batch's results: the forward and input gradient
    write only their images, the weight gradients of the ranges sum to the whole one."""
    shape = (5, 3, 9, 8, 2, 3, 3, 1, 1)
    n, c, hp, wp, m, kh, kw, s, d = shape
    xp, w, b, g, ho, wo = _arrays(shape, np.float64, seed=3)
    out = np.full((n, c * m, ho, wo), np.nan)
    ph = k.phase_buffer(xp.shape, s, np.float64)
    k.depthwise_forward(xp, w, b, s, d, out, ph, 0, 2)
    assert np.isnan(out[2:]).all() and not np.isnan(out[:2]).any()
    k.depthwise_forward(xp, w, b, s, d, out, ph, 2, 5)
    np.testing.assert_allclose(out, k.depthwise_forward_ref(xp, w, b, s, d, ho, wo),
                               rtol=1e-12)
    dxp = np.zeros(xp.shape)
    k.depthwise_input_grad(g, w, s, d, dxp, ph, 1, 3)
    assert not dxp[[0, 3, 4]].any() and dxp[1:3].any()
    parts = []
    for lo, hi in ((0, 2), (2, 5)):
        dw, db = np.empty((c * m, kh, kw)), np.empty(c * m)
        k.depthwise_weight_grad(g, xp, s, d, dw, db, ph, lo, hi)
        parts.append((dw, db))
    ref_dw, ref_db = k.depthwise_weight_grad_ref(g, xp, s, d, kh, kw)
    np.testing.assert_allclose(parts[0][0] + parts[1][0], ref_dw, rtol=1e-12)
    np.testing.assert_allclose(parts[0][1] + parts[1][1], ref_db, rtol=1e-12)


class _Ctx:
    def __init__(self) -> None:
        self.needs_input_grad = (True, True, True)

    def save(self, *arrays) -> None:
        self.saved = arrays


def _conv(params, x, w, b, g):
    spec, ctx = registry.get("conv2d"), _Ctx()
    y = spec.forward(ctx, params, x, w, b)
    assert ctx.saved[0] == "depthwise"
    return (y, *spec.backward(ctx, params, g))


def test_the_route_split_over_two_threads_equals_it_whole(monkeypatch):
    rng = np.random.default_rng(5)
    params = {"stride": 1, "padding": 1, "dilation": 1, "groups": 6}
    x, w, b = (rng.standard_normal((9, 6, 7, 8)), rng.standard_normal((12, 1, 3, 3)),
               rng.standard_normal(12))
    g = rng.standard_normal((9, 12, 7, 8))
    set_split_limits(monkeypatch, 1e30)
    whole = _conv(params, x, w, b, g)
    calls = force_split(monkeypatch)
    split = _conv(params, x, w, b, g)
    assert calls == [9, 9]  # the forward and the backward each ran as blocks of images
    for a, e in zip(split, whole):
        np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-12)
