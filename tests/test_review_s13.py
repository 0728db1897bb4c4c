"""Session 13's review of the direct float32 convolution (engine/kernels/conv_direct.py,
engine/ops/conv_direct.py, engine/kernels/stack.py): shapes unlike the bench presets, on the
kernels directly and through conv2d with its two-core path forced; the parts' weight-gradient
sums for batches smaller than the thread count; float64 finite differences where the route does
not apply; reads and writes kept inside their arrays; the stack block's misuse; the precision
of the weight gradient on large outputs; and the route rule on tiny outputs (measured slower
than the GEMM route).

Run from the repository root:
``python -m pytest -q -p no:cacheprovider tests/test_review_s13.py``."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit, types
from numba.core.errors import NumbaError, TypingError

from engine.kernels import conv_direct as D
from engine.ops import conv_direct as route
from tests.helpers import OpCtx, assert_close, assert_conv_matches, numpy_conv, record_native_runs
from tests.split_help import force_split


@pytest.fixture(autouse=True)
def _compile_at_once(monkeypatch):
    """Parallel kernels compile before their first use (as tests/conftest.py sets it), so which
    route runs never depends on a background compile, wherever this file is run from."""
    from engine.kernels import parallel

    monkeypatch.setattr(parallel, "BACKGROUND", False)


def _params(s: int, p: int, d: int = 1) -> dict:
    return {"stride": s, "padding": p, "dilation": d, "groups": 1}


def _out(h: int, w: int, kh: int, kw: int, s: int, p: int, d: int) -> tuple[int, int]:
    return (h + 2 * p - d * (kh - 1) - 1) // s + 1, (w + 2 * p - d * (kw - 1) - 1) // s + 1


def _padded(x: np.ndarray, p: int) -> np.ndarray:
    n, c, h, w = x.shape
    xp = np.zeros((n, c, h + 2 * p, w + 2 * p), x.dtype)
    xp[:, :, p:p + h, p:p + w] = x
    return xp


def _direct_serial(x, w, b, g, s, p, d, need_x=True, xf=None, out=None):
    """(y, gx or None, gw, gb or None) of the serial direct kernels; *xf* / *out* may be given
    (views into larger guarded buffers)."""
    n, c, h, wd = x.shape
    cout, _, kh, kw = w.shape
    ho, wo = _out(h, wd, kh, kw, s, p, d)
    xp = _padded(x, p)
    if xf is None:
        xf = xp.reshape(n, -1)
    else:
        xf[...] = xp.reshape(n, -1)
    taps, pixels = D.tables(c, h + 2 * p, wd + 2 * p, kh, kw, s, d, ho, wo)
    wmat = np.ascontiguousarray(w.reshape(cout, -1))
    if out is None:
        out = np.empty((n, cout, ho * wo), x.dtype)
    D.forward_part(xf, taps, pixels, D.pack_weights(wmat), D.pack_bias(b, cout, x.dtype), out,
                   0, n)
    gwpk = np.zeros((-(-cout // D.LANES), c * kh * kw, D.LANES), x.dtype)
    gb = np.zeros(cout if b is not None else 0, x.dtype)
    gxp = np.zeros(xp.shape if need_x else (0, 1, 1, 1), x.dtype)
    D.backward_part(xf, taps, pixels, wmat, kh, kw, s, d, ho, wo,
                    np.ascontiguousarray(g).reshape(n, cout, -1), gwpk, gb, gxp, 0, n)
    gx = gxp[:, :, p:p + h, p:p + wd] if need_x else None
    return (out.reshape(n, cout, ho, wo), gx, D.unpack_weights(gwpk, cout).reshape(w.shape),
            gb if b is not None else None), gwpk


# (N, C, H, W, Cout, kh, kw, stride, padding, dilation)
ODD_KERNEL_SHAPES = [
    (1, 1, 1, 1, 1, 1, 1, 1, 0, 1),  # one tap, one pixel, one channel
    (1, 2, 3, 3, 1, 3, 3, 1, 0, 1),  # a 1×1 output, Cout 1
    (2, 3, 5, 4, 17, 5, 4, 1, 0, 1),  # a 1×1 output, non-square, Cout 17
    (3, 256, 3, 3, 31, 1, 1, 1, 0, 1),  # Cin 256, 1×1 kernel, 9 pixels, Cout 31
    (2, 7, 9, 5, 65, 2, 5, 3, 4, 1),  # padding larger than the kernel, stride > kh, Cout 65
    (1, 4, 15, 13, 33, 3, 2, 2, 1, 3),  # dilation with stride, non-square
    (2, 5, 10, 10, 1, 3, 3, 5, 0, 1),  # stride > kernel: 2×2 outputs
    (3, 3, 11, 7, 16, 1, 7, 1, 3, 1),  # a 1×7 kernel
    (1, 2, 2, 2, 48, 2, 2, 1, 0, 1),  # 8 taps, one pixel
    (2, 1, 30, 1, 20, 5, 1, 2, 0, 2),  # images one pixel wide
    (2, 9, 6, 31, 7, 6, 1, 4, 5, 1),  # a 6×1 kernel, padding 5
]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", ODD_KERNEL_SHAPES, ids=str)
def test_direct_kernels_on_odd_shapes_match_float64(shape, bias):
    """The serial direct kernels (forward, weight, bias and image gradients) in float32 on
    shapes with partial pixel / tap / channel blocks, against float64 numpy."""
    n, c, h, w, cout, kh, kw, s, p, d = shape
    rng = np.random.default_rng(sum(shape) + bias)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((cout, c, kh, kw)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32) if bias else None
    g = rng.standard_normal((n, cout, *_out(h, w, kh, kw, s, p, d))).astype(np.float32)
    got, _ = _direct_serial(x, wt, b, g, s, p, d)
    assert_conv_matches(numpy_conv(x, wt, b, g, s, p, d), x, b, (True, True, bias), got[0],
                        got[1:])


@pytest.mark.parametrize("shape", [ODD_KERNEL_SHAPES[i] for i in (1, 2, 4, 5, 6, 9, 10)],
                         ids=str)
def test_direct_kernels_read_and_write_only_inside_their_arrays(shape):
    """The padded image sits inside a NaN-filled buffer and the output inside a buffer of a
    sentinel value: a read before the first or past the last image (a clamped offset, uint64
    arithmetic gone wrong) would put NaN in the results; a store of a spare row of a partial
    block outside the output would change the sentinel. Lanes past Cout of the packed weight
    gradient stay exactly zero."""
    n, c, h, w, cout, kh, kw, s, p, d = shape
    rng = np.random.default_rng(7)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((cout, c, kh, kw)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    ho, wo = _out(h, w, kh, kw, s, p, d)
    g = rng.standard_normal((n, cout, ho, wo)).astype(np.float32)
    size = c * (h + 2 * p) * (w + 2 * p)
    guard = np.full(n * size + 2 * size + 64, np.nan, np.float32)
    xf = guard[size + 32:size + 32 + n * size].reshape(n, size)  # C-contiguous view
    sentinel = np.float32(-12345.5)
    obuf = np.full(n * cout * ho * wo + 64, sentinel, np.float32)
    out = obuf[32:32 + n * cout * ho * wo].reshape(n, cout, ho * wo)
    got, gwpk = _direct_serial(x, wt, b, g, s, p, d, xf=xf, out=out)
    for name, arr in zip(("forward", "input gradient", "weight gradient", "bias gradient"), got):
        assert np.isfinite(arr).all(), f"{name}: a read outside the image"
    assert (obuf[:32] == sentinel).all() and (obuf[32 + out.size:] == sentinel).all(), \
        "a store outside the output"
    spare = gwpk[-1, :, cout % D.LANES:] if cout % D.LANES else gwpk[:0]  # the last block
    assert not spare.any(), "lanes past Cout of the weight gradient"
    assert_conv_matches(numpy_conv(x, wt, b, g, s, p, d), x, b, (True, True, True), got[0],
                        got[1:])


def test_tables_are_exact_past_32_bit_offsets():
    """Tap offsets past 2³¹ (3 planes of 40 000²) stay exact in the uint64 tables."""
    taps, pixels = D.tables(3, 40000, 40000, 2, 2, 7, 3, 1, 2)
    assert taps.dtype == np.uint64 and pixels.dtype == np.uint64
    want = [ch * 40000 * 40000 + i * 3 * 40000 + j * 3
            for ch in range(3) for i in range(2) for j in range(2)]
    assert [int(t) for t in taps] == want
    assert [int(q) for q in pixels] == [0, 7]


# conv2d through the registry, its two-core path forced:
# (x shape, weight shape, stride, padding, dilation, forward kernel, backward kernel)
OP_CASES = [
    ((2, 8, 4, 4), (17, 8, 4, 4), 1, 0, 1, "conv_gemm", "conv_gemm"),  # P = 1
    ((3, 8, 5, 5), (1, 8, 4, 4), 1, 0, 1, "conv_direct", "conv_gemm"),  # P = 4, Cout 1
    ((2, 256, 5, 3), (31, 256, 1, 1), 1, 0, 1, "conv_direct", "conv_gemm"),  # Cin 256 1×1
    ((5, 256, 7, 6), (65, 256, 1, 1), 2, 0, 1, "conv_gemm", "conv_gemm"),  # 1×1 → 65
    ((2, 5, 13, 11), (65, 5, 3, 5), 4, 6, 1, "conv_direct", "conv_gemm"),  # stride 4, pad 6
    ((3, 4, 17, 15), (33, 4, 5, 4), 2, 1, 3, "conv_direct", "conv_direct"),  # dilation+stride
    ((7, 2, 6, 6), (20, 2, 6, 6), 1, 0, 1, "conv_gemm", "conv_gemm"),  # batch 7, P = 1
    ((2, 4, 30, 12), (24, 4, 9, 2), 3, 5, 1, "conv_direct", "conv_direct"),  # 9×2 kernel
    ((2, 3, 10, 10), (16, 3, 5, 5), 1, 7, 2, "conv_direct", "conv_direct"),  # pad 7, dil 2
    ((3, 7, 9, 9), (16, 7, 3, 3), 2, 0, 1, "conv_gemm", "conv_gemm"),  # 63 taps: GEMM
]
VARIANTS = [("c", True, True), ("fortran", False, False), ("view", True, False)]


@pytest.mark.parametrize("layout,bias,need_x", VARIANTS)
@pytest.mark.parametrize("case", OP_CASES, ids=lambda c: f"{c[0]}-{c[1]}-s{c[2]}p{c[3]}d{c[4]}")
def test_conv2d_on_two_cores_odd_shapes_match_float64(case, layout, bias, need_x, monkeypatch):
    """conv2d in float32 on the forced two-core path: C-ordered, Fortran-ordered and strided
    images, bias or none, image gradient or none; the kernels the rule names run and the
    numbers are float64's."""
    from engine.core.registry import get

    xs, ws, s, p, d, fwd, bwd = case
    force_split(monkeypatch, spy=False)
    ran = record_native_runs(monkeypatch, modules=True)
    rng = np.random.default_rng(len(ran) + sum(xs) + sum(ws))
    x = rng.standard_normal(xs).astype(np.float32)
    if layout == "fortran":
        x = np.asfortranarray(x)
    elif layout == "view":
        big = rng.standard_normal((xs[0], xs[1] + 2, xs[2], 2 * xs[3])).astype(np.float32)
        big[:, 1:-1, :, ::2] = x
        x = big[:, 1:-1, :, ::2]
    w = (rng.standard_normal(ws) * 0.2).astype(np.float32)
    b = rng.standard_normal(ws[0]).astype(np.float32) if bias else None
    params = _params(s, p, d)
    spec, ctx = get("conv2d"), OpCtx((need_x, True, bias))
    y = spec.forward(ctx, params, x, w, b)
    g = rng.standard_normal(y.shape).astype(np.float32)
    grads = spec.backward(ctx, params, g)
    assert [r.split(".")[0] for r in ran] == [fwd, bwd], ran
    assert_conv_matches(numpy_conv(x, w, b, g, s, p, d), x, b, (need_x, True, bias), y, grads)


