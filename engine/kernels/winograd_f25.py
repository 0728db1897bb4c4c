"""Winograd F(2×2, 5×5) transforms for 5×5 stride-1 convolutions, each with a numpy twin.

The 5×5 sibling of :mod:`engine.kernels.winograd`: each 2×2 output tile comes from a 6×6
input tile, and in the Winograd domain the 100 multiplications per tile and channel pair
become 36 — 36 independent GEMMs ``M[ξν] = U[ξν] @ V[ξν]`` (BLAS) between the transforms here:

    Y = Aᵀ [ Σ_c (G w Gᵀ) ⊙ (Bᵀ d B) ] A

with the Toom-Cook matrices of the points 0, ±1, ±2 and ∞ (Lavin & Gray 2015; the same
``Bᵀ`` as F(4, 3)). ``Bᵀ`` has entries up to 5 and ``G`` fractions down to 1/24, so float32
loses a little more than F(2×2, 3×3) does (measured: forward and gradients within ~1e-5 of
the float64 result relative to their largest value); float64 stays at rounding level.

Backward, as for 3×3: ``dM = A dY Aᵀ`` (:func:`grad_out`), ``dU = dM @ Vᵀ`` (``dW = Gᵀ dU G``),
``dV = Uᵀ @ dM`` scattered back as ``B dV Bᵀ`` onto overlapping 6×6 input tiles
(:func:`grad_in`). Layouts: padded input ``xp (N, C, 2·th + 4, 2·tw + 4)``, outputs
``(N, Cout, 2·th, 2·tw)``, Winograd arrays ``(36, channels, P)`` with ``P`` ordered
``(n, ty, tx)`` and rows padded apart by :func:`domain` (see the 3×3 module on L1 aliasing).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from engine.kernels.winograd import _tiles, kernel_transform, kernel_transform_grad

POSITIONS = 36  # 6×6 transformed values per tile
HALO = 4  # input rows and columns a tile reads beyond its 2×2 outputs

BT = np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
               [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], np.float64)
G = np.array([[1 / 4, 0, 0, 0, 0],
              [-1 / 6, -1 / 6, -1 / 6, -1 / 6, -1 / 6],
              [-1 / 6, 1 / 6, -1 / 6, 1 / 6, -1 / 6],
              [1 / 24, 1 / 12, 1 / 6, 1 / 3, 2 / 3],
              [1 / 24, -1 / 12, 1 / 6, -1 / 3, 2 / 3],
              [0, 0, 0, 0, 1]], np.float64)
AT = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 1]], np.float64)

# Constants as float32, so float32 tiles stay float32 (8 lanes a vector, not 4 float64 ones)
# and float64 ones float64 (float32 × float64 is float64); each is exact. Used by Aᵀ, A and B.
_2, _4, _5 = np.float32(2.0), np.float32(4.0), np.float32(5.0)


def domain(channels: int, tiles: int, dtype) -> np.ndarray:
    """An uninitialised Winograd-domain array ``(36, channels, tiles)`` whose 36 position
    rows start 320 bytes (mod 4 KiB) apart, so the transforms' streams do not alias."""
    item = np.dtype(dtype).itemsize
    row = channels * tiles
    pad = ((320 - row * item) % 4096) // item
    return np.empty((POSITIONS, row + pad), dtype)[:, :row].reshape(POSITIONS, channels, tiles)


def weights(w: np.ndarray) -> np.ndarray:
    """Transformed kernels ``U (36, Cout, C)`` of ``w (Cout, C, 5, 5)``: ``G w Gᵀ``."""
    return kernel_transform(G.astype(w.dtype), w)


def weights_grad(du: np.ndarray, cout: int, c: int) -> np.ndarray:
    """``dW (Cout, C, 5, 5) = Gᵀ dU G`` from ``dU (36, Cout, C)``."""
    return kernel_transform_grad(G.astype(du.dtype), du, cout, c)


@njit(cache=True, nogil=True, inline="always")
def _bt(d0, d1, d2, d3, d4, d5):
    """Bᵀ applied to a 6-vector, in float64 (its float constants): float32 arithmetic here
    took conv2d's float32 torch parity example past PyTorch's tolerance (1.8e-5 against 1e-5);
    the other three transforms keep the input's dtype (:data:`_2`)."""
    return (4.0 * d0 - 5.0 * d2 + d4, d3 + d4 - 4.0 * (d1 + d2), 4.0 * (d1 - d2) - d3 + d4,
            2.0 * (d3 - d1) - d2 + d4, 2.0 * (d1 - d3) - d2 + d4, 4.0 * d1 - 5.0 * d3 + d5)


