"""The Winograd F(2×2, 3×3) route of conv2d (3×3, stride 1, no dilation, one group).

Forward: pad the image into whole 4×4 tiles, transform (``V = Bᵀ d B``, Numba), 16 batched
GEMMs ``M = U @ V`` in BLAS (``U = G w Gᵀ``), transform back (``Aᵀ M A``). Backward:
``dM = A g Aᵀ``, then ``dU = dM @ Vᵀ`` (weight gradient, ``Gᵀ dU G``) and, unless x is data,
``dV = Uᵀ @ dM`` scattered back as ``B dV Bᵀ``. 16 multiplications per output pair of channels
and 2×2 tile instead of 36 (2.25× fewer), and every coefficient is 0, ±1 or ½, so float64
stays at rounding level (the float64 gradient check and torch parity run through it).
See :mod:`engine.kernels.winograd`.

Both passes run in blocks of images (:func:`block_images`): pad → transform → 16 GEMMs →
transform for one block at a time, in buffers reused from block to block, so the
Winograd-domain arrays (4× the image) stay in the L2 cache instead of streaming through memory,
and no multi-MB array is allocated (and page-faulted in) per call. The backward recomputes
``V`` per block from x rather than saving it (the input transform is the cheapest pass),
unless one block held the whole batch (then that ``V`` is kept).
"""

from __future__ import annotations

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


def applies(params: dict, x_shape: tuple, w_shape: tuple) -> bool:
    """Whether conv2d takes the Winograd route for this shape (see :data:`MIN_CHANNELS`)."""
    return (params["stride"] == 1 and params["dilation"] == 1 and params["groups"] == 1
            and w_shape[2] == 3 and w_shape[3] == 3 and x_shape[1] >= MIN_CHANNELS)


def block_images(channels: int, tiles: int, itemsize: int) -> int:
    """Images per block: as many as keep ``16 · channels · tiles`` domain values per image
    (*channels* summed over the arrays a block holds) within :data:`BLOCK_BYTES`, at least 1."""
    return max(1, BLOCK_BYTES // (16 * channels * tiles * itemsize))


def blocks(lo: int, hi: int, nb: int):
    """``(start, stop)`` of each block of at most *nb* images in ``lo … hi-1``."""
    return ((a, min(a + nb, hi)) for a in range(lo, hi, nb))


def forward(ctx, params: dict, x: np.ndarray, weight: np.ndarray,
            bias: np.ndarray | None) -> np.ndarray:
    """conv2d forward on the Winograd route; saves x and ``U`` for the backward. Large
    batches run as two halves at once (:mod:`engine.ops.two_cores`)."""
    wk = kernels("winograd")
    p = params["padding"]
    n, c, h, w_ = x.shape
    cout = weight.shape[0]
    ho, wo = h + 2 * p - 2, w_ + 2 * p - 2
    th, tw = (ho + 1) // 2, (wo + 1) // 2
    t = th * tw  # tiles per image
    u = wk.weights(weight)  # (16, Cout, C)
    y = np.empty((n, cout, 2 * th, 2 * tw), x.dtype)
    nb = block_images(c + cout, t, x.dtype.itemsize)
    # one block holds the whole batch: its V is kept for the backward (not recomputed)
    kept = wk.domain(c, n * t, x.dtype) if n <= nb else None

    def part(lo: int, hi: int) -> None:  # images lo … hi-1, in blocks of ≤ nb
        size = min(nb, hi - lo)
        xp = np.zeros((size, c, 2 * th + 2, 2 * tw + 2), x.dtype)  # the border stays zero
        v = wk.domain(c, size * t, x.dtype) if kept is None else kept  # (16, C, P)
        m = wk.domain(cout, size * t, x.dtype)  # (16, Cout, P)
        for a, b in blocks(lo, hi, size):
            k = b - a
            xp[:k, :, p:p + h, p:p + w_] = x[a:b]
            vk = v[:, :, :k * t] if kept is None else v[:, :, a * t:b * t]
            mk = m[:, :, :k * t]
            wk.transform_in(xp[:k], th, tw, vk)
            np.matmul(u, vk, out=mk)
            wk.transform_out(mk, th, tw, y[a:b])
            if bias is not None:
                y[a:b] += bias.reshape(1, cout, 1, 1)  # while the block is in cache

    if two_cores.ways(n, 32.0 * cout * c * n * t) == 2:
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
    wk = kernels("winograd")
    _, saved, u, x_shape, has_bias = ctx.saved
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
    gx = np.empty(x_shape, g.dtype) if need_x else None
    ut = u.transpose(0, 2, 1)  # (16, C, Cout)
    nb = n if kept is not None else block_images(c * (3 if need_x else 1) + cout, t,
                                                 g.dtype.itemsize)

    def part(lo: int, hi: int) -> tuple:  # images lo … hi-1: their dU, bias gradient
        size = min(nb, hi - lo)
        xp = np.zeros((size, c, 2 * th + 2, 2 * tw + 2), g.dtype)  # the border stays zero
        v = wk.domain(c, size * t, g.dtype) if kept is None else kept  # (16, C, P)
        dm = wk.domain(cout, size * t, g.dtype)  # (16, Cout, P)
        dv = wk.domain(c, size * t, g.dtype) if need_x else None  # (16, C, P)
        dxp = np.empty_like(xp) if need_x else None  # the block's padded input gradient
        du = np.zeros((16, cout, c), g.dtype)
        gb = np.zeros(cout, g.dtype)
        for a, b in blocks(lo, hi, size):
            k = b - a
            if has_bias:  # (the padded rows and columns of gp are zeros)
                gb += gp[a:b].reshape(k, cout, -1).sum(axis=2).sum(axis=0)
            dmk = dm[:, :, :k * t]
            if kept is None:
                vk = v[:, :, :k * t]
                xp[:k, :, p:p + h, p:p + w_] = saved[a:b]
                wk.transform_in(xp[:k], th, tw, vk)
            else:
                vk = v[:, :, a * t:b * t]
            wk.grad_out(gp[a:b], th, tw, dmk)
            du += np.matmul(dmk, vk.transpose(0, 2, 1))  # (16, Cout, C)
            if dv is not None and dxp is not None and gx is not None:
                dvk = dv[:, :, :k * t]
                np.matmul(ut, dmk, out=dvk)
                dxp[:k] = 0.0
                wk.grad_in(dvk, th, tw, dxp[:k])
                gx[a:b] = dxp[:k, :, p:p + h, p:p + w_]
        return du, gb

    flops = 32.0 * cout * c * n * t * (2 if need_x else 1)
    parts = two_cores.halves(n, part) if two_cores.ways(n, flops) == 2 else [part(0, n)]
    gw = wk.weights_grad(sum(p[0] for p in parts), cout, c)  # (Cout, C, 3, 3)
    return gx, gw, sum(p[1] for p in parts) if has_bias else None
