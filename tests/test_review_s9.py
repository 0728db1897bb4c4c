"""Review (session 9): the CNN ops' parallel Numba paths (engine.kernels.parallel,
engine.ops.two_cores) against the same ops with every split disabled, on inputs unlike the
presets and the existing tests: batches of 2 and 3 (and more parts asked for than rows), odd
tile counts, Winograd without padding, strided / dilated GEMM routes, no bias, x as data,
non-contiguous inputs, NaN / Inf, float32 and float64, and a CNN trained a few steps."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from engine.core import registry
from engine.kernels import parallel
from engine.ops import conv_winograd, two_cores
from tests.split_help import force_split, set_split_limits


class _Ctx:
    training = True

    def __init__(self, needs: tuple = (), state: dict | None = None) -> None:
        self.needs_input_grad = needs
        self.state = state or {}

    def save(self, *arrays) -> None:
        self.saved = arrays


def _run(name: str, params: dict, inputs: list, needs: tuple = (), state: dict | None = None,
         g=None) -> list:
    spec = registry.get(name)
    ctx = _Ctx(needs, {k: v.copy() for k, v in (state or {}).items()})
    y = spec.forward(ctx, params, *inputs)
    y = np.array(y, copy=True)  # (a later backward may write into a saved array)
    if g is None:
        g = np.random.default_rng(7).standard_normal(y.shape).astype(y.dtype)
    grads = spec.backward(ctx, params, g)
    return [y, *[None if a is None else np.array(a) for a in grads], *ctx.state.values()]


def _launches(monkeypatch) -> list:
    """Counts every parallel Numba launch (engine.kernels.parallel.launch)."""
    seen: list = []
    real = parallel.launch

    @contextlib.contextmanager
    def launch():
        seen.append(1)
        with real():
            yield

    monkeypatch.setattr(parallel, "launch", launch)
    return seen


def _both(name, params, inputs, monkeypatch, needs=(), state=None, g=None, threads=2):
    """(one-thread results, parallel results): the op with every split off, then with every
    split forced onto Numba's threads (BLAS said to have *threads* threads)."""
    monkeypatch.setattr(parallel, "BACKGROUND", False)
    with monkeypatch.context() as m:
        set_split_limits(m, 1e30)
        whole = _run(name, params, inputs, needs, state, g)
    force_split(monkeypatch)
    monkeypatch.setattr(two_cores, "blas_threads", lambda: threads)
    seen = _launches(monkeypatch)
    split = _run(name, params, inputs, needs, state, g)
    assert seen, "the parallel path was not taken"
    return whole, split


def _same(split, whole, dtype, exact: bool = False) -> None:
    assert len(split) == len(whole)
    rtol = 1e-12 if np.dtype(dtype) == np.float64 else 1e-5
    for got, want in zip(split, whole, strict=True):
        if want is None:
            assert got is None
            continue
        assert got.shape == want.shape and got.dtype == want.dtype
        # NaN and ±inf in the same places
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want))
        np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want))
        if exact:
            np.testing.assert_array_equal(got, want)
        else:
            scale = np.nanmax(np.abs(np.where(np.isfinite(want), want, 0)), initial=1.0)
            fin = np.isfinite(want)
            np.testing.assert_allclose(got[fin], want[fin], rtol=rtol, atol=rtol * scale)


def _conv_params(stride=1, padding=0, dilation=1, groups=1):
    return {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}


def _rng(seed=0):
    return np.random.default_rng(seed)


