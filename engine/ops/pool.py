"""2-D max and average pooling over NCHW images.

Max pooling uses Numba kernels (the window's maximum position saved for the backward; the
common 2×2 stride-2 pool its own one-pass kernels with a uint8 position); average pooling a
one-pass Numba kernel each way. Square windows; stride defaults to the window; padding counts
as −inf for max and (by default, like PyTorch) as zeros in the average.
"""

from __future__ import annotations

import numpy as np

from engine.core.registry import Example, OpSpec, Param, Port, ShapeError, TensorType, register
from engine.ops import batch_rules, two_cores
from engine.ops._util import per_example
from engine.ops.conv import _image, _out_dim, _pad
from engine.ops.kernel_choice import kernels


def _pool_infer(inputs, params):
    x = inputs[0]
    _image(x)
    k, p = params["kernel"], params["padding"]
    s = params["stride"] or k
    if 2 * p > k:
        raise ShapeError(f"padding {p} must be at most half the kernel {k}", port="x")
    return [TensorType((x.shape[0], x.shape[1], _out_dim(x.shape[2], p, k, s),
                        _out_dim(x.shape[3], p, k, s)), "float")]


def _geometry(x: np.ndarray, params) -> tuple[int, int, int, int, int]:
    k, p = params["kernel"], params["padding"]
    s = params["stride"] or k
    return k, s, p, (x.shape[2] + 2 * p - k) // s + 1, (x.shape[3] + 2 * p - k) // s + 1


# Both cores per op (engine.ops.two_cores): a large pool runs as blocks of images on two
# threads. A pass over memory costs about what 8 GEMM flops do against MIN_FLOPS: the split
# pays from ~500k elements (batch norm, forward + backward, two threads at load ~2.8: 1M
# elements 1.19 -> 0.59 ms wall, 589k 0.56 -> 0.39, 295k 0.23 -> 0.29 ms, a loss)
_FLOPS_PER_ELEMENT = 8.0


def _by_rows(n: int, elements: int, fn, kernel=None, args: tuple = (), dtype=None) -> None:
    """``fn(lo, hi)`` over the *n* images, or the parallel Numba *kernel* ``(*args, bounds)``
    over blocks of images on Numba's threads (:func:`two_cores.run_native`), or two Python
    threads in blocks when the work pays."""
    if kernel is not None and two_cores.run_native(n, _FLOPS_PER_ELEMENT * elements, kernel,
                                                   args, dtype,
                                                   two_cores.NATIVE_PASS_MIN_FLOPS):
        return
    if two_cores.ways(n, _FLOPS_PER_ELEMENT * elements, two_cores.PASS_MIN_FLOPS) == 2:
        two_cores.halves(n, fn)
    else:
        fn(0, n)


def _zero_tail(gx: np.ndarray, ho: int, wo: int) -> None:
    """Odd sizes: the last row / column of a 2×2 stride-2 pool's input is in no window."""
    gx[:, :, 2 * ho:] = 0
    gx[:, :, :, 2 * wo:] = 0


def _max_forward(ctx, params, x):
    k, s, p, ho, wo = _geometry(x, params)
    if k == s == 2 and p == 0:  # the common 2×2 pool: its own kernels, a uint8 position
        x = np.ascontiguousarray(x)
        out = np.empty(x.shape[:2] + (ho, wo), x.dtype)
        pos = np.empty(out.shape, np.uint8)
        pool = kernels("pool")
        _by_rows(x.shape[0], x.size, lambda lo, hi: pool.max_pool2_fwd(
            x[lo:hi], out[lo:hi], pos[lo:hi]), pool.max_pool2_fwd_parallel, (x, out, pos),
            x.dtype)
        ctx.save(pos, x.shape, None)
        return out
    xp = np.ascontiguousarray(_pad(x, p, -np.inf))
    out = np.empty(x.shape[:2] + (ho, wo), x.dtype)
    arg = np.empty(out.shape, np.int64)
    kernels("pool").max_pool_fwd(xp, k, k, s, out, arg)
    ctx.save(arg, xp.shape, p)
    return out


def _max_backward(ctx, params, g):
    arg, xp_shape, p = ctx.saved
    if p is None:  # the 2×2 pool: arg holds positions 0 … 3
        gx = np.empty(xp_shape, g.dtype)
        g = np.ascontiguousarray(g)
        pool = kernels("pool")
        _by_rows(g.shape[0], gx.size, lambda lo, hi: pool.max_pool2_bwd(
            g[lo:hi], arg[lo:hi], gx[lo:hi]), pool.max_pool2_bwd_parallel, (g, arg, gx),
            g.dtype)
        _zero_tail(gx, g.shape[2], g.shape[3])
        return (gx,)
    gxp = np.zeros(xp_shape, g.dtype)
    kernels("pool").max_pool_bwd(np.ascontiguousarray(g), arg, gxp)
    return (gxp[:, :, p:xp_shape[2] - p, p:xp_shape[3] - p] if p else gxp,)


def _slices(k: int, s: int, ho: int, wo: int):
    for i in range(k):
        for j in range(k):
            yield (slice(None), slice(None), slice(i, i + s * (ho - 1) + 1, s),
                   slice(j, j + s * (wo - 1) + 1, s))


