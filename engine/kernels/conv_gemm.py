"""The GEMM routes of conv2d as one Numba call per pass, their images split over the cores
(:mod:`engine.kernels.parallel`).

Per image (``forward_part`` / ``backward_part``): its columns ``(C·kh·kw, Ho·Wo)`` built in a
buffer that stays in cache, one GEMM (:func:`engine.kernels.blas.gemm`, one thread inside
each worker) straight into the NCHW output, the bias added while the output is in cache. The
backward rebuilds each image's columns (or reads the ones the forward kept), adds its
weight-gradient GEMM into its part's accumulator and scatters ``Wᵀ·g`` back into the image
gradient (col2im).

Whole blocks of images (``block_forward_part`` / ``block_backward_part``, for wide inputs and
tiny outputs, where a GEMM per image would be too thin): the columns of *nb* images side by
side ``(C·kh·kw, nb·Ho·Wo)``, one GEMM per block, the result moved into NCHW.

Parts own disjoint images, so only the weight and bias gradients are summed, per part, by the
caller. Layouts: padded image ``xp (N, C, Hp, Wp)``; weights ``wmat (Cout, C·kh·kw)``; output
and gradient ``(N, Cout, Ho·Wo)``; kept columns ``(N, C·kh·kw, Ho·Wo)``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from engine.kernels.blas import gemm
from engine.kernels.lane_sums import total


@njit(cache=True, nogil=True)
def _phases(xp, b, s):
    # image b of xp (N, C, Hp, Wp) split into its stride-s phases (C, s, s, ⌈Hp/s⌉, ⌈Wp/s⌉):
    # ph[c, pi, pj, y, x] = xp[b, c, y·s + pi, x·s + pj] (entries past the image unset)
    c_n, hp, wp = xp.shape[1], xp.shape[2], xp.shape[3]
    ph = np.empty((c_n, s, s, (hp + s - 1) // s, (wp + s - 1) // s), xp.dtype)
    for ch in range(c_n):
        for y in range(hp):
            row = xp[b, ch, y]
            for pj in range(s):
                dst = ph[ch, y % s, pj, y // s]
                for x in range((wp - pj + s - 1) // s):
                    dst[x] = row[x * s + pj]
    return ph


@njit(cache=True, nogil=True)
def _columns(xp, b, kh, kw, s, d, ho, wo, cols, off=0):
    # im2col: image b of xp (N, C, Hp, Wp) → columns off … off + Ho·Wo − 1 of cols
    # (C·kh·kw, ≥ Ho·Wo). The stride-1 loops are a nest of their own, with no branch inside:
    # they vectorise (forward of 64×1×24² 5×5 → 16 on one thread, GEMMs and bias included:
    # 0.92 → 0.39 ms against one nest branching on the stride per row). A larger stride
    # (dilation 1) reads the image's stride phases (_phases) with the same unit-stride copies:
    # tap (i, j) of output (y, x) is phase (i mod s, j mod s) at (y + i div s, x + j div s)
    # (3×54² 7×7 stride 2 → 147 × 24² columns: 73 → 25 µs).
    r = 0
    if s == 1 and d == 1:
        for ch in range(xp.shape[1]):
            plane = xp[b, ch]
            for i in range(kh):
                for j in range(kw):
                    line = cols[r]
                    for y in range(ho):
                        src = plane[y + i]
                        q = off + y * wo
                        for x in range(wo):
                            line[q + x] = src[x + j]
                    r += 1
    elif d == 1:
        ph = _phases(xp, b, s)
        for ch in range(xp.shape[1]):  # taps i = a·s + pi, j = c·s + pj: loop counters, so
            for pi in range(s):  # LLVM sees a, c ≥ 0 and drops the negative-index checks
                for a in range((kh - pi + s - 1) // s):
                    for pj in range(s):
                        plane = ph[ch, pi, pj]
                        for c in range((kw - pj + s - 1) // s):
                            line = cols[(ch * kh + a * s + pi) * kw + c * s + pj]
                            for y in range(ho):
                                src = plane[y + a]
                                q = off + y * wo
                                for x in range(wo):
                                    line[q + x] = src[x + c]
    else:
        for ch in range(xp.shape[1]):
            plane = xp[b, ch]
            for i in range(kh):
                for j in range(kw):
                    line = cols[r]
                    for y in range(ho):
                        src = plane[y * s + i * d]
                        q = off + y * wo
                        for x in range(wo):
                            line[q + x] = src[x * s + j * d]
                    r += 1


@njit(cache=True, nogil=True)
def _scatter(gcols, b, kh, kw, s, d, ho, wo, gxp, off=0):
    # col2im: columns off … off + Ho·Wo − 1 of gcols accumulated into image b of gxp, the
    # loops as in _columns (a larger stride sums into zeroed phases, then adds them back)
    r = 0
    if s == 1 and d == 1:
        for ch in range(gxp.shape[1]):
            plane = gxp[b, ch]
            for i in range(kh):
                for j in range(kw):
                    line = gcols[r]
                    for y in range(ho):
                        dst = plane[y + i]
                        q = off + y * wo
                        for x in range(wo):
                            dst[x + j] += line[q + x]
                    r += 1
    elif d == 1:
        c_n, hp, wp = gxp.shape[1], gxp.shape[2], gxp.shape[3]
        ph = np.zeros((c_n, s, s, (hp + s - 1) // s, (wp + s - 1) // s), gxp.dtype)
        for ch in range(c_n):
            for pi in range(s):
                for a in range((kh - pi + s - 1) // s):
                    for pj in range(s):
                        plane = ph[ch, pi, pj]
                        for c in range((kw - pj + s - 1) // s):
                            line = gcols[(ch * kh + a * s + pi) * kw + c * s + pj]
                            for y in range(ho):
                                dst = plane[y + a]
                                q = off + y * wo
                                for x in range(wo):
                                    dst[x + c] += line[q + x]
        for ch in range(c_n):
            for y in range(hp):
                row = gxp[b, ch, y]
                for pj in range(s):
                    src = ph[ch, y % s, pj, y // s]
                    for x in range((wp - pj + s - 1) // s):
                        row[x * s + pj] += src[x]
    else:
        for ch in range(gxp.shape[1]):
            plane = gxp[b, ch]
            for i in range(kh):
                for j in range(kw):
                    line = gcols[r]
                    for y in range(ho):
                        dst = plane[y * s + i * d]
                        q = off + y * wo
                        for x in range(wo):
                            dst[x * s + j * d] += line[q + x]
                    r += 1


@njit(cache=True, nogil=True)
def _weight_gradient(g, cols, gw, gwb_t):
    # gw (Cout, k) += g (Cout, P) · cols (k, P)ᵀ, directly or through the scratch
    # gwb_t (k, Cout): with many column rows and pixels, cols · gᵀ (transposed, then added)
    # is what OpenBLAS runs faster. One thread, time transposed / direct: Cout 16, k 108–288:
    # P 256–576 0.83–0.89, P 1024 0.47–0.53; Cout 32, P 576 0.90–0.94, P 1024 0.62–0.78;
    # Cout 64, P 1024 0.80–0.89; but P ≤ 144 1.0–2.0, k 36–72 mostly 1.0–1.4.
    cout, k, p = g.shape[0], cols.shape[0], cols.shape[1]
    if k >= 96 and p >= 16 * cout:
        gemm(cols, g.T, gwb_t)
        gw += gwb_t.T
    else:
        gemm(g, cols.T, gw, True)


@njit(cache=True, nogil=True)
def forward_part(xp, wmat, bias, kh, kw, s, d, ho, wo, out, kept, lo, hi):
    # images lo … hi-1: out[b] = wmat @ cols(b) (+ bias); the columns written to kept[b] when
    # kept.shape[0] == N (kept for the backward), else kept is a (0, k, px) placeholder and
    # each image's columns go to a buffer
    keep = kept.shape[0] == out.shape[0]
    buf = np.empty((wmat.shape[1], ho * wo), out.dtype)
    for b in range(lo, hi):
        cols = kept[b] if keep else buf
        _columns(xp, b, kh, kw, s, d, ho, wo, cols)
        o = out[b]
        gemm(wmat, cols, o)
        if bias.shape[0]:
            for co in range(o.shape[0]):
                bc = bias[co]
                for q in range(o.shape[1]):
                    o[co, q] += bc


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
    gwb_t = np.empty((k, gw.shape[0]), g3.dtype)  # an image's weight gradient, transposed
    wt = wmat.T
    for b in range(lo, hi):
        if keep:
            cols = kept[b]
        else:
            _columns(xp, b, kh, kw, s, d, ho, wo, buf)
            cols = buf
        gimg = g3[b]
        _weight_gradient(gimg, cols, gw, gwb_t)
        for co in range(gb.shape[0]):
            gb[co] += total(gimg[co])
        if gxp.shape[0]:
            gemm(wt, gimg, gcols)
            _scatter(gcols, b, kh, kw, s, d, ho, wo, gxp)


@njit(cache=True, nogil=True, parallel=True)
def backward_parallel(xp, kept, wmat, kh, kw, s, d, ho, wo, g3, gws, gbs, gxp, bounds):
    # part t accumulates into gws[t] (Cout, k) and gbs[t] (Cout,)
    for t in prange(bounds.shape[0] - 1):
        backward_part(xp, kept, wmat, kh, kw, s, d, ho, wo, g3, gws[t], gbs[t], gxp,
                      bounds[t], bounds[t + 1])


@njit(cache=True, nogil=True)
def block_forward_part(xp, wmat, bias, kh, kw, s, d, ho, wo, nb, out, lo, hi):
    # images lo … hi-1 in blocks of ≤ nb: out[b] = wmat @ cols(b) (+ bias), one GEMM a block
    cout, k = wmat.shape
    px = ho * wo
    size = min(nb, hi - lo)
    colbuf = np.empty(k * size * px, xp.dtype)
    obuf = np.empty(cout * size * px, xp.dtype)
    for a in range(lo, hi, size):
        m = min(size, hi - a)
        cols = colbuf[:k * m * px].reshape(k, m * px)
        o = obuf[:cout * m * px].reshape(cout, m * px)
        for i in range(m):
            _columns(xp, a + i, kh, kw, s, d, ho, wo, cols, i * px)
        gemm(wmat, cols, o)
        for i in range(m):
            for co in range(cout):
                bc = bias[co] if bias.shape[0] else 0.0
                for q in range(px):
                    out[a + i, co, q] = o[co, i * px + q] + bc


@njit(cache=True, nogil=True, parallel=True)
def block_forward_parallel(xp, wmat, bias, kh, kw, s, d, ho, wo, nb, out, bounds):
    for t in prange(bounds.shape[0] - 1):
        block_forward_part(xp, wmat, bias, kh, kw, s, d, ho, wo, nb, out, bounds[t],
                           bounds[t + 1])


@njit(cache=True, nogil=True)
def block_backward_part(xp, wmat, kh, kw, s, d, ho, wo, nb, g3, gw, gb, gxp, lo, hi):
    # images lo … hi-1 in blocks of ≤ nb: gw (Cout, k) += g @ colsᵀ, gb += Σ g (when
    # gb.shape[0] > 0), gxp[b] += col2im(wmatᵀ @ g) unless gxp is a (0, …) placeholder
    cout, k = wmat.shape
    px = ho * wo
    size = min(nb, hi - lo)
    colbuf = np.empty(k * size * px, g3.dtype)
    gbuf = np.empty(cout * size * px, g3.dtype)
    gcolbuf = np.empty(k * size * px if gxp.shape[0] else 0, g3.dtype)
    gwb_t = np.empty((k, cout), g3.dtype)  # a block's weight gradient, transposed
    wt = wmat.T
    for a in range(lo, hi, size):
        m = min(size, hi - a)
        cols = colbuf[:k * m * px].reshape(k, m * px)
        gm = gbuf[:cout * m * px].reshape(cout, m * px)
        for i in range(m):
            _columns(xp, a + i, kh, kw, s, d, ho, wo, cols, i * px)
            for co in range(cout):
                for q in range(px):
                    gm[co, i * px + q] = g3[a + i, co, q]
                if gb.shape[0]:
                    gb[co] += total(g3[a + i, co])
        _weight_gradient(gm, cols, gw, gwb_t)
        if gxp.shape[0]:
            gcols = gcolbuf[:k * m * px].reshape(k, m * px)
            gemm(wt, gm, gcols)
            for i in range(m):
                _scatter(gcols, a + i, kh, kw, s, d, ho, wo, gxp, i * px)


@njit(cache=True, nogil=True, parallel=True)
def block_backward_parallel(xp, wmat, kh, kw, s, d, ho, wo, nb, g3, gws, gbs, gxp, bounds):
    # part t accumulates into gws[t] (Cout, k) and gbs[t] (Cout,)
    for t in prange(bounds.shape[0] - 1):
        block_backward_part(xp, wmat, kh, kw, s, d, ho, wo, nb, g3, gws[t], gbs[t], gxp,
                            bounds[t], bounds[t + 1])