@pytest.mark.parametrize("n,threads", [(1, 2), (2, 8), (3, 2), (3, 3), (3, 8)])
def test_direct_route_sums_the_parts_for_batches_below_the_thread_count(n, threads):
    """engine.ops.conv_direct's forward and backward called with more threads than images:
    one part an image, each with its own weight and bias gradient, summed once."""
    rng = np.random.default_rng(n * 10 + threads)
    x = rng.standard_normal((n, 5, 9, 7)).astype(np.float32)
    w = (rng.standard_normal((20, 5, 3, 5)) * 0.3).astype(np.float32)
    b = rng.standard_normal(20).astype(np.float32)
    params = _params(2, 2)
    xp = _padded(x, 2)
    ho, wo = _out(9, 7, 3, 5, 2, 2, 1)
    out = np.full((n, 20, ho * wo), np.nan, np.float32)
    assert route.forward(params, xp, w, b, out, ho, wo, threads)
    g = rng.standard_normal((n, 20, ho, wo)).astype(np.float32)
    res = route.backward(params, g, xp, w, True, True, threads)
    assert res is not None
    gxp, gw, gb = res
    grads = (gxp[:, :, 2:-2, 2:-2], gw, gb)
    assert_conv_matches(numpy_conv(x, w, b, g, 2, 2, 1), x, b, (True, True, True),
                        out.reshape(n, 20, ho, wo), grads)