@njit(cache=True, nogil=True)
def transform_in(xp, th, tw, v):
    # xp: (N, C, 2·th+4, 2·tw+4) → v: (36, C, N·th·tw), v[:, c, p] = Bᵀ d B of tile p.
    # Bᵀ down the six rows of a tile row first, along whole image rows (contiguous in x, so
    # the loop vectorises; 1.5-1.8× faster than tile by tile), then Bᵀ across each tile.
    n, c, _, wp = xp.shape
    t = np.empty((6, wp), xp.dtype)  # Bᵀ d of one tile row
    for b in range(n):
        for ch in range(c):
            for ty in range(th):
                y = 2 * ty
                for x in range(wp):
                    e = _bt(xp[b, ch, y, x], xp[b, ch, y + 1, x], xp[b, ch, y + 2, x],
                            xp[b, ch, y + 3, x], xp[b, ch, y + 4, x], xp[b, ch, y + 5, x])
                    t[0, x] = e[0]
                    t[1, x] = e[1]
                    t[2, x] = e[2]
                    t[3, x] = e[3]
                    t[4, x] = e[4]
                    t[5, x] = e[5]
                base = (b * th + ty) * tw
                for i in range(6):
                    for tx in range(tw):
                        x = 2 * tx
                        e = _bt(t[i, x], t[i, x + 1], t[i, x + 2], t[i, x + 3], t[i, x + 4],
                                t[i, x + 5])
                        p = base + tx
                        v[6 * i, ch, p] = e[0]
                        v[6 * i + 1, ch, p] = e[1]
                        v[6 * i + 2, ch, p] = e[2]
                        v[6 * i + 3, ch, p] = e[3]
                        v[6 * i + 4, ch, p] = e[4]
                        v[6 * i + 5, ch, p] = e[5]


def transform_in_ref(xp: np.ndarray, th: int, tw: int) -> np.ndarray:
    """Numpy twin of :func:`transform_in`: ``V (36, C, N·th·tw)``."""
    n, c = xp.shape[:2]
    bt = BT.astype(xp.dtype)
    v = np.einsum("xi,nctsij,yj->xycnts", bt, _tiles(xp, 6, 2, th, tw), bt)
    return v.reshape(POSITIONS, c, n * th * tw)


@njit(cache=True, nogil=True, inline="always")
def _at(a0, a1, a2, a3, a4, a5):
    """Aᵀ applied to a 6-vector."""
    return a0 + a1 + a2 + a3 + a4, a1 - a2 + _2 * (a3 - a4) + a5


@njit(cache=True, nogil=True)
def transform_out(m, th, tw, y):
    # m: (36, Cout, N·th·tw) → y: (N, Cout, 2·th, 2·tw), tile = Aᵀ m A. Per channel in passes
    # along the tiles (contiguous rows: vectorised): Aᵀ down the tile's six columns, Aᵀ along
    # its two rows, then the four outputs interleaved into the image.
    n, c = y.shape[0], y.shape[1]
    q = n * th * tw  # m may hold more tiles per row (padding): the first q are read
    assert m.shape[2] >= q
    k = np.empty((2, 6, q), m.dtype)  # Aᵀ m of every tile of one channel
    o = np.empty((2, 2, q), m.dtype)  # (row, column, tile) of the output
    for ch in range(c):
        for j in range(6):
            m0, m1, m2 = m[j, ch], m[6 + j, ch], m[12 + j, ch]
            m3, m4, m5 = m[18 + j, ch], m[24 + j, ch], m[30 + j, ch]
            k0, k1 = k[0, j], k[1, j]
            for p in range(q):
                k0[p], k1[p] = _at(m0[p], m1[p], m2[p], m3[p], m4[p], m5[p])
        for i in range(2):
            a0, a1, a2, a3, a4, a5 = k[i, 0], k[i, 1], k[i, 2], k[i, 3], k[i, 4], k[i, 5]
            e0, e1 = o[i, 0], o[i, 1]
            for p in range(q):
                e0[p], e1[p] = _at(a0[p], a1[p], a2[p], a3[p], a4[p], a5[p])
        for b in range(n):
            for ty in range(th):
                base = (b * th + ty) * tw
                for i in range(2):
                    r, e0, e1 = y[b, ch, 2 * ty + i], o[i, 0], o[i, 1]
                    for tx in range(tw):
                        r[2 * tx], r[2 * tx + 1] = e0[base + tx], e1[base + tx]


def transform_out_ref(m: np.ndarray, n: int, th: int, tw: int) -> np.ndarray:
    """Numpy twin of :func:`transform_out`: ``(N, Cout, 2·th, 2·tw)``."""
    c = m.shape[1]
    at = AT.astype(m.dtype)
    t = np.einsum("ix,xycnts,jy->cntsij", at, m.reshape(6, 6, c, n, th, tw), at)
    return np.ascontiguousarray(t.transpose(1, 0, 2, 4, 3, 5)).reshape(n, c, 2 * th, 2 * tw)