# ------------------------------------------------------------------ conv2d, GEMM routes


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n,threads", [(2, 2), (3, 2), (3, 8)])
@pytest.mark.parametrize("bias,needs", [(True, ()), (False, (False, True, False))])
def test_per_image_conv_strided_dilated(dtype, n, threads, bias, needs, monkeypatch):
    """The per-image route (k = 18 ≤ 160), stride 2 and dilation 2, batches of 2–3 with more
    parts asked for than cores (8 → min(8, n) parts), with / without bias, x as data."""
    r = _rng(1)
    x = r.standard_normal((n, 2, 9, 11)).astype(dtype)
    w = r.standard_normal((5, 2, 3, 3)).astype(dtype)
    b = r.standard_normal(5).astype(dtype) if bias else None
    params = _conv_params(stride=2, padding=1, dilation=2)
    whole, split = _both("conv2d", params, [x, w, b], monkeypatch, needs, threads=threads)
    assert whole[0].shape == (n, 5, 4, 5)
    _same(split, whole, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n", [2, 3])
def test_whole_batch_conv_dilated(dtype, n, monkeypatch):
    """The whole-batch route (k = 20·9 = 180 > 160) with dilation 2, padding 2, no bias."""
    r = _rng(2)
    x = r.standard_normal((n, 20, 9, 8)).astype(dtype)
    w = r.standard_normal((6, 20, 3, 3)).astype(dtype)
    params = _conv_params(padding=2, dilation=2)
    whole, split = _both("conv2d", params, [x, w, None], monkeypatch)
    assert whole[0].shape == (n, 6, 9, 8) and whole[3] is None
    _same(split, whole, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_whole_batch_conv_tiny_output_stride2_x_is_data(dtype, monkeypatch):
    """Whole-batch route by a tiny output (Ho·Wo < 16), stride 2, x is data, bias."""
    r = _rng(3)
    x = r.standard_normal((3, 4, 7, 6)).astype(dtype)
    w = r.standard_normal((7, 4, 3, 3)).astype(dtype)
    b = r.standard_normal(7).astype(dtype)
    params = _conv_params(stride=2)
    whole, split = _both("conv2d", params, [x, w, b], monkeypatch, (False, True, True),
                         threads=8)
    assert whole[0].shape == (3, 7, 3, 2) and whole[1] is None
    _same(split, whole, dtype)


@pytest.mark.parametrize("route", ["per_image", "whole", "winograd"])
def test_conv_non_contiguous_x(route, monkeypatch):
    """A transposed view (not C-contiguous) as x, padding 0 (the padded image is x itself)."""
    r = _rng(4)
    c, k = {"per_image": (2, 3), "whole": (24, 3), "winograd": (8, 3)}[route]
    base = r.standard_normal((3, c, 10, 9))
    x = base.transpose(0, 1, 3, 2)  # (3, c, 9, 10), strided
    assert not x.flags.c_contiguous
    w = r.standard_normal((4, c, k, k))
    b = r.standard_normal(4)
    whole, split = _both("conv2d", _conv_params(), [x, w, b], monkeypatch)
    _same(split, whole, np.float64)
    # and against the contiguous copy
    c_whole = _run_unsplit("conv2d", _conv_params(), [np.ascontiguousarray(x), w, b],
                           monkeypatch)
    _same(split, c_whole, np.float64)


def _run_unsplit(name, params, inputs, monkeypatch, needs=(), state=None, g=None):
    with monkeypatch.context() as m:
        set_split_limits(m, 1e30)
        return _run(name, params, inputs, needs, state, g)


@pytest.mark.parametrize("route", ["per_image", "whole", "winograd3", "winograd5"])
def test_conv_nan_and_inf_agree_with_one_thread(route, monkeypatch):
    """NaN and ±inf in x: the parallel result has NaN / inf in exactly the one-thread places."""
    r = _rng(5)
    c, k, pad = {"per_image": (2, 3, 1), "whole": (20, 3, 1), "winograd3": (8, 3, 1),
                 "winograd5": (16, 5, 2)}[route]
    x = r.standard_normal((3, c, 8, 9))
    x[0, 0, 2, 3] = np.nan
    x[2, c - 1, 5, 7] = np.inf
    x[1, 0, 0, 0] = -np.inf
    w = r.standard_normal((4, c, k, k))
    b = r.standard_normal(4)
    whole, split = _both("conv2d", _conv_params(padding=pad), [x, w, b], monkeypatch)
    assert np.isnan(whole[0]).any()
    _same(split, whole, np.float64)


# ------------------------------------------------------------------ conv2d, Winograd


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(3, 8, 9, 7), (2, 9, 5, 4), (3, 8, 3, 3)])
@pytest.mark.parametrize("bias,needs", [(True, ()), (False, (False, True, False))])
def test_winograd3_no_padding_odd_outputs(dtype, shape, bias, needs, monkeypatch):
    """F(2,3) with padding 0: odd output sizes (7×5, 3×2, 1×1: one partial tile), odd tile
    counts, batches of 2–3, more parts asked for than cores."""
    r = _rng(6)
    x = r.standard_normal(shape).astype(dtype)
    w = r.standard_normal((5, shape[1], 3, 3)).astype(dtype)
    b = r.standard_normal(5).astype(dtype) if bias else None
    whole, split = _both("conv2d", _conv_params(), [x, w, b], monkeypatch, needs, threads=8)
    _same(split, whole, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape,pad", [((2, 16, 9, 10), 1), ((3, 17, 7, 5), 0),
                                       ((3, 16, 6, 6), 2)])
