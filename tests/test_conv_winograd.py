"""The Winograd F(2×2, 3×3) route of conv2d: each Numba transform equals its numpy twin, the
route equals the GEMM route to rounding level in float64, float32 stays within tolerance of
float64, and the route choice follows the measured rule."""

from __future__ import annotations

import numpy as np
import pytest

from engine.core import registry
from engine.kernels import winograd as W
from engine.kernels import winograd_f25 as W5
from engine.ops import conv_winograd
from tests.split_help import force_split, set_split_limits


@pytest.fixture(autouse=True)
def _winograd_not_taken_over(monkeypatch):
    """These tests check the Winograd route itself: its few-channel layers stay on it even
    where the direct kernels would take them over (engine.ops.conv_direct.takes_over_winograd)."""
    from engine.ops import conv_direct

    monkeypatch.setattr(conv_direct, "MAX_CHANNELS_OVER_WINOGRAD", 0)

P1 = {"stride": 1, "padding": 1, "dilation": 1, "groups": 1}


class _Ctx:
    def __init__(self, needs: tuple = ()) -> None:
        self.needs_input_grad = needs

    def save(self, *arrays) -> None:
        self.saved = arrays


def _run(x, w, b, params, winograd: bool, monkeypatch, g=None, needs=()):
    monkeypatch.setattr(conv_winograd, "MIN_CHANNELS", 1 if winograd else 10**9)
    spec, ctx = registry.get("conv2d"), _Ctx(needs)
    y = spec.forward(ctx, params, x, w, b)
    assert (ctx.saved[0] == "winograd") is winograd
    g = np.random.default_rng(5).standard_normal(y.shape).astype(x.dtype) if g is None else g
    return (y, *spec.backward(ctx, params, g))


@pytest.mark.parametrize("th,tw", [(1, 1), (3, 2)])
def test_every_transform_equals_its_numpy_twin(th, tw):
    rng = np.random.default_rng(0)
    n, c = 2, 3
    xp = rng.standard_normal((n, c, 2 * th + 2, 2 * tw + 2))
    v = W.domain(c, n * th * tw, xp.dtype)
    W.transform_in(xp, th, tw, v)
    np.testing.assert_allclose(v, W.transform_in_ref(xp, th, tw), rtol=0, atol=1e-13)
    m = rng.standard_normal((16, c, n * th * tw))
    y = np.empty((n, c, 2 * th, 2 * tw))
    W.transform_out(m, th, tw, y)
    np.testing.assert_allclose(y, W.transform_out_ref(m, n, th, tw), rtol=0, atol=1e-13)
    g = rng.standard_normal((n, c, 2 * th, 2 * tw))
    dm = W.domain(c, n * th * tw, g.dtype)
    W.grad_out(g, th, tw, dm)
    np.testing.assert_allclose(dm, W.grad_out_ref(g, th, tw), rtol=0, atol=1e-13)
    dxp = np.zeros_like(xp)
    W.grad_in(m, th, tw, dxp)
    np.testing.assert_allclose(dxp, W.grad_in_ref(m, n, th, tw), rtol=0, atol=1e-13)


def test_the_backward_transforms_are_the_transposes_of_the_forward_ones():
    rng = np.random.default_rng(1)
    n, c, th, tw = 2, 2, 2, 3
    xp = rng.standard_normal((n, c, 2 * th + 2, 2 * tw + 2))
    dv = rng.standard_normal((16, c, n * th * tw))
    # <transform_in(xp), dv> == <xp, grad_in(dv)>
    lhs = np.vdot(W.transform_in_ref(xp, th, tw), dv)
    np.testing.assert_allclose(lhs, np.vdot(xp, W.grad_in_ref(dv, n, th, tw)), rtol=1e-12)
    m = rng.standard_normal((16, c, n * th * tw))
    g = rng.standard_normal((n, c, 2 * th, 2 * tw))
    lhs = np.vdot(W.transform_out_ref(m, n, th, tw), g)
    np.testing.assert_allclose(lhs, np.vdot(m, W.grad_out_ref(g, th, tw)), rtol=1e-12)


def test_domain_rows_do_not_alias_in_the_l1_cache():
    v = W.domain(32, 2048, np.float32)  # 256 KiB a row: a multiple of 4 KiB unpadded
    assert v.shape == (16, 32, 2048)
    assert v.strides[0] % 4096 == 320
    assert v[3].flags.c_contiguous