@njit(cache=True, nogil=True, inline="always")
def _a(g0, g1):
    """A applied to a 2-vector."""
    return g0, g0 + g1, g0 - g1, g0 + _2 * g1, g0 - _2 * g1, g1


@njit(cache=True, nogil=True)
def grad_out(g, th, tw, dm):
    # g: (N, Cout, 2·th, 2·tw) → dm: (36, Cout, ≥ N·th·tw), dm tile = A g Aᵀ (the transpose
    # of transform_out)
    n, c = g.shape[0], g.shape[1]
    for b in range(n):
        for ch in range(c):
            for ty in range(th):
                base = (b * th + ty) * tw
                for tx in range(tw):
                    p = base + tx
                    s0 = _a(g[b, ch, 2 * ty, 2 * tx], g[b, ch, 2 * ty + 1, 2 * tx])
                    s1 = _a(g[b, ch, 2 * ty, 2 * tx + 1], g[b, ch, 2 * ty + 1, 2 * tx + 1])
                    for i in range(6):
                        e = _a(s0[i], s1[i])
                        for j in range(6):
                            dm[6 * i + j, ch, p] = e[j]


def grad_out_ref(g: np.ndarray, th: int, tw: int) -> np.ndarray:
    """Numpy twin of :func:`grad_out`: ``dM (36, Cout, N·th·tw)``."""
    n, c = g.shape[:2]
    at = AT.astype(g.dtype)
    dm = np.einsum("ix,nctsij,jy->xycnts", at, _tiles(g, 2, 2, th, tw), at)
    return dm.reshape(POSITIONS, c, n * th * tw)


@njit(cache=True, nogil=True, inline="always")
def _b(e0, e1, e2, e3, e4, e5):
    """B applied to a 6-vector (the transpose of :func:`_bt`)."""
    return (_4 * e0, _4 * (e2 - e1 + e5) + _2 * (e4 - e3), -_5 * e0 - _4 * (e1 + e2) - e3 - e4,
            e1 - e2 + _2 * (e3 - e4) - _5 * e5, e0 + e1 + e2 + e3 + e4, e5)


@njit(cache=True, nogil=True)
def grad_in(dv, th, tw, dxp):
    # dv: (36, C, N·th·tw) → accumulated into dxp: (N, C, 2·th+4, 2·tw+4) (zero-filled),
    # tile += B dv Bᵀ (the transpose of transform_in, in the reverse order: B across each tile
    # into a tile row's six rows, then B down them along whole image rows, vectorised)
    n, c, _, wp = dxp.shape
    t = np.empty((6, wp), dxp.dtype)  # dv Bᵀ of one tile row, overlapping tiles summed
    for b in range(n):
        for ch in range(c):
            for ty in range(th):
                base = (b * th + ty) * tw
                t[:, :] = 0.0
                for i in range(6):
                    for tx in range(tw):
                        p = base + tx
                        e = _b(dv[6 * i, ch, p], dv[6 * i + 1, ch, p], dv[6 * i + 2, ch, p],
                               dv[6 * i + 3, ch, p], dv[6 * i + 4, ch, p], dv[6 * i + 5, ch, p])
                        x = 2 * tx
                        t[i, x] += e[0]
                        t[i, x + 1] += e[1]
                        t[i, x + 2] += e[2]
                        t[i, x + 3] += e[3]
                        t[i, x + 4] += e[4]
                        t[i, x + 5] += e[5]
                y = 2 * ty
                for x in range(wp):
                    e = _b(t[0, x], t[1, x], t[2, x], t[3, x], t[4, x], t[5, x])
                    dxp[b, ch, y, x] += e[0]
                    dxp[b, ch, y + 1, x] += e[1]
                    dxp[b, ch, y + 2, x] += e[2]
                    dxp[b, ch, y + 3, x] += e[3]
                    dxp[b, ch, y + 4, x] += e[4]
                    dxp[b, ch, y + 5, x] += e[5]


def grad_in_ref(dv: np.ndarray, n: int, th: int, tw: int) -> np.ndarray:
    """Numpy twin of :func:`grad_in`: the padded image gradient ``(N, C, 2·th+4, 2·tw+4)``."""
    c = dv.shape[1]
    bt = BT.astype(dv.dtype)
    tiles = np.einsum("xi,xycnts,yj->nctsij", bt, dv.reshape(6, 6, c, n, th, tw), bt)
    dxp = np.zeros((n, c, 2 * th + HALO, 2 * tw + HALO), dv.dtype)
    for ty in range(th):
        for tx in range(tw):
            dxp[:, :, 2 * ty:2 * ty + 6, 2 * tx:2 * tx + 6] += tiles[:, :, ty, tx]
    return dxp
