"""The Winograd routes of conv2d: F(2×2, 3×3) and F(2×2, 5×5) (stride 1, no dilation, one
group).

Forward: pad the image into whole 4×4 tiles, transform (``V = Bᵀ d B``, Numba), 16 batched
GEMMs ``M = U @ V`` in BLAS (``U = G w Gᵀ``), transform back (``Aᵀ M A``). Backward:
``dM = A g Aᵀ``, then ``dU = dM @ Vᵀ`` (weight gradient, ``Gᵀ dU G``) and, unless x is data,
``dV = Uᵀ @ dM`` scattered back as ``B dV Bᵀ``. 16 multiplications per output pair of channels
and 2×2 tile instead of 36 (2.25× fewer), and every coefficient is 0, ±1 or ½, so float64
stays at rounding level (the float64 gradient check and torch parity run through it).
See :mod:`engine.kernels.winograd`. 5×5 kernels take F(2×2, 5×5)
(:mod:`engine.kernels.winograd_f25`): 6×6 input tiles, 36 GEMMs, 2.8× fewer multiplications
than im2col, at the cost of costlier transforms and float32 within ~1e-5 (relative to the
largest value) of float64 instead of ~1e-6; the code below is the same for both, with 16 or
36 positions and a halo of 2 or 4.

Both passes run in blocks of images (:func:`block_images`): pad → transform → 16 GEMMs →
transform for one block at a time, in buffers reused from block to block, so the
Winograd-domain arrays (4× the image) stay in the L2 cache instead of streaming through memory,
and no multi-MB array is allocated (and page-faulted in) per call. The backward recomputes
``V`` per block from x rather than saving it (the input transform is the cheapest pass),
unless one block held the whole batch (then that ``V`` is kept).
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np

from engine.ops import two_cores
from engine.ops.kernel_choice import kernels

# Below this many input channels the GEMM routes win (measured per shape, CPU time of forward +
# backward, one thread, float32): the transforms cost O(C·P) and the GEMMs are too thin for
# Winograd's 2.25× fewer multiplications to pay (C = 1 and 3 first layers: 3-10× slower).
MIN_CHANNELS = 8

# Bytes of Winograd-domain arrays per block of images (see block_images). Measured, CPU ms of
# forward + backward on one thread, float32, unblocked → 128 / 512 KiB / 1 / 2 / 4 / 8 MiB:
# 64×16×12² → 32: 4.09 → 4.9 / 4.0 / 3.5 / 3.3 / 3.4 / 3.9; 96×24×10² → 48: 10.1 → 8.8 / 7.6 /
# 6.8 / 6.9 / 7.4 / 8.8; 32×32×16² → 64: 12.5 → 8.8 / 8.8 / 8.8 / 8.6 / 9.3 / 9.8. Smaller
# blocks pay the per-block calls, larger ones spill the 1 MiB L2 (a block's arrays are used in
# turn, so 2 MiB in all still runs mostly from L2).
BLOCK_BYTES = 2 * 1024 * 1024


# 5×5 kernels: below this many input channels the GEMM routes win. Measured, CPU ms of
# forward + backward, one thread, float32, median / min (GEMM route → F(2×2, 5×5)):
# 128×32×12² → 64 (cnn_wide28's second conv) 55.9 / 44.5 → 34.7 / 30.0, without the image
# gradient 30.1 / 28.0 → 25.2 / 22.1; 64×16×12² → 32 pad 2 17.0 / 16.3 → 14.2 / 13.8;
# 32×8×16² → 16 5.7 / 5.4 → 6.1 / 5.5; 64×4×16² → 16 5.0 → 6.8; 128×2×28² → 16 5.9 → 18.0.
MIN_CHANNELS_5X5 = 16


def applies(params: dict, x_shape: tuple, w_shape: tuple) -> bool:
    """Whether conv2d takes a Winograd route for this shape (see :data:`MIN_CHANNELS`)."""
    if params["stride"] != 1 or params["dilation"] != 1 or params["groups"] != 1:
        return False
    if w_shape[2] == 3 and w_shape[3] == 3:
        return x_shape[1] >= MIN_CHANNELS
    return w_shape[2] == 5 and w_shape[3] == 5 and x_shape[1] >= MIN_CHANNELS_5X5


def _transforms(r: int):
    """The transform kernels for an r×r kernel (3 or 5)."""
    return kernels("winograd" if r == 3 else "winograd_f25")


def block_images(channels: int, tiles: int, itemsize: int, positions: int = 16) -> int:
    """Images per block: as many as keep ``positions · channels · tiles`` domain values per
    image (*channels* summed over the arrays a block holds) within :data:`BLOCK_BYTES`, at
    least 1."""
    return max(1, BLOCK_BYTES // (positions * channels * tiles * itemsize))


def blocks(lo: int, hi: int, nb: int):
    """``(start, stop)`` of each block of at most *nb* images in ``lo … hi-1``."""
    return ((a, min(a + nb, hi)) for a in range(lo, hi, nb))


def _spread(channels: int, padded: int, itemsize: int) -> bool:
    """Whether position rows ``channels × padded`` values apart fall in ≥ 16 different 64-byte
    line sets mod 4 KiB (see :func:`padded_tiles`)."""
    lines = channels * padded * itemsize // 64
    return bool((channels * padded * itemsize) % 64) or math.gcd(lines % 64, 64) <= 4


def padded_tiles(channels: int, tiles: int, itemsize: int, *others: int) -> int:
    """Tiles per channel row of the forward's product ``M``: at least *tiles*, so many that
    its 16 or 36 position rows (``channels × padded`` values apart) fall in ≥ 16 different
    64-byte line sets mod 4 KiB, as :func:`engine.kernels.winograd.domain` spaces its rows —
    while ``M`` stays C-contiguous, which the output transform needs to run vectorised.
    *others*: further channel counts whose rows must spread too (arrays sharing the count)."""
    for padded in range(tiles, tiles + 64):
        if all(_spread(ch, padded, itemsize) for ch in (channels, *others)):
            return padded
    return tiles


def out_domain(buf: np.ndarray, positions: int, channels: int, tiles: int) -> np.ndarray:
    """C-contiguous ``(positions, channels, padded_tiles(…))`` view at the start of *buf*
    (which holds ``positions · channels · (tiles + 64)`` values or more)."""
    padded = padded_tiles(channels, tiles, buf.itemsize)
    return buf[:positions * channels * padded].reshape(positions, channels, padded)


def forward(ctx, params: dict, x: np.ndarray, weight: np.ndarray,
            bias: np.ndarray | None) -> np.ndarray:
    """conv2d forward on the Winograd route; saves x and ``U`` for the backward. Large
    batches run as two halves at once (:mod:`engine.ops.two_cores`)."""
    wk = _transforms(weight.shape[2])
    p, halo = params["padding"], wk.HALO
    n, c, h, w_ = x.shape
    cout = weight.shape[0]
    ho, wo = h + 2 * p - halo, w_ + 2 * p - halo
    th, tw = (ho + 1) // 2, (wo + 1) // 2
    t = th * tw  # tiles per image
    u = wk.weights(weight)  # (16 or 36, Cout, C)
    y = np.empty((n, cout, 2 * th, 2 * tw), x.dtype)
    nb = block_images(c + cout, t, x.dtype.itemsize, wk.POSITIONS)
    threads = two_cores.native_threads(n, 2.0 * wk.POSITIONS * cout * c * n * t)
    if threads > 1 and _native_forward(wk, x, u, bias, p, th, tw, nb, y, threads):
        if ho != 2 * th or wo != 2 * tw:
            y = np.ascontiguousarray(y[:, :, :ho, :wo])
        ctx.save("winograd", x, u, x.shape, bias is not None)
        return y
    # one block holds the whole batch: its V is kept for the backward (not recomputed)
    kept = wk.domain(c, n * t, x.dtype) if n <= nb else None

    def part(lo: int, hi: int) -> None:  # images lo … hi-1, in blocks of ≤ nb
        size = min(nb, hi - lo)
        xp = np.zeros((size, c, 2 * th + halo, 2 * tw + halo), x.dtype)  # border stays 0
        v = wk.domain(c, size * t, x.dtype) if kept is None else kept  # (16, C, P)
        mbuf = np.empty(wk.POSITIONS * cout * (size * t + 64), x.dtype)  # see out_domain
        for a, b in blocks(lo, hi, size):
            k = b - a
            m = out_domain(mbuf, wk.POSITIONS, cout, k * t)  # (16, Cout, ≥ k·t)
            xp[:k, :, p:p + h, p:p + w_] = x[a:b]
            vk = v[:, :, :k * t] if kept is None else v[:, :, a * t:b * t]
            wk.transform_in(xp[:k], th, tw, vk)
            np.matmul(u, vk, out=m[:, :, :k * t])
            wk.transform_out(m, th, tw, y[a:b])  # reads the first k·t tiles
            if bias is not None:
                y[a:b] += bias.reshape(1, cout, 1, 1)  # while the block is in cache

    if two_cores.ways(n, 2.0 * wk.POSITIONS * cout * c * n * t,
                      two_cores.WINOGRAD_MIN_FLOPS) == 2:
        two_cores.halves(n, part)
    else:
        part(0, n)
    if ho != 2 * th or wo != 2 * tw:
        y = np.ascontiguousarray(y[:, :, :ho, :wo])
    ctx.save("winograd", x if kept is None else kept, u, x.shape, bias is not None)
    return y


def backward(ctx, params: dict, g: np.ndarray):
    """(gx or None when x is data, gw, gb or None) on the Winograd route, two halves at once
    for large batches (their weight gradients summed)."""
    _, saved, u, x_shape, has_bias = ctx.saved
    wk = _transforms(3 if u.shape[0] == 16 else 5)
    halo = wk.HALO
    kept = saved if saved.ndim == 3 else None  # V (16, C, P), else the image x
    p = params["padding"]
    n, c, h, w_ = x_shape
    cout = u.shape[1]
    ho, wo = g.shape[2], g.shape[3]
    th, tw = (ho + 1) // 2, (wo + 1) // 2
    t = th * tw
    if ho != 2 * th or wo != 2 * tw:
        gp = np.zeros((n, cout, 2 * th, 2 * tw), g.dtype)
        gp[:, :, :ho, :wo] = g
    else:
        gp = np.ascontiguousarray(g)
    need_x = not ctx.needs_input_grad or ctx.needs_input_grad[0]  # False: x is data
    threads = two_cores.native_threads(n, 2.0 * wk.POSITIONS * cout * c * n * t)  # as forward
    if threads > 1 and kept is None:
        grads = _native_backward(wk, saved, u, gp, p, th, tw, has_bias, need_x, threads)
        if grads is not None:
            return grads
    gx = np.empty(x_shape, g.dtype) if need_x else None
    ut = u.transpose(0, 2, 1)  # (16 or 36, C, Cout)
    nb = n if kept is not None else block_images(c * (3 if need_x else 1) + cout, t,
                                                 g.dtype.itemsize, wk.POSITIONS)

    def part(lo: int, hi: int) -> tuple:  # images lo … hi-1: their dU, bias gradient
        size = min(nb, hi - lo)
        xp = np.zeros((size, c, 2 * th + halo, 2 * tw + halo), g.dtype)  # border stays 0
        v = wk.domain(c, size * t, g.dtype) if kept is None else kept  # (16, C, P)
        dmbuf = np.empty(wk.POSITIONS * cout * (size * t + 64), g.dtype)  # see out_domain
        dv = wk.domain(c, size * t, g.dtype) if need_x else None  # (16, C, P)
        dxp = np.empty_like(xp) if need_x else None  # the block's padded input gradient
        du = np.zeros((wk.POSITIONS, cout, c), g.dtype)
        gb = np.zeros(cout, g.dtype)
        for a, b in blocks(lo, hi, size):
            k = b - a
            if has_bias:  # (the padded rows and columns of gp are zeros)
                gb += gp[a:b].reshape(k, cout, -1).sum(axis=2).sum(axis=0)
            dm = out_domain(dmbuf, wk.POSITIONS, cout, k * t)  # (16, Cout, ≥ k·t), C order
            dmk = dm[:, :, :k * t]
            if kept is None:
                vk = v[:, :, :k * t]
                xp[:k, :, p:p + h, p:p + w_] = saved[a:b]
                wk.transform_in(xp[:k], th, tw, vk)
            else:
                vk = v[:, :, a * t:b * t]
            wk.grad_out(gp[a:b], th, tw, dm)  # writes the first k·t tiles
            du += np.matmul(dmk, vk.transpose(0, 2, 1))  # (16, Cout, C)
            if dv is not None and dxp is not None and gx is not None:
                dvk = dv[:, :, :k * t]
                np.matmul(ut, dmk, out=dvk)
                dxp[:k] = 0.0
                wk.grad_in(dvk, th, tw, dxp[:k])
                gx[a:b] = dxp[:k, :, p:p + h, p:p + w_]
        return du, gb

    split = two_cores.ways(n, 2.0 * wk.POSITIONS * cout * c * n * t,
                           two_cores.WINOGRAD_MIN_FLOPS) == 2  # as the forward decided
    parts = two_cores.halves(n, part) if split else [part(0, n)]
    gw = wk.weights_grad(sum(p[0] for p in parts), cout, c)  # (Cout, C, r, r)
    return gx, gw, sum(p[1] for p in parts) if has_bias else None


@cache
def _padding_table(c: int, cout: int, t: int, nb: int, itemsize: int) -> tuple[int, ...]:
    return tuple(padded_tiles(c, k * t, itemsize, cout) for k in range(nb + 1))


def _native_padding(c: int, cout: int, t: int, nb: int, itemsize: int) -> np.ndarray:
    """int64 ``padded[k]``: tile columns of a block of k ≤ nb images (see
    :mod:`engine.kernels.winograd_parts`); the table is worked out once per shape (~60 µs of
    Python, twice a step per layer otherwise)."""
    return np.array(_padding_table(c, cout, t, nb, itemsize), np.int64)


def _native_forward(wk, x: np.ndarray, u: np.ndarray, bias: np.ndarray | None, p: int,
                    th: int, tw: int, nb: int, y: np.ndarray, threads: int) -> bool:
    """The forward into *y* as one parallel Numba call, its images split over *threads*;
    False (nothing done) while the kernel is not compiled yet (:func:`parallel.ready`)."""
    from engine.kernels import parallel

    n, c = x.shape[:2]
    nb = min(nb, -(-n // threads))  # a part of fewer images takes its blocks that size
    padded = _native_padding(c, u.shape[1], th * tw, nb, x.itemsize)
    b = np.empty(0, x.dtype) if bias is None else np.ascontiguousarray(bias, x.dtype)
    args = (wk.HALO + 1, np.ascontiguousarray(x), np.ascontiguousarray(u, x.dtype), b, p, th,
            tw, nb, padded, y)
    return parallel.run(kernels("winograd_parts").forward_parallel, args, n, threads, x.dtype)


def _native_backward(wk, x: np.ndarray, u: np.ndarray, gp: np.ndarray, p: int, th: int,
                     tw: int, has_bias: bool, need_x: bool, threads: int) -> tuple | None:
    """The backward as one parallel Numba call; the parts' dU and bias gradients are summed
    here (in part order). None while the kernel is not compiled yet."""
    from engine.kernels import parallel

    n, c = x.shape[:2]
    cout, dt = u.shape[1], gp.dtype
    nb = block_images(c * (3 if need_x else 1) + cout, th * tw, dt.itemsize, wk.POSITIONS)
    nb = min(nb, -(-n // threads))
    padded = _native_padding(c, cout, th * tw, nb, dt.itemsize)
    parts = parallel.bounds(n, threads).shape[0] - 1
    dus = np.zeros((parts, wk.POSITIONS, cout, c), dt)
    gbs = np.zeros((parts, cout if has_bias else 0), dt)
    gx = np.empty(x.shape if need_x else (0, 1, 1, 1), dt)
    ut = np.ascontiguousarray(u.transpose(0, 2, 1), dt)
    args = (wk.HALO + 1, np.ascontiguousarray(x, dt), ut, gp, p, th, tw, nb, padded, dus, gbs, gx)
    if not parallel.run(kernels("winograd_parts").backward_parallel, args, n, threads, dt):
        return None
    gw = wk.weights_grad(dus.sum(axis=0), cout, c)
    return (gx if need_x else None), gw, gbs.sum(axis=0) if has_bias else None