@pytest.mark.parametrize("shape,wshape,pad", [
    ((3, 8, 7, 6), (4, 8, 3, 3), 1),  # odd output rows
    ((2, 8, 6, 6), (5, 8, 3, 3), 0),
    ((2, 9, 5, 5), (3, 9, 3, 3), 2),  # padding 2: 7×7 output
    ((1, 8, 3, 3), (2, 8, 3, 3), 0),  # a single output pixel
])
def test_winograd_equals_the_gemm_route_in_float64(shape, wshape, pad, monkeypatch):
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal(shape), rng.standard_normal(wshape)
    b = rng.standard_normal(wshape[0])
    params = {**P1, "padding": pad}
    wino = _run(x, w, b, params, True, monkeypatch)
    gemm = _run(x, w, b, params, False, monkeypatch)
    for got, want in zip(wino, gemm):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("needs", [(), (False, True)])
def test_blocks_of_images_give_the_one_block_numbers(needs, monkeypatch):
    """Five images in blocks of two (the last block partial, its buffers' tails unused) equal
    one block of all five, with and without the image gradient."""
    rng = np.random.default_rng(7)
    x, w = rng.standard_normal((5, 8, 7, 6)), rng.standard_normal((4, 8, 3, 3))
    b = rng.standard_normal(4)
    one = _run(x, w, b, P1, True, monkeypatch, needs=needs)
    per_image = 16 * (8 * 3 + 4) * 4 * 3 * 8  # the backward's arrays per image, float64
    assert conv_winograd.block_images(8 * 3 + 4, 12, 8) == conv_winograd.BLOCK_BYTES // per_image
    monkeypatch.setattr(conv_winograd, "BLOCK_BYTES", 2 * per_image)
    assert conv_winograd.block_images(8 * 3 + 4, 12, 8) == 2
    blocked = _run(x, w, b, P1, True, monkeypatch, needs=needs)
    for got, want in zip(blocked, one):
        if want is None:
            assert got is None
        else:
            np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)


def test_float32_winograd_stays_within_tolerance_of_float64(monkeypatch):
    rng = np.random.default_rng(4)
    x, w = rng.standard_normal((4, 16, 12, 12)), rng.standard_normal((32, 16, 3, 3)) * 0.1
    g = rng.standard_normal((4, 32, 12, 12))
    exact = _run(x, w, None, P1, False, monkeypatch, g=g)
    got = _run(x.astype(np.float32), w.astype(np.float32), None, P1, True, monkeypatch,
               g=g.astype(np.float32))
    for a, e in zip(got[:3], exact[:3]):
        assert a.dtype == np.float32
        scale = np.abs(e).max()
        np.testing.assert_allclose(a, e, rtol=0, atol=2e-6 * scale)


def test_data_inputs_get_no_image_gradient_on_the_winograd_route(monkeypatch):
    rng = np.random.default_rng(6)
    x, w = rng.standard_normal((2, 8, 6, 6)), rng.standard_normal((3, 8, 3, 3))
    full = _run(x, w, None, P1, True, monkeypatch)
    fast = _run(x, w, None, P1, True, monkeypatch, needs=(False, True))
    assert fast[1] is None
    np.testing.assert_allclose(fast[2], full[2], rtol=0, atol=0)


def test_the_route_choice_follows_the_measured_rule():
    assert conv_winograd.applies(P1, (64, 16, 12, 12), (32, 16, 3, 3))
    assert not conv_winograd.applies(P1, (32, 3, 32, 32), (32, 3, 3, 3))  # few channels
    assert not conv_winograd.applies({**P1, "stride": 2}, (64, 32, 6, 6), (32, 32, 3, 3))
    assert not conv_winograd.applies({**P1, "dilation": 2}, (8, 16, 9, 9), (8, 16, 3, 3))
    assert not conv_winograd.applies({**P1, "groups": 2}, (8, 16, 9, 9), (8, 8, 3, 3))
    assert not conv_winograd.applies(P1, (8, 16, 9, 9), (8, 16, 7, 7))


# ---------------------------------------------------------------- F(2×2, 5×5)


