"""Winograd F(2×2, 3×3) transforms for 3×3 stride-1 convolutions, each with a numpy twin.

A 3×3 convolution computes each 2×2 output tile from a 4×4 input tile. In the Winograd domain
(Lavin & Gray 2015) the 36 multiplications per tile and channel pair become 16:

    Y = Aᵀ [ Σ_c (G w G ᵀ) ⊙ (Bᵀ d B) ] A

so the channel sum is 16 independent GEMMs, one per tile position ``(ξ, ν)``:
``M[ξν] = U[ξν] @ V[ξν]`` with ``U (16, Cout, C)`` the transformed kernels, ``V (16, C, P)``
the transformed input tiles and ``P = N·th·tw`` the tiles (image, tile row, tile column). The
GEMMs run in BLAS (``np.matmul`` over the 16 positions); these kernels are the transforms
(additions and subtractions only, fused into one pass each, no temporaries).

The backward is the transpose of the same linear maps: ``dM = A dY Aᵀ`` per tile
(:func:`grad_out`), then the weight gradient ``dU = dM @ Vᵀ`` (``dW = Gᵀ dU G``) and the input
gradient ``dV = Uᵀ @ dM`` scattered back as ``B dV Bᵀ`` onto overlapping input tiles
(:func:`grad_in`). Every coefficient is 0, ±1 or ½, so float64 stays at rounding level
(~1e-16 relative; the float64 gradient check runs through this route) and float32 within the
usual float32 tolerance.

Layouts: padded input ``xp (N, C, 2·th + 2, 2·tw + 2)``, outputs ``(N, Cout, 2·th, 2·tw)``
(the caller crops an odd edge), Winograd arrays ``(16, channels, P)`` with ``P`` ordered
``(n, ty, tx)``, allocated by :func:`domain`: each transform reads or writes the 16 positions
of a tile at once, 16 streams one ``channels·P`` block apart; when that block is a multiple of
4 KiB (it usually is: 16·2304 float32 = 144 KiB) all 16 streams map to the same L1 sets and
every access misses (measured: the input transform 1.75 ms, 0.18 ms with rows 320 bytes out
of step; the gradient transform 3.6 → 0.35 ms). :func:`domain` pads the rows apart.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.lib.stride_tricks import as_strided

POSITIONS = 16  # 4×4 transformed values per tile
HALO = 2  # input rows and columns a tile reads beyond its 2×2 outputs

BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float64)
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float64)
AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float64)


def domain(channels: int, tiles: int, dtype) -> np.ndarray:
    """An uninitialised Winograd-domain array ``(16, channels, tiles)`` whose 16 position
    rows start 320 bytes (mod 4 KiB) apart, so the transforms' 16 streams do not alias."""
    item = np.dtype(dtype).itemsize
    row = channels * tiles
    pad = ((320 - row * item) % 4096) // item
    return np.empty((16, row + pad), dtype)[:, :row].reshape(16, channels, tiles)