def test_conv2d_with_three_parts_on_a_four_thread_blas(monkeypatch):
    """BLAS on four threads and a batch of three: conv2d splits its direct kernels into three
    parts (fewer images than threads); the summed gradients are float64's."""
    from engine.core.registry import get
    from engine.ops import two_cores

    calls = force_split(monkeypatch)
    monkeypatch.setattr(two_cores, "blas_threads", lambda: 4)
    ran = record_native_runs(monkeypatch, modules=True)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 3, 20, 18)).astype(np.float32)
    w = (rng.standard_normal((24, 3, 7, 7)) * 0.2).astype(np.float32)
    b = rng.standard_normal(24).astype(np.float32)
    params = _params(2, 3)
    spec, ctx = get("conv2d"), OpCtx((True, True, True))
    y = spec.forward(ctx, params, x, w, b)
    g = rng.standard_normal(y.shape).astype(np.float32)
    grads = spec.backward(ctx, params, g)
    assert ran == ["conv_direct.forward_parallel", "conv_direct.backward_parallel"]
    assert two_cores.native_threads(3, 1e12) == 3 and calls
    assert_conv_matches(numpy_conv(x, w, b, g, 2, 3, 1), x, b, (True, True, True), y, grads)


# float64 (the direct route never applies): (x shape, weight shape, stride, padding, dilation)
FD_CASES = [
    ((2, 3, 9, 7), (5, 3, 3, 2), 2, 1, 1),  # per-image route, non-square
    ((3, 4, 11, 10), (17, 4, 2, 3), 3, 4, 1),  # stride > kernel, padding > kernel
    ((2, 2, 13, 12), (1, 2, 3, 3), 2, 2, 3),  # dilation with stride, Cout 1
    ((2, 32, 4, 4), (65, 32, 1, 1), 1, 0, 1),  # whole-batch route, 1×1
    ((3, 8, 4, 5), (7, 8, 4, 5), 1, 0, 1),  # a 1×1 output
]


