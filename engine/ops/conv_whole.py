"""The whole-batch GEMM route of conv2d (wide inputs, tiny outputs, groups, dilation).

Columns ``(C, kh, kw, n, Ho, Wo)`` for a block of *n* images, so that
``reshape(groups, C/groups·kh·kw, n·Ho·Wo)`` feeds one large GEMM per group; the block's
result ``(Cout, n, Ho, Wo)`` is transposed to NCHW (the bias added on the way) and the
block's gradient back, while they are in cache (and on both cores, below). The columns are
built one block of images at a time in a buffer reused from block to block
(:func:`block_images`), so they stay in cache instead of streaming a column matrix kh·kw
times the image through memory (and faulting it in every call); the backward rebuilds each
block's columns from the padded image it saved. Large batches run as two halves at once
(:mod:`engine.ops.two_cores`): each half im2cols, multiplies and col2ims its own blocks; the
halves' weight and bias gradients are summed. On two cores, float32 convolutions of groups of
one take the direct kernels instead (:mod:`engine.ops.conv_direct`).
"""

from __future__ import annotations

import numpy as np

from engine.ops import conv_direct, two_cores
from engine.ops.kernel_choice import kernels

# Bytes of columns per block of images (both GEMM routes). Measured, CPU ms of forward +
# backward on one thread, float32, unblocked (the whole batch's columns at once) → blocks of
# 256 KiB / 1 / 4 / 16 MiB: 128×32×12² → 64 5×5 (whole batch) 50.4 → 46.2 / 43.9 / 44.7 / 48.4;
# 128×1×28² → 32 5×5 (per image) 14.7 → 12.3 / 12.4 / 13.0; 64×1×24² → 16 5×5 pad 2 (per
# image) 1.64 / 1.45 / 1.45.
BLOCK_BYTES = 1024 * 1024


