"""Max- and average-pool forward/backward kernels over NCHW images, each with a numpy twin.

The 2×2 stride-2 pools (the common case) have their own one-pass kernels: max pooling keeps a
uint8 position (0 … 3) per window for the backward; the general kernels take any square window,
stride and (pre-applied) padding, max pooling keeping the flat argmax.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from engine.kernels.conv import col2im_ref, im2col, windows


@njit(cache=True, nogil=True)
def max_pool_fwd(xp, kh, kw, stride, out, arg):
    # xp: (N, C, Hp, Wp) padded with -inf; out: (N, C, Ho, Wo); arg: flat index into Hp·Wp
    n, c, hp, wp = xp.shape
    ho, wo = out.shape[2], out.shape[3]
    for b in range(n):
        for ch in range(c):
            for y in range(ho):
                for x in range(wo):
                    best = -np.inf
                    at = (y * stride) * wp + x * stride
                    for i in range(kh):
                        r = y * stride + i
                        for j in range(kw):
                            q = x * stride + j
                            val = xp[b, ch, r, q]
                            if val > best:
                                best = val
                                at = r * wp + q
                    out[b, ch, y, x] = best
                    arg[b, ch, y, x] = at


@njit(cache=True, nogil=True)
def max_pool_bwd(g, arg, dxp):  # dxp: (N, C, Hp, Wp) zero-filled
    n, c, ho, wo = g.shape
    wp = dxp.shape[3]
    for b in range(n):
        for ch in range(c):
            for y in range(ho):
                for x in range(wo):
                    a = arg[b, ch, y, x]
                    dxp[b, ch, a // wp, a % wp] += g[b, ch, y, x]


# Output planes of at least this many windows take the deinterleaved pass of max_pool2_fwd
# (its four scratch rows cost more than they save on tiny planes: 64×8×7×9 0.016 → 0.042 ms).
MIN_PLANE_DEINTERLEAVED = 16


@njit(cache=True, nogil=True, error_model="numpy")
def max_pool2_fwd(x, out, pos):
    # the 2×2, stride-2 window without padding: out = the first maximum of each window,
    # pos = its place 0 … 3 (row-major) as uint8; like max_pool_fwd, NaN never wins.
    # Each image plane's four window corners are first copied apart into contiguous rows
    # (a, b: the top row's even and odd pixels, c, d: the bottom row's), so that the
    # comparisons run as one vectorised loop over the plane with selects instead of a branch
    # per pixel: one thread, 32×16×24² 0.43 → 0.17 ms, 64×32×12² 0.47 → 0.29, 128×32×24²
    # 3.9 → 1.3 (one branchy loop per row, against this; Zen 3)
    n, c, ho, wo = out.shape
    m = ho * wo
    if m < MIN_PLANE_DEINTERLEAVED:
        _max_pool2_fwd_rows(x, out, pos)
        return
    a = np.empty(m, x.dtype)
    b = np.empty(m, x.dtype)
    cc = np.empty(m, x.dtype)
    d = np.empty(m, x.dtype)
    lowest = x.dtype.type(-np.inf)
    for im in range(n):
        for ch in range(c):
            plane = x[im, ch]
            for y in range(ho):
                r0 = plane[2 * y]
                r1 = plane[2 * y + 1]
                at = y * wo
                for j in range(wo):
                    a[at + j] = r0[2 * j]
                    b[at + j] = r0[2 * j + 1]
                    cc[at + j] = r1[2 * j]
                    d[at + j] = r1[2 * j + 1]
            o = out[im, ch].ravel()  # views: out and pos are C-contiguous
            q = pos[im, ch].ravel()
            for j in range(m):
                v0, v1, v2, v3 = a[j], b[j], cc[j], d[j]
                best = v0 if v0 > lowest else lowest  # NaN → -inf: it never wins
                where = np.int32(0)
                t = v1 > best
                best = v1 if t else best
                where = np.int32(1) if t else where
                t = v2 > best
                best = v2 if t else best
                where = np.int32(2) if t else where
                t = v3 > best
                best = v3 if t else best
                where = np.int32(3) if t else where
                o[j] = best
                q[j] = np.uint8(where)


@njit(cache=True, nogil=True, error_model="numpy")
def _max_pool2_fwd_rows(x, out, pos):
    # max_pool2_fwd for tiny planes: a branch per window, row by row
    n, c, ho, wo = out.shape
    for b in range(n):
        for ch in range(c):
            for y in range(ho):
                r0 = x[b, ch, 2 * y]
                r1 = x[b, ch, 2 * y + 1]
                o = out[b, ch, y]
                q = pos[b, ch, y]
                for j in range(wo):
                    best = -np.inf
                    at = 0
                    v = r0[2 * j]
                    if v > best:
                        best = v
                    v = r0[2 * j + 1]
                    if v > best:
                        best = v
                        at = 1
                    v = r1[2 * j]
                    if v > best:
                        best = v
                        at = 2
                    v = r1[2 * j + 1]
                    if v > best:
                        best = v
                        at = 3
                    o[j] = best
                    q[j] = at


@njit(cache=True, nogil=True, error_model="numpy")
def max_pool2_bwd(g, pos, dx):
    # the 2×2, stride-2 window: each image plane's covered pixels zeroed (a vectorised sweep),
    # then every gradient stored at its window's maximum (one scattered store each; g times a
    # 0/1 mask per pixel measured 0.46 ms against 0.23 on 32×32×32×32, one thread); rows /
    # columns past 2·Ho, 2·Wo are left to the caller
    n, c, ho, wo = g.shape
    z = dx.dtype.type(0)
    for b in range(n):
        for ch in range(c):
            plane = dx[b, ch]
            for y in range(2 * ho):
                row = plane[y]
                for x in range(2 * wo):
                    row[x] = z
            for y in range(ho):
                gr = g[b, ch, y]
                q = pos[b, ch, y]
                for j in range(wo):
                    a = q[j]
                    plane[2 * y + (a >> 1), 2 * j + (a & 1)] = gr[j]


@njit(cache=True, nogil=True, parallel=True)
def max_pool2_fwd_parallel(x, out, pos, bounds):
    # max_pool2_fwd over blocks of images bounds[t] … bounds[t+1] − 1, one per thread
    for t in prange(bounds.shape[0] - 1):
        lo, hi = bounds[t], bounds[t + 1]
        max_pool2_fwd(x[lo:hi], out[lo:hi], pos[lo:hi])


@njit(cache=True, nogil=True, parallel=True)
def max_pool2_bwd_parallel(g, pos, dx, bounds):
    for t in prange(bounds.shape[0] - 1):
        lo, hi = bounds[t], bounds[t + 1]
        max_pool2_bwd(g[lo:hi], pos[lo:hi], dx[lo:hi])


@njit(cache=True, nogil=True, parallel=True)
def avg_pool2_fwd_parallel(xp, div, out, bounds):
    for t in prange(bounds.shape[0] - 1):
        lo, hi = bounds[t], bounds[t + 1]
        avg_pool2_fwd(xp[lo:hi], div, out[lo:hi])


@njit(cache=True, nogil=True, parallel=True)
def avg_pool2_bwd_parallel(g, scale, dx, bounds):
    for t in prange(bounds.shape[0] - 1):
        lo, hi = bounds[t], bounds[t + 1]
        avg_pool2_bwd(g[lo:hi], scale, dx[lo:hi])


def max_pool_fwd_ref(xp: np.ndarray, kh: int, kw: int, stride: int, ho: int, wo: int):
    """(out, arg) like :func:`max_pool_fwd` (first maximum wins)."""
    win = im2col(xp, kh, kw, stride, 1, ho, wo)  # (C, kh, kw, N, Ho, Wo)
    n, c = xp.shape[:2]
    flat = win.reshape(c, kh * kw, n, ho, wo).transpose(2, 0, 1, 3, 4)  # (N, C, k, Ho, Wo)
    k = flat.argmax(axis=2)
    out = np.take_along_axis(flat, k[:, :, None], axis=2)[:, :, 0]
    ys = np.arange(ho)[:, None] * stride + k // kw
    xs = np.arange(wo)[None, :] * stride + k % kw
    return out, (ys * xp.shape[3] + xs).astype(np.int64)


def max_pool_bwd_ref(g: np.ndarray, arg: np.ndarray, hp: int, wp: int) -> np.ndarray:
    n, c = g.shape[:2]
    dxp = np.zeros((n * c, hp * wp), g.dtype)
    rows = np.repeat(np.arange(n * c), g.shape[2] * g.shape[3])
    np.add.at(dxp, (rows, arg.reshape(-1)), g.reshape(-1))
    return dxp.reshape(n, c, hp, wp)


@njit(cache=True, nogil=True, error_model="numpy")
def avg_pool_fwd(xp, k, stride, div, out):
    # xp: (N, C, Hp, Wp) zero-padded → out: (N, C, Ho, Wo) = window sums / div, the taps added
    # in (i, j) order like the numpy twin; the output row innermost so LLVM vectorises it, or,
    # for windows wider than the output row (a global pool: 64×64×8² with k 8, 4.5× PyTorch's
    # time that way), the window row innermost
    n, c, ho, wo = out.shape
    for b in range(n):
        for ch in range(c):
            for y in range(ho):
                o = out[b, ch, y]
                o[:] = 0
                for i in range(k):
                    row = xp[b, ch, y * stride + i]
                    if wo >= k:
                        for j in range(k):
                            for x in range(wo):
                                o[x] += row[x * stride + j]
                    else:
                        for x in range(wo):
                            window = row[x * stride:]
                            acc = o[x]
                            for j in range(k):
                                acc += window[j]
                            o[x] = acc
                for x in range(wo):
                    o[x] = o[x] / div


@njit(cache=True, nogil=True, error_model="numpy")
def avg_pool_bwd(gd, k, stride, dxp):
    # gd: (N, C, Ho, Wo) gradient already divided → accumulated into dxp: (N, C, Hp, Wp)
    # (zero-filled), every window's pixels
    n, c, ho, wo = gd.shape
    for b in range(n):
        for ch in range(c):
            for y in range(ho):
                gr = gd[b, ch, y]
                for i in range(k):
                    row = dxp[b, ch, y * stride + i]
                    if wo >= k:
                        for j in range(k):
                            for x in range(wo):
                                row[x * stride + j] += gr[x]
                    else:  # windows wider than the output row: the window row innermost
                        for x in range(wo):
                            window = row[x * stride:]
                            v = gr[x]
                            for j in range(k):
                                window[j] += v


@njit(cache=True, nogil=True, error_model="numpy")
def avg_pool2_fwd(xp, div, out):
    # the 2×2, stride-2 window (most CNNs): out = (x00 + x01 + x10 + x11) / div, one pass
    n, c, ho, wo = out.shape
    for b in range(n):
        for ch in range(c):
            for y in range(ho):
                r0 = xp[b, ch, 2 * y]
                r1 = xp[b, ch, 2 * y + 1]
                o = out[b, ch, y]
                for x in range(wo):
                    o[x] = (r0[2 * x] + r0[2 * x + 1] + r1[2 * x] + r1[2 * x + 1]) / div


@njit(cache=True, nogil=True, error_model="numpy")
def avg_pool2_bwd(g, scale, dx):
    # the 2×2, stride-2 window: every gradient times *scale* (1 / 4, exact) written to its four
    # pixels, one pass without a zero-fill (the windows do not overlap); rows/columns past
    # 2·Ho, 2·Wo are left to the caller
    n, c, ho, wo = g.shape
    sc = g.dtype.type(scale)
    for b in range(n):
        for ch in range(c):
            for y in range(ho):
                r0 = dx[b, ch, 2 * y]
                r1 = dx[b, ch, 2 * y + 1]
                gr = g[b, ch, y]
                for x in range(wo):
                    v = gr[x] * sc
                    r0[2 * x] = v
                    r0[2 * x + 1] = v
                    r1[2 * x] = v
                    r1[2 * x + 1] = v


def avg_pool_fwd_ref(xp: np.ndarray, k: int, stride: int, ho: int, wo: int) -> np.ndarray:
    """Numpy twin of :func:`avg_pool_fwd` before the division: the window sums."""
    win = windows(xp, k, k, stride, 1, ho, wo)  # (C, k, k, N, Ho, Wo)
    return win.sum(axis=(1, 2)).transpose(1, 0, 2, 3)


def avg_pool_bwd_ref(gd: np.ndarray, k: int, stride: int, hp: int, wp: int) -> np.ndarray:
    """Numpy twin of :func:`avg_pool_bwd`: the padded image gradient."""
    cols = np.broadcast_to(gd.transpose(1, 0, 2, 3)[:, None, None], (gd.shape[1], k, k)
                           + (gd.shape[0],) + gd.shape[2:])
    return col2im_ref(cols, stride, 1, hp, wp)