def kernel_transform(g: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``U (k·k, Cout, C)`` of ``w (Cout, C, r, r)``: ``G w Gᵀ`` for a ``G (k, r)`` (any
    F(m, r)). Two tensordots: about twice as fast as one ``einsum`` for the bench's sizes
    (16×8 … 64×32 channels, one-thread CPU 45 → 18 … 152 → 81 µs; called every step)."""
    k = g.shape[0]
    t = np.tensordot(g, w, axes=(1, 2))  # (k, Cout, C, r)
    u = np.tensordot(t, g, axes=(3, 1))  # (k, Cout, C, k)
    return np.ascontiguousarray(u.transpose(0, 3, 1, 2)).reshape(k * k, w.shape[0], w.shape[1])


def kernel_transform_grad(g: np.ndarray, du: np.ndarray, cout: int, c: int) -> np.ndarray:
    """``dW (Cout, C, r, r) = Gᵀ dU G`` from ``dU (k·k, Cout, C)`` (the adjoint of
    :func:`kernel_transform`)."""
    k = g.shape[0]
    t = np.tensordot(g, du.reshape(k, k, cout, c), axes=(0, 0))  # (r, k, Cout, C)
    u = np.tensordot(t, g, axes=(1, 0))  # (r, Cout, C, r)
    return np.ascontiguousarray(u.transpose(1, 2, 0, 3))


def weights(w: np.ndarray) -> np.ndarray:
    """Transformed kernels ``U (16, Cout, C)`` of ``w (Cout, C, 3, 3)``: ``G w Gᵀ``."""
    return kernel_transform(G.astype(w.dtype), w)


def weights_grad(du: np.ndarray, cout: int, c: int) -> np.ndarray:
    """``dW (Cout, C, 3, 3) = Gᵀ dU G`` from ``dU (16, Cout, C)``."""
    return kernel_transform_grad(G.astype(du.dtype), du, cout, c)


@njit(cache=True, nogil=True, inline="always")
def _bt(d0, d1, d2, d3):
    """Bᵀ applied to a 4-vector."""
    return d0 - d2, d1 + d2, d2 - d1, d1 - d3


@njit(cache=True, nogil=True)
def transform_in(xp, th, tw, v):
    # xp: (N, C, 2·th+2, 2·tw+2) → v: (16, C, N·th·tw), v[:, c, p] = Bᵀ d B of tile p
    n, c = xp.shape[0], xp.shape[1]
    for b in range(n):
        for ch in range(c):
            for ty in range(th):
                base = (b * th + ty) * tw
                y = 2 * ty
                for tx in range(tw):
                    x = 2 * tx
                    p = base + tx
                    # columns of Bᵀ d, then Bᵀ applied to each row of (Bᵀ d)
                    c0 = _bt(xp[b, ch, y, x], xp[b, ch, y + 1, x], xp[b, ch, y + 2, x],
                             xp[b, ch, y + 3, x])
                    c1 = _bt(xp[b, ch, y, x + 1], xp[b, ch, y + 1, x + 1],
                             xp[b, ch, y + 2, x + 1], xp[b, ch, y + 3, x + 1])
                    c2 = _bt(xp[b, ch, y, x + 2], xp[b, ch, y + 1, x + 2],
                             xp[b, ch, y + 2, x + 2], xp[b, ch, y + 3, x + 2])
                    c3 = _bt(xp[b, ch, y, x + 3], xp[b, ch, y + 1, x + 3],
                             xp[b, ch, y + 2, x + 3], xp[b, ch, y + 3, x + 3])
                    for i in range(4):
                        e = _bt(c0[i], c1[i], c2[i], c3[i])
                        v[4 * i, ch, p] = e[0]
                        v[4 * i + 1, ch, p] = e[1]
                        v[4 * i + 2, ch, p] = e[2]
                        v[4 * i + 3, ch, p] = e[3]


def _tiles(a: np.ndarray, size: int, step: int, th: int, tw: int) -> np.ndarray:
    """Read-only view ``(N, C, th, tw, size, size)`` of the tiles of *a*."""
    sn, sc, sh, sw = a.strides
    return as_strided(a, a.shape[:2] + (th, tw, size, size),
                      (sn, sc, sh * step, sw * step, sh, sw), writeable=False)


def transform_in_ref(xp: np.ndarray, th: int, tw: int) -> np.ndarray:
    """Numpy twin of :func:`transform_in`: ``V (16, C, N·th·tw)``."""
    n, c = xp.shape[:2]
    bt = BT.astype(xp.dtype)
    v = np.einsum("xi,nctsij,yj->xycnts", bt, _tiles(xp, 4, 2, th, tw), bt)
    return v.reshape(16, c, n * th * tw)


@njit(cache=True, nogil=True, inline="always")
def _at(a0, a1, a2, a3):
    """Aᵀ applied to a 4-vector."""
    return a0 + a1 + a2, a1 - a2 - a3


@njit(cache=True, nogil=True)
def transform_out(m, th, tw, y):
    # m: (16, Cout, N·th·tw) → y: (N, Cout, 2·th, 2·tw), tile = Aᵀ m A. Per channel: the four
    # outputs of every tile in one pass along the tiles (16 contiguous rows of m, 4 rows out:
    # vectorised), then those rows interleaved into the image — 3-4× faster than tile by tile
    # (one-thread CPU, float32: 18×32 channels×6² tiles 208 → 58 µs, 27×48×5² 346 → 110,
    # 8×64×8² 510 → 120).
    n, c = y.shape[0], y.shape[1]
    q = n * th * tw  # m may hold more tiles per row (padding): the first q are read
    assert m.shape[2] >= q
    o = np.empty((4, q), m.dtype)  # (output position, tile) of one channel
    o0, o1, o2, o3 = o[0], o[1], o[2], o[3]
    for ch in range(c):
        m0, m1, m2, m3 = m[0, ch], m[1, ch], m[2, ch], m[3, ch]
        m4, m5, m6, m7 = m[4, ch], m[5, ch], m[6, ch], m[7, ch]
        m8, m9, m10, m11 = m[8, ch], m[9, ch], m[10, ch], m[11, ch]
        m12, m13, m14, m15 = m[12, ch], m[13, ch], m[14, ch], m[15, ch]
        for p in range(q):  # Aᵀ down each column of the tile, then along its two rows
            k00, k01 = _at(m0[p], m4[p], m8[p], m12[p])
            k10, k11 = _at(m1[p], m5[p], m9[p], m13[p])
            k20, k21 = _at(m2[p], m6[p], m10[p], m14[p])
            k30, k31 = _at(m3[p], m7[p], m11[p], m15[p])
            o0[p], o1[p] = _at(k00, k10, k20, k30)
            o2[p], o3[p] = _at(k01, k11, k21, k31)
        for b in range(n):
            for ty in range(th):
                base = (b * th + ty) * tw
                r0, r1 = y[b, ch, 2 * ty], y[b, ch, 2 * ty + 1]
                for tx in range(tw):
                    r0[2 * tx], r0[2 * tx + 1] = o0[base + tx], o1[base + tx]
                    r1[2 * tx], r1[2 * tx + 1] = o2[base + tx], o3[base + tx]


def transform_out_ref(m: np.ndarray, n: int, th: int, tw: int) -> np.ndarray:
    """Numpy twin of :func:`transform_out`: ``(N, Cout, 2·th, 2·tw)``."""
    c = m.shape[1]
    at = AT.astype(m.dtype)
    t = np.einsum("ix,xycnts,jy->cntsij", at, m.reshape(4, 4, c, n, th, tw), at)
    return np.ascontiguousarray(t.transpose(1, 0, 2, 4, 3, 5)).reshape(n, c, 2 * th, 2 * tw)


@njit(cache=True, nogil=True, inline="always")
def _a(g0, g1):
    """A applied to a 2-vector."""
    return g0, g0 + g1, g0 - g1, -g1


@njit(cache=True, nogil=True)
def grad_out(g, th, tw, dm):
    # g: (N, Cout, 2·th, 2·tw) → dm: (16, Cout, ≥ N·th·tw), dm tile = A g Aᵀ (the transpose
    # of transform_out). Per channel: the tiles' four gradients gathered into rows, then
    # A down the columns and along the rows in passes along the tiles, each writing one
    # contiguous row (vectorised; one stream stored per loop keeps LLVM's alias checks few):
    # 1.3-1.7× the tile-by-tile loop (one-thread CPU, float32, 18×32 channels×6² tiles 96 →
    # 64 µs, 27×48×5² 152 → 115, 5×64×8² 94 → 56) when dm is C-contiguous (out_domain).
    n, c = g.shape[0], g.shape[1]
    q = n * th * tw  # dm may hold more tiles per row (padding): the first q are written
    assert dm.shape[2] >= q
    s = np.empty((8, q), g.dtype)  # rows 0-3: A (g00, g10) of every tile; 4-7: A (g01, g11)
    for ch in range(c):
        g00, g01, g10, g11 = s[0], s[4], s[1], s[5]
        for b in range(n):
            for ty in range(th):
                base = (b * th + ty) * tw
                r0, r1 = g[b, ch, 2 * ty], g[b, ch, 2 * ty + 1]
                for tx in range(tw):
                    g00[base + tx], g01[base + tx] = r0[2 * tx], r0[2 * tx + 1]
                    g10[base + tx], g11[base + tx] = r1[2 * tx], r1[2 * tx + 1]
        for half in range(2):  # A (x0, x1) = (x0, x0 + x1, x0 - x1, -x1), in place
            x0, x1 = s[4 * half], s[4 * half + 1]
            t2, t3 = s[4 * half + 2], s[4 * half + 3]
            for p in range(q):
                t2[p] = x0[p] - x1[p]
            for p in range(q):
                t3[p] = -x1[p]
            for p in range(q):
                x1[p] = x0[p] + x1[p]
        for i in range(4):  # row i of the tile: A (s0[i], s1[i])
            u0, u1 = s[i], s[4 + i]
            e0, e1, e2, e3 = dm[4 * i, ch], dm[4 * i + 1, ch], dm[4 * i + 2, ch], dm[4 * i + 3, ch]
            for p in range(q):
                e0[p] = u0[p]
            for p in range(q):
                e1[p] = u0[p] + u1[p]
            for p in range(q):
                e2[p] = u0[p] - u1[p]
            for p in range(q):
                e3[p] = -u1[p]


def grad_out_ref(g: np.ndarray, th: int, tw: int) -> np.ndarray:
    """Numpy twin of :func:`grad_out`: ``dM (16, Cout, N·th·tw)``."""
    n, c = g.shape[:2]
    at = AT.astype(g.dtype)
    dm = np.einsum("ix,nctsij,jy->xycnts", at, _tiles(g, 2, 2, th, tw), at)
    return dm.reshape(16, c, n * th * tw)


@njit(cache=True, nogil=True, inline="always")
def _b(e0, e1, e2, e3):
    """B applied to a 4-vector (the transpose of :func:`_bt`)."""
    return e0, e1 - e2 + e3, e1 + e2 - e0, -e3


@njit(cache=True, nogil=True)
def grad_in(dv, th, tw, dxp):
    # dv: (16, C, N·th·tw) → accumulated into dxp: (N, C, 2·th+2, 2·tw+2) (zero-filled),
    # tile += B dv Bᵀ (the transpose of transform_in)
    n, c = dxp.shape[0], dxp.shape[1]
    for b in range(n):
        for ch in range(c):
            for ty in range(th):
                base = (b * th + ty) * tw
                y = 2 * ty
                for tx in range(tw):
                    x = 2 * tx
                    p = base + tx
                    k0 = _b(dv[0, ch, p], dv[4, ch, p], dv[8, ch, p], dv[12, ch, p])
                    k1 = _b(dv[1, ch, p], dv[5, ch, p], dv[9, ch, p], dv[13, ch, p])
                    k2 = _b(dv[2, ch, p], dv[6, ch, p], dv[10, ch, p], dv[14, ch, p])
                    k3 = _b(dv[3, ch, p], dv[7, ch, p], dv[11, ch, p], dv[15, ch, p])
                    for i in range(4):
                        e = _b(k0[i], k1[i], k2[i], k3[i])
                        dxp[b, ch, y + i, x] += e[0]
                        dxp[b, ch, y + i, x + 1] += e[1]
                        dxp[b, ch, y + i, x + 2] += e[2]
                        dxp[b, ch, y + i, x + 3] += e[3]


def grad_in_ref(dv: np.ndarray, n: int, th: int, tw: int) -> np.ndarray:
    """Numpy twin of :func:`grad_in`: the padded image gradient ``(N, C, 2·th+2, 2·tw+2)``."""
    c = dv.shape[1]
    bt = BT.astype(dv.dtype)
    tiles = np.einsum("xi,xycnts,yj->nctsij", bt, dv.reshape(4, 4, c, n, th, tw), bt)
    dxp = np.zeros((n, c, 2 * th + 2, 2 * tw + 2), dv.dtype)
    for ty in range(th):
        for tx in range(tw):
            dxp[:, :, 2 * ty:2 * ty + 4, 2 * tx:2 * tx + 4] += tiles[:, :, ty, tx]
    return dxp
