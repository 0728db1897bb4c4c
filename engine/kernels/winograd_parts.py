"""The Winograd routes of conv2d as one Numba call per pass, their images split over the cores
(:mod:`engine.kernels.parallel`); *r* (3 or 5) picks F(2×2, 3×3) (:mod:`.winograd`) or
F(2×2, 5×5) (:mod:`.winograd_f25`).

Each part runs the images ``lo … hi-1`` in blocks of at most *nb*, as
:mod:`engine.ops.conv_winograd` does on one thread: pad the block, transform it, one GEMM per
tile position (:func:`engine.kernels.blas.gemm`, one thread inside each worker), transform back. A
block's Winograd arrays are ``(positions, channels, kp)`` with ``kp = padded[k]`` tile columns
for a block of *k* images (``≥ k·tiles``, chosen by the caller so that the position rows do not
alias in the L1 cache); the columns past ``k·tiles`` are zero, so every GEMM operand is one
contiguous matrix and the padding adds nothing to the weight gradient. The backward recomputes
``V`` per block (the input transform is the cheapest pass) and sums each part's ``dU`` and
bias gradient into that part's own row of *dus* and *gbs*; the caller adds the parts.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from engine.kernels import winograd, winograd_f25
from engine.kernels.blas import gemm
from engine.kernels.lane_sums import total


@njit(cache=True, nogil=True)
def _transform_in(r, xp, th, tw, v):
    if r == 3:
        winograd.transform_in(xp, th, tw, v)
    else:
        winograd_f25.transform_in(xp, th, tw, v)


@njit(cache=True, nogil=True)
def _transform_out(r, m, th, tw, y):
    if r == 3:
        winograd.transform_out(m, th, tw, y)
    else:
        winograd_f25.transform_out(m, th, tw, y)


@njit(cache=True, nogil=True)
def _grad_out(r, g, th, tw, dm):
    if r == 3:
        winograd.grad_out(g, th, tw, dm)
    else:
        winograd_f25.grad_out(g, th, tw, dm)


@njit(cache=True, nogil=True)
def _grad_in(r, dv, th, tw, dxp):
    if r == 3:
        winograd.grad_in(dv, th, tw, dxp)
    else:
        winograd_f25.grad_in(dv, th, tw, dxp)


@njit(cache=True, nogil=True)
def _pad_block(x, a, k, pad, xp):
    # images a … a+k-1 of x into xp[:k] at offset pad (its border stays as it is: zeros)
    for i in range(k):
        for ch in range(x.shape[1]):
            for row in range(x.shape[2]):
                for col in range(x.shape[3]):
                    xp[i, ch, row + pad, col + pad] = x[a + i, ch, row, col]


@njit(cache=True, nogil=True)
def _crop_block(dxp, k, pad, gx, a):
    # gx[a … a+k-1] = dxp[:k] without its pad border
    for i in range(k):
        for ch in range(gx.shape[1]):
            for row in range(gx.shape[2]):
                for col in range(gx.shape[3]):
                    gx[a + i, ch, row, col] = dxp[i, ch, row + pad, col + pad]


@njit(cache=True, nogil=True)
def _zero_columns(d, start):
    # d (P, channels, kp): columns start … kp-1 set to 0
    for q in range(d.shape[0]):
        for ch in range(d.shape[1]):
            for p in range(start, d.shape[2]):
                d[q, ch, p] = 0.0


@njit(cache=True, nogil=True)
def forward_part(r, x, u, bias, pad, th, tw, nb, padded, y, lo, hi):
    # x (N, C, H, W), u (P, Cout, C) → y (N, Cout, 2·th, 2·tw) for images lo … hi-1
    positions, halo = (16, 2) if r == 3 else (36, 4)
    c = x.shape[1]
    cout, t = u.shape[1], th * tw
    size = min(nb, hi - lo)
    xp = np.zeros((size, c, 2 * th + halo, 2 * tw + halo), x.dtype)  # the border stays 0
    vbuf = np.empty(positions * c * padded[size], x.dtype)
    mbuf = np.empty(positions * cout * padded[size], x.dtype)
    for a in range(lo, hi, size):
        k = min(size, hi - a)
        kp, kt = padded[k], k * t
        v = vbuf[:positions * c * kp].reshape(positions, c, kp)
        m = mbuf[:positions * cout * kp].reshape(positions, cout, kp)
        _pad_block(x, a, k, pad, xp)
        _transform_in(r, xp[:k], th, tw, v)
        _zero_columns(v, kt)
        for q in range(positions):
            gemm(u[q], v[q], m[q])
        _transform_out(r, m, th, tw, y[a:a + k])
        if bias.shape[0]:
            for i in range(a, a + k):
                for co in range(cout):
                    bc = bias[co]
                    for row in range(y.shape[2]):
                        for col in range(y.shape[3]):
                            y[i, co, row, col] += bc


@njit(cache=True, nogil=True, parallel=True)
def forward_parallel(r, x, u, bias, pad, th, tw, nb, padded, y, bounds):
    for part in prange(bounds.shape[0] - 1):
        forward_part(r, x, u, bias, pad, th, tw, nb, padded, y, bounds[part], bounds[part + 1])


@njit(cache=True, nogil=True)
def backward_part(r, x, ut, gp, pad, th, tw, nb, padded, du, gb, gx, lo, hi):
    # images lo … hi-1: du (P, Cout, C) += dM @ Vᵀ, gb (Cout,) += Σ g (when gb.shape[0] > 0),
    # and unless gx is a (0, …) placeholder, gx (N, C, H, W) = the image gradient;
    # ut (P, C, Cout) = Uᵀ, gp (N, Cout, 2·th, 2·tw) the gradient padded to whole tiles
    positions, halo = (16, 2) if r == 3 else (36, 4)
    c = x.shape[1]
    cout, t = gp.shape[1], th * tw
    size = min(nb, hi - lo)
    need_x = gx.shape[0] > 0
    xp = np.zeros((size, c, 2 * th + halo, 2 * tw + halo), x.dtype)  # the border stays 0
    vbuf = np.empty(positions * c * padded[size], x.dtype)
    dmbuf = np.empty(positions * cout * padded[size], x.dtype)
    dvbuf = np.empty(positions * c * padded[size] if need_x else 0, x.dtype)
    dxp = np.empty(xp.shape if need_x else (0, 1, 1, 1), x.dtype)
    for a in range(lo, hi, size):
        k = min(size, hi - a)
        kp, kt = padded[k], k * t
        v = vbuf[:positions * c * kp].reshape(positions, c, kp)
        dm = dmbuf[:positions * cout * kp].reshape(positions, cout, kp)
        for i in range(a, a + k):  # (the padded rows and columns of gp are zeros)
            for co in range(gb.shape[0]):
                gb[co] += total(gp[i, co])
        _pad_block(x, a, k, pad, xp)
        _transform_in(r, xp[:k], th, tw, v)
        _grad_out(r, gp[a:a + k], th, tw, dm)
        _zero_columns(v, kt)
        _zero_columns(dm, kt)
        for q in range(positions):
            gemm(dm[q], v[q].T, du[q], True)
        if need_x:
            dv = dvbuf[:positions * c * kp].reshape(positions, c, kp)
            for q in range(positions):
                gemm(ut[q], dm[q], dv[q])
            dxp[:k] = 0.0
            _grad_in(r, dv, th, tw, dxp[:k])
            _crop_block(dxp, k, pad, gx, a)


@njit(cache=True, nogil=True, parallel=True)
def backward_parallel(r, x, ut, gp, pad, th, tw, nb, padded, dus, gbs, gx, bounds):
    for part in prange(bounds.shape[0] - 1):
        backward_part(r, x, ut, gp, pad, th, tw, nb, padded, dus[part], gbs[part], gx,
                      bounds[part], bounds[part + 1])