@pytest.mark.parametrize("th,tw", [(1, 1), (3, 2)])
def test_every_5x5_transform_equals_its_numpy_twin(th, tw):
    from engine.kernels import winograd_f25 as W5

    rng = np.random.default_rng(10)
    n, c = 2, 3
    xp = rng.standard_normal((n, c, 2 * th + 4, 2 * tw + 4))
    v = W5.domain(c, n * th * tw, xp.dtype)
    W5.transform_in(xp, th, tw, v)
    np.testing.assert_allclose(v, W5.transform_in_ref(xp, th, tw), rtol=0, atol=1e-12)
    m = rng.standard_normal((36, c, n * th * tw))
    y = np.empty((n, c, 2 * th, 2 * tw))
    W5.transform_out(m, th, tw, y)
    np.testing.assert_allclose(y, W5.transform_out_ref(m, n, th, tw), rtol=0, atol=1e-12)
    g = rng.standard_normal((n, c, 2 * th, 2 * tw))
    dm = W5.domain(c, n * th * tw, g.dtype)
    W5.grad_out(g, th, tw, dm)
    np.testing.assert_allclose(dm, W5.grad_out_ref(g, th, tw), rtol=0, atol=1e-12)
    dxp = np.zeros_like(xp)
    W5.grad_in(m, th, tw, dxp)
    np.testing.assert_allclose(dxp, W5.grad_in_ref(m, n, th, tw), rtol=0, atol=1e-12)
    # float32 inputs: the float32 kernels equal the float64 twins to float32 rounding
    v32 = W5.domain(c, n * th * tw, np.float32)
    W5.transform_in(xp.astype(np.float32), th, tw, v32)
    np.testing.assert_allclose(v32, W5.transform_in_ref(xp, th, tw), rtol=0, atol=1e-5)


def test_the_5x5_transforms_compute_a_convolution_and_their_transposes():
    from engine.kernels import winograd_f25 as W5

    rng = np.random.default_rng(11)
    n, c, cout, th, tw = 2, 3, 4, 2, 3
    xp = rng.standard_normal((n, c, 2 * th + 4, 2 * tw + 4))
    w = rng.standard_normal((cout, c, 5, 5))
    y = W5.transform_out_ref(np.matmul(W5.weights(w), W5.transform_in_ref(xp, th, tw)),
                             n, th, tw)
    windows = np.lib.stride_tricks.sliding_window_view(xp, (5, 5), axis=(2, 3))
    np.testing.assert_allclose(y, np.einsum("nchwij,ocij->nohw", windows, w), atol=1e-12)
    dv = rng.standard_normal((36, c, n * th * tw))
    lhs = np.vdot(W5.transform_in_ref(xp, th, tw), dv)
    np.testing.assert_allclose(lhs, np.vdot(xp, W5.grad_in_ref(dv, n, th, tw)), rtol=1e-12)
    m, g = rng.standard_normal((36, c, n * th * tw)), rng.standard_normal((n, c, 2 * th, 2 * tw))
    lhs = np.vdot(W5.transform_out_ref(m, n, th, tw), g)
    np.testing.assert_allclose(lhs, np.vdot(m, W5.grad_out_ref(g, th, tw)), rtol=1e-12)
    du = rng.standard_normal((36, cout, c))
    lhs = np.vdot(W5.weights(w), du)
    np.testing.assert_allclose(lhs, np.vdot(w, W5.weights_grad(du, cout, c)), rtol=1e-12)


def _run5(x, w, b, params, winograd: bool, monkeypatch, g, needs=()):
    monkeypatch.setattr(conv_winograd, "MIN_CHANNELS_5X5", 1 if winograd else 10**9)
    spec, ctx = registry.get("conv2d"), _Ctx(needs)
    y = spec.forward(ctx, params, x, w, b)
    assert (ctx.saved[0] == "winograd") is winograd
    return (y, *spec.backward(ctx, params, g))


@pytest.mark.parametrize("shape,wshape,pad,small_blocks", [
    ((3, 8, 7, 6), (4, 8, 5, 5), 2, False),  # odd output width
    ((2, 9, 9, 9), (5, 9, 5, 5), 0, True),  # odd output, one image a block
    ((5, 16, 8, 8), (3, 16, 5, 5), 1, True),
])
def test_5x5_winograd_equals_the_gemm_route_in_float64(shape, wshape, pad, small_blocks,
                                                       monkeypatch):
    rng = np.random.default_rng(12)
    x, w, b = rng.standard_normal(shape), rng.standard_normal(wshape), rng.standard_normal(
        wshape[0])
    params = {**P1, "padding": pad}
    ho, wo = shape[2] + 2 * pad - 4, shape[3] + 2 * pad - 4
    g = rng.standard_normal((shape[0], wshape[0], ho, wo))
    if small_blocks:
        monkeypatch.setattr(conv_winograd, "BLOCK_BYTES", 1)
    for needs in ((), (False, True, True)):
        wino = _run5(x, w, b, params, True, monkeypatch, g, needs)
        gemm = _run5(x, w, b, params, False, monkeypatch, g, needs)
        for got, want in zip(wino, gemm):
            if want is None:
                assert got is None
                continue
            assert got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-11)