def block_images(values_per_image: int, itemsize: int) -> int:
    """Images per block: as many as keep their ``values_per_image`` column values within
    :data:`BLOCK_BYTES`, at least 1."""
    return max(1, BLOCK_BYTES // (values_per_image * itemsize))


def blocks(lo: int, hi: int, nb: int):
    """``(start, stop)`` of each block of at most *nb* images in ``lo … hi-1``."""
    return ((a, min(a + nb, hi)) for a in range(lo, hi, nb))


def _columns(win: np.ndarray, a: int, b: int, groups: int, kept: np.ndarray | None,
             buf: np.ndarray | None) -> np.ndarray:
    """Columns ``(groups, k, (b-a)·Ho·Wo)`` of images a … b-1 copied from the windows *win*
    into the whole batch's *kept* columns, or else into the block buffer *buf*."""
    c, kh, kw, _, ho, wo = win.shape
    if kept is not None:
        kept[:, :, :, a:b] = win[:, :, :, a:b]
        return kept.reshape(groups, -1, kept[0, 0, 0].size)[:, :, a * ho * wo:b * ho * wo]
    assert buf is not None
    cols = buf[:c * kh * kw * (b - a) * ho * wo].reshape(c, kh, kw, b - a, ho, wo)
    cols[...] = win[:, :, :, a:b]
    return cols.reshape(groups, -1, (b - a) * ho * wo)


def forward(ctx, params: dict, xp: np.ndarray, weight: np.ndarray, bias: np.ndarray | None,
            ho: int, wo: int) -> np.ndarray:
    """conv2d of the padded image *xp* on the whole-batch route; saves *xp*."""
    s, d, groups = params["stride"], params["dilation"], params["groups"]
    n, c = xp.shape[:2]
    cout, cg, kh, kw = weight.shape
    k, px = cg * kh * kw, ho * wo
    y = np.empty((n, cout, ho, wo), xp.dtype)
    threads = two_cores.native_threads(n, 2.0 * cout * k * n * px) if groups == 1 else 1
    if threads > 1:
        if conv_direct.takes_forward(params, weight.shape, xp.dtype, px):
            done = conv_direct.forward(params, xp, weight, bias, y, ho, wo, threads)
        else:
            done = _forward_native(params, xp, weight, bias, y, threads)
        if done:
            ctx.save(False, xp, weight, xp.shape, bias is not None)
            return y
    win = kernels("conv").windows(xp, kh, kw, s, d, ho, wo)  # (C, kh, kw, N, Ho, Wo)
    w_g = weight.reshape(groups, cout // groups, k)
    nb = block_images(c * kh * kw * px, xp.dtype.itemsize)
    # one block holds the whole batch: its columns are kept for the backward (not rebuilt)
    kept = np.empty(win.shape, xp.dtype) if n <= nb else None

    def part(lo: int, hi: int) -> None:  # images lo … hi-1: columns lo·px … hi·px-1
        buf = None if kept is not None else np.empty(c * kh * kw * min(nb, hi - lo) * px,
                                                     xp.dtype)
        out = np.empty(cout * min(nb, hi - lo) * px, xp.dtype)
        for a, b in blocks(lo, hi, nb):
            cols = _columns(win, a, b, groups, kept, buf)
            o = out[:cout * (b - a) * px].reshape(groups, cout // groups, (b - a) * px)
            np.matmul(w_g, cols, out=o)
            o4 = o.reshape(cout, b - a, ho, wo).transpose(1, 0, 2, 3)  # the block's NCHW
            if bias is None:
                y[a:b] = o4
            else:
                np.add(o4, bias.reshape(1, cout, 1, 1), out=y[a:b])

    if two_cores.ways(n, 2.0 * cout * k * n * px, two_cores.GEMM_MIN_FLOPS) == 2:
        two_cores.halves(n, part)
    else:
        part(0, n)
    ctx.save(False, xp if kept is None else kept, weight, xp.shape, bias is not None)
    return y


def backward(ctx, params: dict, g: np.ndarray, need_x: bool):
    """(padded image gradient or None, weight gradient, bias gradient or None) on the
    whole-batch route."""
    _, saved, weight, xp_shape, has_bias = ctx.saved
    s, d, groups = params["stride"], params["dilation"], params["groups"]
    n, c = xp_shape[:2]
    cout, cg, kh, kw = weight.shape
    ho, wo = g.shape[2], g.shape[3]
    k, px = cg * kh * kw, ho * wo
    threads = two_cores.native_threads(n, 2.0 * cout * k * n * px) if groups == 1 else 1
    if threads > 1 and saved.ndim == 4:  # as the forward decided; it saved the image
        if conv_direct.takes_backward(params, weight.shape, g.dtype, px):
            grads = conv_direct.backward(params, g, saved, weight, has_bias, need_x, threads)
        else:
            grads = _backward_native(params, g, saved, weight, has_bias, need_x, threads)
        if grads is not None:
            return grads
    kept = saved.reshape(groups, k, n * px) if saved.ndim == 6 else None  # else the image
    win = kernels("conv").windows(saved, kh, kw, s, d, ho, wo) if kept is None else None
    w_t = weight.reshape(groups, cout // groups, k).transpose(0, 2, 1)
    gxp = np.zeros(xp_shape, g.dtype) if need_x else None
    nb = n if kept is not None else block_images(c * kh * kw * px * (2 if need_x else 1),
                                                 g.dtype.itemsize)

    def part(lo: int, hi: int) -> tuple:  # images lo … hi-1: their (G, k, Cout/G), (Cout,)
        buf = np.empty(c * kh * kw * min(nb, hi - lo) * px, g.dtype) if win is not None else None
        gbuf = np.empty(cout * min(nb, hi - lo) * px, g.dtype)
        gw_t = np.zeros((groups, k, cout // groups), g.dtype)
        gb = np.zeros(cout, g.dtype)
        for a, b in blocks(lo, hi, nb):
            gcn = gbuf[:cout * (b - a) * px].reshape(cout, b - a, ho, wo)
            gcn[...] = g[a:b].transpose(1, 0, 2, 3)  # the block's gradient, channels first
            gb += gcn.reshape(cout, -1).sum(axis=1)
            if win is not None:
                cols = _columns(win, a, b, groups, None, buf)
            else:
                assert kept is not None
                cols = kept[:, :, a * px:b * px]
            gs = gcn.reshape(groups, cout // groups, (b - a) * px)
            gw_t += np.matmul(cols, gs.transpose(0, 2, 1))
            if gxp is not None:
                gcols = np.matmul(w_t, gs).reshape(c, kh, kw, b - a, ho, wo)
                kernels("conv").col2im(gcols, s, d, gxp[a:b])
        return gw_t, gb

    split = two_cores.ways(n, 2.0 * cout * k * n * px, two_cores.GEMM_MIN_FLOPS) == 2
    parts = two_cores.halves(n, part) if split else [part(0, n)]
    gw_t = sum(p[0] for p in parts)
    gb = sum(p[1] for p in parts) if has_bias else None
    return gxp, gw_t.transpose(0, 2, 1).reshape(weight.shape), gb


def _forward_native(params: dict, xp: np.ndarray, weight: np.ndarray,
                    bias: np.ndarray | None, y: np.ndarray, threads: int) -> bool:
    """The forward into *y* as one parallel Numba call, its images split over *threads* in
    blocks of columns (:mod:`engine.kernels.conv_gemm`); False (nothing done) while the
    kernel is not compiled yet."""
    from engine.kernels import parallel

    n = xp.shape[0]
    cout, cg, kh, kw = weight.shape
    k, px = cg * kh * kw, y.shape[2] * y.shape[3]
    nb = min(block_images(k * px, xp.dtype.itemsize), -(-n // threads))
    b = np.empty(0, xp.dtype) if bias is None else np.ascontiguousarray(bias, xp.dtype)
    wmat = np.ascontiguousarray(weight.reshape(cout, k), xp.dtype)
    args = (np.ascontiguousarray(xp), wmat, b, kh, kw, params["stride"], params["dilation"],
            y.shape[2], y.shape[3], nb, y.reshape(n, cout, px))
    return parallel.run(kernels("conv_gemm").block_forward_parallel, args, n, threads,
                        xp.dtype)


def _backward_native(params: dict, g: np.ndarray, xp: np.ndarray, weight: np.ndarray,
                     has_bias: bool, need_x: bool, threads: int) -> tuple | None:
    """The backward as one parallel Numba call; the parts' weight and bias gradients are
    summed here (in part order). None while the kernel is not compiled yet."""
    from engine.kernels import parallel

    n = xp.shape[0]
    cout, cg, kh, kw = weight.shape
    ho, wo = g.shape[2], g.shape[3]
    k, px, dt = cg * kh * kw, ho * wo, g.dtype
    nb = min(block_images(k * px * (2 if need_x else 1), dt.itemsize), -(-n // threads))
    parts = parallel.bounds(n, threads).shape[0] - 1
    gws = np.zeros((parts, cout, k), dt)
    gbs = np.zeros((parts, cout if has_bias else 0), dt)
    gxp = np.zeros(xp.shape if need_x else (0, 1, 1, 1), dt)
    args = (np.ascontiguousarray(xp, dt), np.ascontiguousarray(weight.reshape(cout, k), dt), kh, kw,
            params["stride"], params["dilation"], ho, wo, nb,
            np.ascontiguousarray(g).reshape(n, cout, px), gws, gbs, gxp)
    if not parallel.run(kernels("conv_gemm").block_backward_parallel, args, n, threads, dt):
        return None
    gb = gbs.sum(axis=0) if has_bias else None
    return (gxp if need_x else None), gws.sum(axis=0).reshape(weight.shape), gb