def test_winograd5_many_channels(dtype, shape, pad, monkeypatch):
    """F(2,5) with ≥ 16 channels: odd outputs (7×8, 3×1), padding 0, 1 and 2."""
    r = _rng(7)
    x = r.standard_normal(shape).astype(dtype)
    w = (r.standard_normal((6, shape[1], 5, 5)) * 0.2).astype(dtype)
    b = r.standard_normal(6).astype(dtype)
    params = _conv_params(padding=pad)
    assert conv_winograd.applies(params, x.shape, w.shape)
    whole, split = _both("conv2d", params, [x, w, b], monkeypatch, threads=3)
    _same(split, whole, dtype)


def test_winograd_large_batch_many_blocks(monkeypatch):
    """Enough images that each part runs several blocks (a last block smaller than the
    others) — block size forced small."""
    r = _rng(8)
    monkeypatch.setattr(conv_winograd, "BLOCK_BYTES", 16 * 8 * 9 * 20 * 2)
    x = r.standard_normal((11, 8, 7, 9))
    w = r.standard_normal((4, 8, 3, 3))
    b = r.standard_normal(4)
    whole, split = _both("conv2d", _conv_params(padding=1), [x, w, b], monkeypatch)
    _same(split, whole, np.float64)


def test_gemm_routes_many_blocks(monkeypatch):
    """The whole-batch route's blocks of images (nb < images per part), odd count."""
    from engine.ops import conv_whole

    r = _rng(9)
    monkeypatch.setattr(conv_whole, "BLOCK_BYTES", 180 * 9 * 8 * 2)
    x = r.standard_normal((9, 20, 5, 5))
    w = r.standard_normal((3, 20, 3, 3))
    b = r.standard_normal(3)
    whole, split = _both("conv2d", _conv_params(padding=1, stride=2), [x, w, b],
                         monkeypatch)
    _same(split, whole, np.float64)


# ------------------------------------------------------------------ batch norm


def _bn_state(c, dtype):
    return {"running_mean": np.zeros(c, dtype), "running_var": np.ones(c, dtype)}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("threads", [2, 8])
def test_batch_norm_2d_non_contiguous(dtype, threads, monkeypatch):
    """(N, C) input as a transposed view, 3 channels, up to 3 parts."""
    r = _rng(10)
    x = (r.standard_normal((3, 7)) * 2 + 1).astype(dtype).T  # (7, 3), F order
    assert not x.flags.c_contiguous
    w, b = r.standard_normal(3).astype(dtype), r.standard_normal(3).astype(dtype)
    params = {"eps": 1e-5, "momentum": 0.1}
    whole, split = _both("batch_norm", params, [x, w, b], monkeypatch,
                         state=_bn_state(3, dtype), threads=threads)
    _same(split, whole, dtype, exact=True)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_batch_norm_4d_non_contiguous_with_nan(dtype, monkeypatch):
    """4-D NHWC-strided view, a NaN in one channel and an inf in another, no affine."""
    r = _rng(11)
    x = r.standard_normal((3, 5, 6, 5)).astype(dtype).transpose(0, 3, 1, 2)  # (3, 5, 5, 6)
    x[1, 2, 3, 4] = np.nan
    x[2, 4, 0, 0] = np.inf
    params = {"eps": 1e-5, "momentum": 0.1}
    whole, split = _both("batch_norm", params, [x], monkeypatch, state=_bn_state(5, dtype))
    assert np.isnan(whole[0][:, 2]).all() and not np.isnan(whole[0][:, 0]).any()
    _same(split, whole, dtype, exact=True)


