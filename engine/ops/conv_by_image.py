"""The per-image GEMM route of conv2d (few input channels × taps, see ``conv.by_image``).

Columns laid out by image ``(N, C·kh·kw, Ho·Wo)`` and one GEMM per image, whose result is
already NCHW (no output transpose, no gradient transpose, col2im reading its columns in order).
The columns are built one block of images at a time in a buffer reused from block to block
(:func:`engine.ops.conv_whole.block_images`), so they stay in cache rather than streaming
kh·kw times the image through memory (and faulting it in) every call; the backward rebuilds
each block's columns from the padded image it saved, unless one block held the whole batch
(then those columns are kept). Large batches run as two halves at once
(:mod:`engine.ops.two_cores`): the images are independent, the halves' weight gradients are
summed, and so are their bias gradients (each block's summed while it is in cache).
"""

from __future__ import annotations

import numpy as np

from engine.ops import two_cores
from engine.ops.conv_whole import block_images, blocks
from engine.ops.kernel_choice import kernels


def forward(ctx, params: dict, xp: np.ndarray, weight: np.ndarray, bias: np.ndarray | None,
            ho: int, wo: int) -> np.ndarray:
    """conv2d of the padded image *xp* on the per-image route; saves the columns or *xp*."""
    s, d = params["stride"], params["dilation"]
    n, c = xp.shape[:2]
    cout, cg, kh, kw = weight.shape
    k = cg * kh * kw
    out = np.empty((n, cout, ho * wo), xp.dtype)
    wmat = weight.reshape(cout, k)
    win = kernels("conv").windows_by_image(xp, kh, kw, s, d, ho, wo)  # (N, C, kh, kw, Ho, Wo)
    nb = block_images(k * ho * wo, xp.dtype.itemsize)
    # one block holds the whole batch: its columns are kept for the backward (not rebuilt)
    kept = np.empty((n, k, ho * wo), xp.dtype) if n <= nb else None

    def part(lo: int, hi: int) -> None:  # images lo … hi-1
        buf = np.empty((min(nb, hi - lo), k, ho * wo), xp.dtype) if kept is None else None
        for a, b in blocks(lo, hi, nb):
            cols = kept[a:b] if kept is not None else buf[:b - a]  # type: ignore[index]
            cols.reshape(b - a, c, kh, kw, ho, wo)[...] = win[a:b]
            np.matmul(wmat, cols, out=out[a:b])  # (n, Cout, Ho·Wo)
            if bias is not None:
                out[a:b] += bias.reshape(1, cout, 1)

    if two_cores.ways(n, 2.0 * cout * k * n * ho * wo, two_cores.GEMM_MIN_FLOPS) == 2:
        two_cores.halves(n, part)
    else:
        part(0, n)
    ctx.save(True, xp if kept is None else kept, weight, xp.shape, bias is not None)
    return out.reshape(n, cout, ho, wo)


def backward(ctx, params: dict, g: np.ndarray, need_x: bool):
    """(padded image gradient or None, weight gradient, bias gradient or None) on the
    per-image route."""
    _, saved, weight, xp_shape, has_bias = ctx.saved
    s, d = params["stride"], params["dilation"]
    n, c = xp_shape[:2]
    cout, cg, kh, kw = weight.shape
    ho, wo = g.shape[2], g.shape[3]
    k = cg * kh * kw
    kept = saved if saved.ndim == 3 else None  # else the padded image
    win = kernels("conv").windows_by_image(saved, kh, kw, s, d, ho, wo) if kept is None else None
    g3 = np.ascontiguousarray(g).reshape(n, cout, ho * wo)
    wt = weight.reshape(cout, k).T
    gxp = np.zeros(xp_shape, g.dtype) if need_x else None
    nb = n if kept is not None else block_images(k * ho * wo * (2 if need_x else 1),
                                                 g.dtype.itemsize)

    def part(lo: int, hi: int) -> tuple:  # images lo … hi-1: their (k, Cout), (Cout,)
        buf = np.empty((min(nb, hi - lo), k, ho * wo), g.dtype) if win is not None else None
        gwt = np.zeros((k, cout), g.dtype)
        gb = np.zeros(cout, g.dtype)
        for a, b in blocks(lo, hi, nb):
            if has_bias:
                gb += g3[a:b].sum(axis=2).sum(axis=0)
            if win is not None and buf is not None:
                cols = buf[:b - a]
                cols.reshape(b - a, c, kh, kw, ho, wo)[...] = win[a:b]
            else:
                cols = kept[a:b]  # type: ignore[index]
            # (colsᵀ-side GEMM, then transpose): BLAS runs it 10–35 % faster than g · colsᵀ
            gwt += np.matmul(cols, g3[a:b].transpose(0, 2, 1)).sum(axis=0)
            if gxp is not None:
                gcols = np.matmul(wt, g3[a:b]).reshape(b - a, c, kh, kw, ho, wo)
                kernels("conv").col2im_by_image(gcols, s, d, gxp[a:b])
        return gwt, gb

    split = two_cores.ways(n, 2.0 * cout * k * n * ho * wo, two_cores.GEMM_MIN_FLOPS) == 2
    parts = two_cores.halves(n, part) if split else [part(0, n)]
    gwt = sum(p[0] for p in parts)
    gb = sum(p[1] for p in parts) if has_bias else None
    return gxp, gwt.T.reshape(weight.shape), gb