@pytest.mark.parametrize("case", FD_CASES, ids=str)
def test_conv2d_float64_gradients_match_finite_differences(case, monkeypatch):
    """conv2d in float64 on the forced two-core path (the GEMM routes: the direct rule takes
    float32 only): the input, weight and bias gradients against central differences of
    L = Σ y·g along random directions (L is linear in each input, so they are exact but for
    rounding)."""
    from engine.core.registry import get

    xs, ws, s, p, d = case
    ho, wo = _out(xs[2], xs[3], ws[2], ws[3], s, p, d)
    assert not route.takes_forward(_params(s, p, d), ws, np.float64, ho * wo)
    force_split(monkeypatch, spy=False)
    rng = np.random.default_rng(sum(xs) + sum(ws))
    x = rng.standard_normal(xs)
    w = rng.standard_normal(ws)
    b = rng.standard_normal(ws[0])
    params = _params(s, p, d)
    spec = get("conv2d")
    ctx = OpCtx((True, True, True))
    y = spec.forward(ctx, params, x, w, b)
    g = rng.standard_normal(y.shape)
    grads = spec.backward(ctx, params, g)

    def loss(xv, wv, bv) -> float:
        return float(np.sum(spec.forward(OpCtx((True, True, True)), params, xv, wv, bv) * g))

    eps = 1e-3
    for i, (arg, grad) in enumerate(zip((x, w, b), grads)):
        for _ in range(2):
            v = rng.standard_normal(arg.shape)
            plus = [x, w, b]
            minus = [x, w, b]
            plus[i], minus[i] = arg + eps * v, arg - eps * v
            numeric = (loss(*plus) - loss(*minus)) / (2 * eps)
            analytic = float(np.sum(grad * v))
            assert abs(numeric - analytic) <= 1e-9 * max(1.0, abs(analytic)), \
                (("x", "weight", "bias")[i], numeric, analytic)