# ------------------------------------------------------------------ pools


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n,threads", [(2, 2), (3, 8)])
def test_max_pool_odd_sizes_nan_inf_non_contiguous(dtype, n, threads, monkeypatch):
    r = _rng(12)
    x = r.standard_normal((n, 3, 8, 7)).astype(dtype).transpose(0, 1, 3, 2)  # (n, 3, 7, 8)
    x[0, 0, 0, 0] = np.nan
    x[0, 1, 2:4, 2:4] = np.nan  # a whole window of NaN
    x[n - 1, 2, 5, 5] = np.inf
    x[n - 1, 2, 0:2, 0:2] = -np.inf  # a whole window of -inf
    params = {"kernel": 2, "stride": None, "padding": 0}
    whole, split = _both("max_pool2d", params, [x], monkeypatch, threads=threads)
    _same(split, whole, dtype, exact=True)
    # the odd last row gets no gradient
    assert (split[1][:, :, 6, :] == 0).all()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("params", [
    {"kernel": 2, "stride": None, "padding": 0, "count_include_pad": True},
    {"kernel": 2, "stride": 2, "padding": 1, "count_include_pad": False},
    {"kernel": 2, "stride": 2, "padding": 1, "count_include_pad": True},
])
def test_avg_pool_odd_sizes_non_contiguous(dtype, params, monkeypatch):
    r = _rng(13)
    x = r.standard_normal((3, 2, 9, 7)).astype(dtype).transpose(0, 1, 3, 2)  # (3, 2, 7, 9)
    x[1, 1, 3, 3] = np.nan
    whole, split = _both("avg_pool2d", params, [x], monkeypatch, threads=8)
    _same(split, whole, dtype, exact=True)


# ------------------------------------------------------------------ activations


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_leaky_relu_large_with_nan(dtype, monkeypatch):
    r = _rng(14)
    x = r.standard_normal((1000, 1201)).astype(dtype).T  # 1.2M elements, transposed
    x[5, 7] = np.nan
    x[9, 11] = -np.inf
    params = {"negative_slope": 0.2}
    whole, split = _both("leaky_relu", params, [x], monkeypatch)
    _same(split, whole, dtype, exact=True)


def test_relu_large_with_nan(monkeypatch):
    r = _rng(15)
    x = r.standard_normal((3, 7, 61, 53)).astype(np.float32)  # 67 893 ≥ RELU_KERNEL_MIN
    x[2, 3, 4, 5] = np.nan
    whole, split = _both("relu", {}, [x], monkeypatch, threads=8)
    _same(split, whole, np.float32, exact=True)


