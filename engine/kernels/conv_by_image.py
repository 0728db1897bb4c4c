"""The per-image GEMM route of conv2d as one Numba call per pass, its images split over the
cores (:mod:`engine.kernels.parallel`).

Per image: its columns ``(C·kh·kw, Ho·Wo)`` built in a buffer that stays in cache, one GEMM
(``np.dot``: SciPy's BLAS, one thread inside each worker) straight into the NCHW output, the
bias added while the output is in cache. The backward rebuilds each image's columns (or reads
the ones the forward kept), adds its weight-gradient GEMM into its part's accumulator and
scatters ``Wᵀ·g`` back into the image gradient (col2im). Parts own disjoint images, so only
the weight and bias gradients are summed, per part, by the caller.

Layouts: padded image ``xp (N, C, Hp, Wp)``; weights ``wmat (Cout, C·kh·kw)``; output and
gradient ``(N, Cout, Ho·Wo)``; kept columns ``(N, C·kh·kw, Ho·Wo)``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, nogil=True)
def _columns(xp, b, kh, kw, s, d, ho, wo, cols):
    # image b of xp (N, C, Hp, Wp) → cols (C·kh·kw, Ho·Wo)
    r = 0
    for ch in range(xp.shape[1]):
        for i in range(kh):
            for j in range(kw):
                for y in range(ho):
                    row = y * s + i * d
                    q = y * wo
                    if s == 1:
                        for x in range(wo):
                            cols[r, q + x] = xp[b, ch, row, x + j * d]
                    else:
                        for x in range(wo):
                            cols[r, q + x] = xp[b, ch, row, x * s + j * d]
                r += 1


@njit(cache=True, nogil=True)
def _scatter(gcols, b, kh, kw, s, d, ho, wo, gxp):
    # gcols (C·kh·kw, Ho·Wo) accumulated into image b of gxp (N, C, Hp, Wp)
    r = 0
    for ch in range(gxp.shape[1]):
        for i in range(kh):
            for j in range(kw):
                for y in range(ho):
                    row = y * s + i * d
                    q = y * wo
                    if s == 1:
                        for x in range(wo):
                            gxp[b, ch, row, x + j * d] += gcols[r, q + x]
                    else:
                        for x in range(wo):
                            gxp[b, ch, row, x * s + j * d] += gcols[r, q + x]
                r += 1


@njit(cache=True, nogil=True)
def forward_part(xp, wmat, bias, kh, kw, s, d, ho, wo, out, kept, lo, hi):
    # images lo … hi-1: out[b] = wmat @ cols(b) (+ bias); cols kept in kept[b] when
    # kept.shape[0] == N (else kept is a (0, k, px) placeholder)
    keep = kept.shape[0] == xp.shape[0]
    buf = np.empty((wmat.shape[1], ho * wo), xp.dtype)
    for b in range(lo, hi):
        cols = kept[b] if keep else buf
        _columns(xp, b, kh, kw, s, d, ho, wo, cols)
        o = out[b]
        np.dot(wmat, cols, o)
        if bias.shape[0]:
            for co in range(o.shape[0]):
                o[co] += bias[co]


@njit(cache=True, nogil=True, parallel=True)
def forward_parallel(xp, wmat, bias, kh, kw, s, d, ho, wo, out, kept, bounds):
    for t in prange(bounds.shape[0] - 1):
        forward_part(xp, wmat, bias, kh, kw, s, d, ho, wo, out, kept, bounds[t], bounds[t + 1])


@njit(cache=True, nogil=True)
def backward_part(xp, kept, wmat, kh, kw, s, d, ho, wo, g3, gw, gb, gxp, lo, hi):
    # images lo … hi-1: gw (Cout, k) += g(b) @ cols(b)ᵀ, gb (Cout,) += Σ g(b) (when
    # gb.shape[0] > 0), and unless gxp is a (0, …) placeholder, gxp[b] += col2im(wmatᵀ @ g(b));
    # columns from kept (N, k, px) when it holds the batch, else rebuilt from xp
    keep = kept.shape[0] == g3.shape[0]
    k, px = wmat.shape[1], ho * wo
    buf = np.empty((k, px), g3.dtype)
    gcols = np.empty((k, px), g3.dtype)
    gwb = np.empty(gw.shape, g3.dtype)
    wt = wmat.T
    for b in range(lo, hi):
        if keep:
            cols = kept[b]
        else:
            _columns(xp, b, kh, kw, s, d, ho, wo, buf)
            cols = buf
        gimg = g3[b]
        np.dot(gimg, cols.T, gwb)
        gw += gwb
        for co in range(gb.shape[0]):
            acc = 0.0
            for q in range(px):
                acc += gimg[co, q]
            gb[co] += acc
        if gxp.shape[0]:
            np.dot(wt, gimg, gcols)
            _scatter(gcols, b, kh, kw, s, d, ho, wo, gxp)


@njit(cache=True, nogil=True, parallel=True)
def backward_parallel(xp, kept, wmat, kh, kw, s, d, ho, wo, g3, gws, gbs, gxp, bounds):
    # part t accumulates into gws[t] (Cout, k) and gbs[t] (Cout,)
    for t in prange(bounds.shape[0] - 1):
        backward_part(xp, kept, wmat, kh, kw, s, d, ho, wo, g3, gws[t], gbs[t], gxp,
                      bounds[t], bounds[t + 1])