def _avg_divisor(x_shape, params, k, s, p, ho, wo, dtype):
    if params["count_include_pad"] or p == 0:
        return dtype.type(k * k)
    ones = _pad(np.ones((1, 1) + tuple(x_shape[2:]), dtype), p)
    count = np.zeros((1, 1, ho, wo), dtype)
    for sl in _slices(k, s, ho, wo):
        count += ones[sl]
    return count


def _avg_forward(ctx, params, x):
    k, s, p, ho, wo = _geometry(x, params)
    xp = np.ascontiguousarray(_pad(x, p))
    div = _avg_divisor(x.shape, params, k, s, p, ho, wo, x.dtype)
    out = np.empty(x.shape[:2] + (ho, wo), x.dtype)
    scalar = np.ndim(div) == 0  # one Numba pass (window sums / k²); else divide after
    d = div if scalar else x.dtype.type(1)
    if k == s == 2:  # 5-7× faster than the general loop (measured on 64×16×24×24)
        pool = kernels("pool")
        _by_rows(x.shape[0], xp.size, lambda lo, hi: pool.avg_pool2_fwd(
            xp[lo:hi], d, out[lo:hi]), pool.avg_pool2_fwd_parallel, (xp, d, out), x.dtype)
    else:
        kernels("pool").avg_pool_fwd(xp, k, s, d, out)
    ctx.save(x.shape, div)
    return out if scalar else out / div


def _avg_backward(ctx, params, g):
    x_shape, div = ctx.saved
    k, p = params["kernel"], params["padding"]
    s = params["stride"] or k
    padded = (x_shape[0], x_shape[1], x_shape[2] + 2 * p, x_shape[3] + 2 * p)
    if k == s == 2:  # windows apart: every covered pixel written once, 1/4 exact
        scalar = np.ndim(div) == 0
        gd = np.ascontiguousarray(g if scalar else g / div)
        scale = 1.0 / float(div) if scalar else 1.0
        gxp = np.empty(padded, g.dtype)
        pool = kernels("pool")
        _by_rows(g.shape[0], gxp.size, lambda lo, hi: pool.avg_pool2_bwd(
            gd[lo:hi], scale, gxp[lo:hi]), pool.avg_pool2_bwd_parallel, (gd, scale, gxp),
            g.dtype)
        _zero_tail(gxp, g.shape[2], g.shape[3])
    else:
        gxp = np.zeros(padded, g.dtype)
        kernels("pool").avg_pool_bwd(np.ascontiguousarray(g / div), k, s, gxp)
    return (gxp[:, :, p:p + x_shape[2], p:p + x_shape[3]],)


POOL_PARAMS = [
    Param("kernel", "int", 2, minimum=1, doc="Window size (square)."),
    Param("stride", "int", None, minimum=1, optional=True,
          doc="Step between windows (default: the kernel size)."),
    Param("padding", "int", 0, minimum=0, doc="Padding on every side (≤ kernel / 2)."),
]
POOL_EXAMPLES = [
    Example([((2, 3, 4, 4), "float")]),
    Example([((2, 2, 5, 6), "float")], {"kernel": 3, "stride": 2, "padding": 1},
            note="overlapping, padded"),
    Example([((1, 1, 3, 3), "float")], {"kernel": 3, "stride": 1}, note="batch of 1"),
    Example([((1, 2, 4, 4), "float")], {"kernel": 2, "stride": 1}, low=-1e3, high=1e3,
            note="extreme"),
]

register(OpSpec(
    name="max_pool2d",
    category="op",
    doc="""2-D max pooling of an NCHW image (padding counts as −inf).

    The gradient flows to the first maximum of each window.""",
    inputs=[Port("x")],
    outputs=[Port("out")],
    params=list(POOL_PARAMS),
    infer=_pool_infer,
    forward=_max_forward,
    backward=_max_backward,
    flops=lambda inputs, outputs, params: params["kernel"] ** 2 * per_example(outputs[0]),
    examples=[*POOL_EXAMPLES, Example([((2, 2, 5, 7), "float")], note="2×2, odd sizes")],
    batch_rule=batch_rules.leading_only,
    family="conv",
))

register(OpSpec(
    name="avg_pool2d",
    category="op",
    doc="""2-D average pooling of an NCHW image.

    With ``count_include_pad`` (the default, like PyTorch) padded zeros count in the average;
    otherwise each window divides by its number of real pixels.""",
    inputs=[Port("x")],
    outputs=[Port("out")],
    params=[*POOL_PARAMS, Param("count_include_pad", "bool", True,
                                doc="Count padding zeros in the divisor.")],
    infer=_pool_infer,
    forward=_avg_forward,
    backward=_avg_backward,
    flops=lambda inputs, outputs, params: params["kernel"] ** 2 * per_example(outputs[0]),
    examples=[*POOL_EXAMPLES, Example([((2, 1, 5, 5), "float")],
                                      {"kernel": 3, "stride": 2, "padding": 1,
                                       "count_include_pad": False}, note="exclude pad"),
                                Example([((2, 2, 5, 7), "float")],
                                        {"kernel": 2, "padding": 1, "count_include_pad": False},
                                        note="2×2 padded, exclude pad, odd sizes")],
    batch_rule=batch_rules.leading_only,
    family="conv",
))