def _weight_grad64(x: np.ndarray, g: np.ndarray, k: int, p: int) -> np.ndarray:
    """conv2d's weight gradient (stride 1, groups 1, square *k*) in float64."""
    n, c, h, w = x.shape
    cout, ho, wo = g.shape[1:]
    xp = _padded(x.astype(np.float64), p)
    g2 = g.astype(np.float64).transpose(1, 0, 2, 3).reshape(cout, -1)
    out = np.zeros((cout, c, k, k))
    for i in range(k):
        for j in range(k):
            win = np.ascontiguousarray(xp[:, :, i:i + ho, j:j + wo].transpose(1, 0, 2, 3))
            out[:, :, i, j] = g2 @ win.reshape(c, -1).T
    return out


def test_weight_gradient_of_a_large_output_keeps_float32_precision(monkeypatch):
    """A 3×512² image (two of them, as data), 7×7 stride 1 padding 3 → 16 channels, float32,
    two cores: the weight gradient sums 262 144 pixels an image. The GEMM route keeps it within
    1e-6 of float64 (relative to its largest value); the direct kernel sums every pixel of an
    image into one float32 accumulator per tap and channel, and drifts past the suite's own
    float32 tolerance (2e-5; measured 2.8e-5 here, 3.4e-5 on one such image against the GEMM
    route's 1.0e-6) — until it added its sums into the gradient every 1024 pixels."""
    from engine.core.registry import get

    force_split(monkeypatch, spy=False)
    rng = np.random.default_rng(11)
    x = rng.random((2, 3, 512, 512), dtype=np.float32)  # non-negative, like images
    w = (rng.random((16, 3, 7, 7), dtype=np.float32) * 0.1)
    params = _params(1, 3)
    spec = get("conv2d")
    g = rng.random((2, 16, 512, 512), dtype=np.float32)
    want = _weight_grad64(x, g, 7, 3)
    results = {}
    for name, min_taps in (("gemm", 10**9), ("direct", route.MIN_TAPS)):
        monkeypatch.setattr(route, "MIN_TAPS", min_taps)
        ran = record_native_runs(monkeypatch, modules=True)
        ctx = OpCtx((False, True))
        spec.forward(ctx, params, x, w)
        gw = spec.backward(ctx, params, g)[1]
        assert ran[-1].startswith("conv_direct" if name == "direct" else "conv_gemm"), ran
        results[name] = gw
    assert_close(results["gemm"], want, np.float32, "weight gradient (GEMM route)", tol32=5e-6)
    assert_close(results["direct"], want, np.float32, "weight gradient (direct route)")


# ---------------------------------------------------------------- the stack block


def test_stack_block_refuses_what_it_cannot_size():
    """Sizes that are not positive compile-time integers, and a non-array *like*, are typing
    errors (not a block of some size)."""
    from engine.kernels.stack import stack_block

    @njit
    def zero_rows(a):
        return stack_block(a, 0, 4)[0, 0]

    @njit
    def negative_cols(a):
        return stack_block(a, 2, -3)[0, 0]

    @njit
    def scalar_like(a):
        return stack_block(1.0, 2, 2)[0, 0]

    @njit
    def float_rows(a):
        return stack_block(a, 2.0, 2)[0, 0]

    for fn in (zero_rows, negative_cols, scalar_like, float_rows):
        with pytest.raises(TypingError):
            fn(np.zeros(1, np.float32))


