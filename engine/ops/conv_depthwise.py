"""The depthwise route of conv2d: one input channel per group (``groups`` = input channels,
``Cout`` a multiple of them; MobileNet's separable convolutions), as direct loops
(:mod:`engine.kernels.depthwise`).

The GEMM routes lower such a convolution to ``groups`` GEMMs of one input channel each (a
``(m, kh·kw)`` by ``(kh·kw, N·Ho·Wo)`` product per group) after copying the image kh·kw
times into columns, which costs far more than the few multiply-adds per output: 64×32×16²
3×3 with 32 groups took 14.5 ms CPU forward and backward against PyTorch's 1.4 ms. Direct
loops read each tap straight from the padded image. Large batches run as two blocks of
images at once (:mod:`engine.ops.two_cores`, memory-bound work: the passes' threshold).
"""

from __future__ import annotations

import numpy as np

from engine.ops import two_cores
from engine.ops.kernel_choice import kernels

_FLOPS_PER_TAP = 2.0  # a multiply-add per tap and output value


def applies(params: dict, x_shape: tuple, w_shape: tuple) -> bool:
    """Whether conv2d takes the depthwise route: every group reads one input channel."""
    groups = params["groups"]
    return groups > 1 and x_shape[1] == groups and w_shape[1] == 1


def _by_images(n: int, work: float, fn) -> list:
    if two_cores.ways(n, work, two_cores.PASS_MIN_FLOPS) == 2:
        return two_cores.halves(n, fn)
    return [fn(0, n)]


def forward(ctx, params: dict, xp: np.ndarray, weight: np.ndarray, bias: np.ndarray | None,
            ho: int, wo: int) -> np.ndarray:
    """conv2d of the padded image *xp* on the depthwise route; saves *xp*."""
    s, d = params["stride"], params["dilation"]
    n = xp.shape[0]
    cout, _, kh, kw = weight.shape
    w3 = np.ascontiguousarray(weight.reshape(cout, kh, kw))
    b = np.zeros(cout, xp.dtype) if bias is None else np.ascontiguousarray(bias, xp.dtype)
    xp = np.ascontiguousarray(xp)
    out = np.empty((n, cout, ho, wo), xp.dtype)
    k = kernels("depthwise")
    _by_images(n, _FLOPS_PER_TAP * kh * kw * out.size,
               lambda lo, hi: k.depthwise_forward(xp, w3, b, s, d, out,
                                                  k.phase_buffer(xp.shape, s, xp.dtype), lo, hi))
    ctx.save("depthwise", xp, w3, weight.shape, bias is not None)
    return out


def backward(ctx, params: dict, g: np.ndarray, need_x: bool):
    """(padded image gradient or None, weight gradient, bias gradient or None) on the
    depthwise route."""
    _, xp, w3, w_shape, has_bias = ctx.saved
    s, d = params["stride"], params["dilation"]
    n = xp.shape[0]
    kh, kw = w3.shape[1], w3.shape[2]
    g = np.ascontiguousarray(g, xp.dtype)
    gxp = np.zeros(xp.shape, xp.dtype) if need_x else None
    k = kernels("depthwise")

    def part(lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        dw = np.empty(w3.shape)  # float64 sums
        db = np.empty(w3.shape[0])
        phases = k.phase_buffer(xp.shape, s, xp.dtype)
        k.depthwise_weight_grad(g, xp, s, d, dw, db, phases, lo, hi)
        if gxp is not None:
            k.depthwise_input_grad(g, w3, s, d, gxp, phases, lo, hi)
        return dw, db

    parts = _by_images(n, _FLOPS_PER_TAP * kh * kw * g.size * (2 if need_x else 1), part)
    dw = sum(p[0] for p in parts)
    db = sum(p[1] for p in parts)
    return (gxp, dw.astype(xp.dtype).reshape(w_shape),
            db.astype(xp.dtype) if has_bias else None)