@pytest.mark.parametrize("shape", [(3, 5, 11, 13), (7,)])
def test_silu_float32_with_nan_inf(shape, monkeypatch):
    r = _rng(16)
    x = (r.standard_normal(shape) * 20).astype(np.float32)
    flat = x.reshape(-1)
    flat[0], flat[-1], flat[len(flat) // 2] = np.nan, np.inf, -np.inf
    whole, split = _both("silu", {}, [x], monkeypatch, threads=8)
    _same(split, whole, np.float32, exact=True)


# ------------------------------------------------------------------ a CNN trained


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cnn_steps_forced_splits_match_one_thread(dtype, monkeypatch, tmp_path):
    """A CNN unlike the presets (batch 3, no padding 5×5 Winograd on 16 channels, odd sizes
    into 2×2 pools, leaky ReLU, a strided dilation-free per-image first layer) trained three
    steps with every split forced, against one thread."""
    from engine.bench import cnn_cases
    from tests.split_help import cnn_losses_one_thread_and_split

    case = cnn_cases.CnnCase(
        "cnn_review_s9", (2, 15, 13), 3, 3,
        (("conv", 16, 3, 1, 1), ("bn2",), ("leaky",),
         ("conv", 16, 5, 1, 0), ("bn2",), ("silu",), ("max", 2),
         ("conv", 8, 3, 2, 1), ("relu",), ("avg", 2), ("flatten",), ("fc", 3)))
    seen = _launches(monkeypatch)
    one, two, calls = cnn_losses_one_thread_and_split(case, 9, dtype, tmp_path, monkeypatch)
    assert calls and seen
    tol = 1e-5 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(two, one, rtol=tol)


# ------------------------------------------------------------------ mixed passes


@pytest.mark.parametrize("route", ["per_image", "per_image_big", "whole", "winograd3",
                                   "winograd5"])
@pytest.mark.parametrize("native_pass", ["forward", "backward"])
def test_conv_one_pass_parallel_the_other_not(route, native_pass, monkeypatch):
    """One pass on Numba's threads and the other on one thread (as when only one pass's
    kernel is compiled yet, parallel.ready): the saved state must suit either backward."""
    from engine.ops import conv_by_image

    r = _rng(17)
    c, k, pad = {"per_image": (2, 3, 1), "per_image_big": (2, 3, 1), "whole": (20, 3, 1),
                 "winograd3": (8, 3, 1), "winograd5": (16, 5, 2)}[route]
    if route == "per_image_big":  # the parallel forward does not keep its columns
        monkeypatch.setattr(conv_by_image, "KEEP_BYTES", 0)
    x = r.standard_normal((3, c, 8, 9))
    w = r.standard_normal((4, c, k, k))
    b = r.standard_normal(4)
    params = _conv_params(padding=pad)
    spec = registry.get("conv2d")
    g = r.standard_normal((3, 4, 8, 9))
    whole = _run_unsplit("conv2d", params, [x, w, b], monkeypatch, g=g)
    monkeypatch.setattr(parallel, "BACKGROUND", False)
    ctx = _Ctx()
    with monkeypatch.context() as m:
        if native_pass == "forward":
            force_split(m)
        else:
            set_split_limits(m, 1e30)
        y = spec.forward(ctx, params, x, w, b)
    with monkeypatch.context() as m:
        if native_pass == "backward":
            force_split(m)
        else:
            set_split_limits(m, 1e30)
        grads = spec.backward(ctx, params, g)
    _same([np.array(y), *grads], whole, np.float64)


# ------------------------------------------------------------------ mixed dtypes (last: fails)


@pytest.mark.parametrize("route", ["per_image", "winograd3"])
def test_conv_float32_x_with_float64_weights_as_one_thread(route, monkeypatch):
    """conv2d of a float32 x with float64 weight and bias: one thread gives a float32 result
    (numpy casts inside matmul); the parallel path must too, not raise. (Fails on b812640:
    the parallel kernels get arrays of two dtypes, numba's np.dot has no such signature, and
    parallel.ready keys readiness by x's dtype alone, so a kernel compiled once for float32
    is then called with the mixed signature and raises numba's TypingError.)"""
    r = _rng(18)
    c = 2 if route == "per_image" else 8
    x = r.standard_normal((3, c, 8, 9)).astype(np.float32)
    w = r.standard_normal((4, c, 3, 3))
    b = r.standard_normal(4)
    params = _conv_params(padding=1)
    whole = _run_unsplit("conv2d", params, [x, w, b], monkeypatch)[:1]
    monkeypatch.setattr(parallel, "BACKGROUND", False)
    force_split(monkeypatch)
    # the kernel compiled (ready) for float32 first, as in a run that had float32 weights
    ctx = _Ctx()
    registry.get("conv2d").forward(ctx, params, x, w.astype(np.float32),
                                   b.astype(np.float32))
    y = registry.get("conv2d").forward(_Ctx(), params, x, w, b)
    _same([np.asarray(y)], whole, np.float32)