def test_a_stack_block_returned_from_its_kernel_is_refused_or_copied():
    """A block returned from the kernel that made it points into a stack frame that no longer
    exists: the returned array must be refused at compile time, or hold what was written.
    (It used to compile, and Python read whatever the next call left there.)"""
    from engine.kernels.stack import stack_block

    @njit
    def escape(a):
        blk = stack_block(a, 4, 4)
        for i in range(4):
            for j in range(4):
                blk[i, j] = 7.0
        return blk

    @njit
    def clobber(a):
        blk = stack_block(a, 64, 64)
        for i in range(64):
            for j in range(64):
                blk[i, j] = -1.0
        return blk[3, 3]

    a = np.zeros(1, np.float32)
    try:
        escape.compile((types.float32[::1],))
    except NumbaError:
        return  # refused: fine
    blk = escape(a)
    clobber(a)
    np.testing.assert_array_equal(blk, np.full((4, 4), 7.0, np.float32),
                                  err_msg="a stack block escaped its kernel (dangling memory)")


def test_a_stack_block_larger_than_a_thread_stack_is_refused_at_compile_time():
    """stack_block(a, 2¹⁴, 2¹⁴) asks for 1 GiB of stack (a thread's is 8 MiB, an OpenMP
    worker's often less): it compiled, and the kernel segfaulted when run (or, past the
    guard page, writes into another mapping). Only compiled here, never run: blocks over
    stack.MAX_BYTES are refused."""
    from engine.kernels.stack import stack_block

    @njit
    def huge(a):
        blk = stack_block(a, 1 << 14, 1 << 14)
        blk[0, 0] = a[0]
        return blk[0, 0]

    with pytest.raises(NumbaError):
        huge.compile((types.float32[::1],))


# ---------------------------------------------------------------- the route rule


# Measured (one thread, in-process, alternating, serial parts on 16 images, AMD EPYC AVX-512):
# the direct kernels / the whole-batch GEMM route's, the weight gradient only (x is data).
TINY_OUTPUT_BACKWARD = [  # (C, kh·kw side, Cout, P): direct / GEMM
    (64, 4, 64, 1),  # 0.483 / 0.146 ms = 3.31 (32 images: 3.19)
    (64, 4, 48, 1),  # 0.353 / 0.137 ms = 2.57
    (64, 4, 32, 1),  # 0.238 / 0.118 ms = 2.02
    (64, 4, 64, 2),  # 0.485 / 0.204 ms = 2.37
    (64, 4, 64, 4),  # 0.527 / 0.287 ms = 1.84
]


@pytest.mark.parametrize("c,k,cout,px", TINY_OUTPUT_BACKWARD)
def test_the_rule_keeps_the_backward_of_tiny_outputs_on_the_gemm(c, k, cout, px):
    """Outputs of a few pixels with 32–64 channels: the direct weight gradient adds a 6×16
    block into the packed gradient after every pixel (a rank-one update an image), where the
    whole-batch GEMM multiplies a block of images at once: 1.8–3.3× slower (the rule used to
    send them to it; now under 16 pixels the backward keeps the GEMM)."""
    assert not route.takes_backward({"groups": 1}, (cout, c, k, k), np.float32, px)


def test_conv2d_forward_of_a_one_pixel_output_with_many_channels_stays_on_the_gemm(monkeypatch):
    """16 images of 64×4² through a 4×4 kernel into 512 channels (a 1×1 output, an FC layer
    written as a convolution): the direct forward computes its 6-pixel block on one pixel
    (6× the multiply-adds) and streams the 2 MiB of packed weights once per image; measured
    0.923 ms direct vs 0.442 ms for the whole-batch GEMM (2.09×; Cout 128 from 32×4²: 1.89×),
    one thread. (The forward rule had no pixel or weight-size condition and took it.)"""
    from engine.core.registry import get

    force_split(monkeypatch, spy=False)
    ran = record_native_runs(monkeypatch, modules=True)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 64, 4, 4)).astype(np.float32)
    w = (rng.standard_normal((512, 64, 4, 4)) * 0.05).astype(np.float32)
    get("conv2d").forward(OpCtx((False, True)), _params(1, 0), x, w)
    assert ran and not ran[0].startswith("conv_direct"), ran