def test_float32_5x5_winograd_stays_within_tolerance_of_float64(monkeypatch):
    """F(2×2, 5×5) loses more than the 3×3 one in float32 (transform entries up to 5, kernel
    fractions down to 1/24): within 1e-5 of the largest value (measured ~3e-6; GEMM ~7e-7)."""
    rng = np.random.default_rng(13)
    x, w = rng.standard_normal((5, 32, 12, 12)), rng.standard_normal((16, 32, 5, 5)) * 0.1
    g = rng.standard_normal((5, 16, 8, 8))
    exact = _run5(x, w, None, P1 | {"padding": 0}, False, monkeypatch, g)
    got = _run5(x.astype(np.float32), w.astype(np.float32), None, P1 | {"padding": 0}, True,
                monkeypatch, g.astype(np.float32))
    for a, e in zip(got[:3], exact[:3]):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, e, rtol=0, atol=1e-5 * np.abs(e).max())


def test_the_5x5_route_choice_follows_the_measured_rule():
    assert conv_winograd.applies(P1, (128, 32, 12, 12), (64, 32, 5, 5))  # cnn_wide28's conv2
    assert conv_winograd.applies(P1, (64, 16, 12, 12), (32, 16, 5, 5))
    assert not conv_winograd.applies(P1, (32, 8, 16, 16), (16, 8, 5, 5))  # ~even at 8
    assert not conv_winograd.applies(P1, (128, 1, 28, 28), (32, 1, 5, 5))  # first layers
    assert not conv_winograd.applies({**P1, "stride": 2}, (8, 32, 12, 12), (8, 32, 5, 5))
    assert not conv_winograd.applies(P1, (8, 32, 12, 12), (8, 32, 5, 3))


@pytest.mark.parametrize("block_bytes", [None, 1])
@pytest.mark.parametrize("native", [True, False], ids=["numba-threads", "python-halves"])
@pytest.mark.parametrize("needs", [(), (False, True, True)], ids=["x-grad", "x-is-data"])
def test_the_5x5_route_split_over_two_threads_gives_the_unsplit_numbers(block_bytes, native,
                                                                         needs, monkeypatch):
    """F(2×2, 5×5) split over two threads (:mod:`engine.ops.two_cores`: Numba's threads or
    two Python halves), in one block per half or one image a block, equals the unsplit route;
    the parts' weight and bias gradients summed."""

    rng = np.random.default_rng(14)
    x, w, b = rng.standard_normal((5, 16, 7, 6)), rng.standard_normal((3, 16, 5, 5)), \
        rng.standard_normal(3)
    g = rng.standard_normal((5, 3, 5, 4))
    params = {**P1, "padding": 1}
    if block_bytes is not None:
        monkeypatch.setattr(conv_winograd, "BLOCK_BYTES", block_bytes)
    set_split_limits(monkeypatch, 1e30)
    whole = _run5(x, w, b, params, True, monkeypatch, g, needs)
    calls = force_split(monkeypatch, native=native)
    split = _run5(x, w, b, params, True, monkeypatch, g, needs)
    assert calls == [5, 5]  # forward and backward each split
    assert (split[1] is None) == (needs == (False, True, True))
    for got, want in zip(split, whole):
        if want is None:  # no image gradient: x is data
            assert got is None
            continue
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("wk", [W, W5], ids=["3x3", "5x5"])
def test_output_transform_reads_the_first_tiles_of_a_padded_product(wk):
    """The forward hands the output transform a C-contiguous product with more tiles per row
    than the block has (``out_domain``'s padding); only the first n·th·tw are read."""
    rng = np.random.default_rng(3)
    n, c, th, tw = 2, 3, 2, 3
    q = n * th * tw
    buf = rng.standard_normal(wk.POSITIONS * c * (q + 64))
    m = conv_winograd.out_domain(buf, wk.POSITIONS, c, q)
    assert m.flags.c_contiguous and m.shape[2] >= q
    y = np.empty((n, c, 2 * th, 2 * tw))
    wk.transform_out(m, th, tw, y)
    want = wk.transform_out_ref(np.ascontiguousarray(m[:, :, :q]), n, th, tw)
    np.testing.assert_allclose(y, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("channels,tiles,itemsize", [(16, 64, 4), (32, 648, 4), (64, 320, 4),
                                                     (48, 25, 8), (3, 7, 4)])
def test_padded_product_rows_spread_over_line_sets(channels, tiles, itemsize):
    """16 position rows of the padded product start in ≥ 16 different 64-byte line sets of a
    4 KiB page (rows exactly 4 KiB apart would share one), at most 63 tiles of padding."""
    padded = conv_winograd.padded_tiles(channels, tiles, itemsize)
    assert tiles <= padded < tiles + 64
    row = channels * padded * itemsize
    if row % 64 == 0:
        assert len({(r * row) % 4096 // 64 for r in range(16)}) == 16
