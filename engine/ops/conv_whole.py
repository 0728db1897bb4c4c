"""The whole-batch GEMM route of conv2d (wide inputs, tiny outputs, groups, dilation).

Columns ``(C, kh, kw, N, Ho, Wo)`` so that ``reshape(groups, C/groups·kh·kw, N·Ho·Wo)`` feeds
one large GEMM per group; the result ``(Cout, N, Ho, Wo)`` is transposed to NCHW. Large
batches run as two halves at once (:mod:`engine.ops.two_cores`): a half's images are a
contiguous block of the GEMM's columns, so each half im2cols, multiplies and col2ims its own
block; the halves' weight gradients are summed.
"""

from __future__ import annotations

import numpy as np

from engine.ops import two_cores
from engine.ops.kernel_choice import kernels


def forward(ctx, params: dict, xp: np.ndarray, weight: np.ndarray, bias: np.ndarray | None,
            ho: int, wo: int) -> np.ndarray:
    """conv2d of the padded image *xp* on the whole-batch route; saves the columns."""
    s, d, groups = params["stride"], params["dilation"], params["groups"]
    n, c = xp.shape[:2]
    cout, cg, kh, kw = weight.shape
    k, px = cg * kh * kw, ho * wo
    win = kernels("conv").windows(xp, kh, kw, s, d, ho, wo)  # (C, kh, kw, N, Ho, Wo)
    cols = np.empty(win.shape, xp.dtype)
    cols_g = cols.reshape(groups, k, n * px)
    w_g = weight.reshape(groups, cout // groups, k)
    out = np.empty((groups, cout // groups, n * px), xp.dtype)

    def part(lo: int, hi: int) -> None:  # images lo … hi-1: columns lo·px … hi·px-1
        cols[:, :, :, lo:hi] = win[:, :, :, lo:hi]
        np.matmul(w_g, cols_g[:, :, lo * px:hi * px], out=out[:, :, lo * px:hi * px])

    if two_cores.ways(n, 2.0 * cout * k * n * px) == 2:
        two_cores.halves(n, part)
    else:
        part(0, n)
    out4 = out.reshape(cout, n, ho, wo)
    if bias is not None:
        out4 += bias.reshape(cout, 1, 1, 1)
    ctx.save(False, cols_g, weight, xp.shape, bias is not None)
    return np.ascontiguousarray(out4.transpose(1, 0, 2, 3))


def backward(ctx, params: dict, g: np.ndarray, need_x: bool):
    """(padded image gradient or None, weight gradient) on the whole-batch route."""
    _, cols, weight, xp_shape, _ = ctx.saved
    s, d, groups = params["stride"], params["dilation"], params["groups"]
    n, c = xp_shape[:2]
    cout, cg, kh, kw = weight.shape
    ho, wo = g.shape[2], g.shape[3]
    k, px = cg * kh * kw, ho * wo
    g_g = np.ascontiguousarray(g.transpose(1, 0, 2, 3)).reshape(groups, cout // groups, -1)
    w_t = weight.reshape(groups, cout // groups, k).transpose(0, 2, 1)
    gxp = np.zeros(xp_shape, g.dtype) if need_x else None

    def part(lo: int, hi: int) -> np.ndarray:  # images lo … hi-1; returns their (G, k, Cout/G)
        cs, gs = cols[:, :, lo * px:hi * px], g_g[:, :, lo * px:hi * px]
        gw_t = np.matmul(cs, gs.transpose(0, 2, 1))
        if gxp is not None:
            gcols = np.matmul(w_t, gs).reshape(c, kh, kw, hi - lo, ho, wo)
            kernels("conv").col2im(gcols, s, d, gxp[lo:hi])
        return gw_t

    flops = 2.0 * cout * k * n * px * (2 if need_x else 1)
    if two_cores.ways(n, flops) == 2:
        gw_t = sum(two_cores.halves(n, part))
    else:
        gw_t = part(0, n)
    return gxp, gw_t.transpose(0, 2, 1).reshape(weight.shape)
