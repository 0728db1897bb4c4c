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
On two cores, float32 convolutions of many taps take the direct kernels instead of columns
and GEMMs (:mod:`engine.ops.conv_direct`).
"""

from __future__ import annotations

import numpy as np

from engine.ops import conv_direct, two_cores
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
    threads = two_cores.native_threads(n, 2.0 * cout * k * n * ho * wo)
    if threads > 1 and _forward_native(ctx, params, xp, wmat, weight, bias, ho, wo, out,
                                       threads):
        return out.reshape(n, cout, ho, wo)
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
    threads = two_cores.native_threads(n, 2.0 * cout * k * n * ho * wo)  # as the forward
    if threads > 1:
        grads = _backward_native(params, g, saved, weight, xp_shape, has_bias, need_x, threads)
        if grads is not None:
            return grads
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


# Columns kept for the backward on the parallel route (written by the forward's parts, read
# by the backward's instead of rebuilt): at most this many bytes. Alone, keeping 64×1×24²
# 5×5 pad 2's 3.7 MB sped its backward up (0.74 → 0.62 ms); inside whole training steps,
# where the columns are written and read back from memory, rebuilding them is faster since
# im2col vectorises (stride phases included): wall per step, kept (≤ 16 MB) → rebuilt,
# in-process A/B, 10 blocks: cnn_issue24 (3.7 MB) 8.38 → 7.60 ms, cnn_lenet5 (5.0 MB) 3.52 →
# 3.22, a 3×48² 7×7 stride-2 stem (10.8 MB) 5.92 → 5.26; shapes_cnn, digits_cnn, cnn_rgb32,
# cnn_stride20 0.98–1.01. Columns that fit in a core's cache are still kept.
KEEP_BYTES = 1024 * 1024


def _forward_native(ctx, params: dict, xp: np.ndarray, wmat: np.ndarray, weight: np.ndarray,
                    bias: np.ndarray | None, ho: int, wo: int, out: np.ndarray,
                    threads: int) -> bool:
    """The forward into *out* as one parallel Numba call, its images split over *threads*
    (:mod:`engine.ops.conv_direct` where it applies, else
    :mod:`engine.kernels.conv_gemm`, keeping the columns for the backward up to
    :data:`KEEP_BYTES`). False (nothing done) while the kernel is not compiled yet
    (:func:`parallel.ready`)."""
    from engine.kernels import parallel

    n = xp.shape[0]
    cout, k = wmat.shape
    kh, kw = weight.shape[2:]
    px = ho * wo
    xp = np.ascontiguousarray(xp)
    if conv_direct.takes_forward(params, weight.shape, xp.dtype, px):
        done = conv_direct.forward(params, xp, weight, bias, out, ho, wo, threads)
        if done:
            ctx.save(True, xp, weight, xp.shape, bias is not None)
        return done
    keep = n * k * px * xp.dtype.itemsize <= KEEP_BYTES
    kept = np.empty((n if keep else 0, k, px), xp.dtype)
    b = np.empty(0, xp.dtype) if bias is None else np.ascontiguousarray(bias, xp.dtype)
    args = (xp, np.ascontiguousarray(wmat, xp.dtype), b, kh, kw, params["stride"],
            params["dilation"], ho, wo, out, kept)
    if not parallel.run(kernels("conv_gemm").forward_parallel, args, n, threads, xp.dtype):
        return False
    ctx.save(True, kept if keep else xp, weight, xp.shape, bias is not None)
    return True


def _backward_native(params: dict, g: np.ndarray, saved: np.ndarray, weight: np.ndarray,
                     xp_shape: tuple, has_bias: bool, need_x: bool, threads: int
                     ) -> tuple | None:
    """The backward as one parallel Numba call; each part's weight and bias gradients are
    summed here (in part order). None while the kernel is not compiled yet."""
    from engine.kernels import parallel

    n = xp_shape[0]
    cout, cg, kh, kw = weight.shape
    ho, wo = g.shape[2], g.shape[3]
    k, px = cg * kh * kw, ho * wo
    dt = g.dtype
    saved = np.ascontiguousarray(saved, dt)  # (every array in g's dtype, as numpy would)
    if conv_direct.takes_backward(params, weight.shape, dt, px):
        if saved.ndim == 3:  # the forward ran the numpy route, which kept the columns
            return None
        return conv_direct.backward(params, g, saved, weight, has_bias, need_x, threads)
    if saved.ndim == 3:  # the forward kept the columns
        kept, xp = saved, np.empty((0, 1, 1, 1), dt)
    else:
        kept, xp = np.empty((0, k, px), dt), saved
    parts = parallel.bounds(n, threads).shape[0] - 1
    gws = np.zeros((parts, cout, k), dt)
    gbs = np.zeros((parts, cout if has_bias else 0), dt)
    gxp = np.zeros(xp_shape if need_x else (0, 1, 1, 1), dt)
    args = (xp, kept, np.ascontiguousarray(weight.reshape(cout, k), dt), kh, kw, params["stride"],
            params["dilation"], ho, wo, np.ascontiguousarray(g).reshape(n, cout, px), gws, gbs,
            gxp)
    if not parallel.run(kernels("conv_gemm").backward_parallel, args, n, threads, dt):
        return None
    gb = gbs.sum(axis=0) if has_bias else None
    return (gxp if need_x else None), gws.sum(axis=0).reshape(weight.shape), gb
