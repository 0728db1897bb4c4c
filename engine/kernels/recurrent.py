"""Recurrent cells over time: Elman RNN, LSTM and GRU, forward and backward through time.

The input projection of every step (``xp = x W_ihᵀ + b``, one BLAS product over all B·T rows)
and the weight gradients (one product each) are computed by the op outside these kernels; the
kernels run the time loop. Its one matrix product per step goes to BLAS through ``np.dot`` in
*unit-major* layout: states are kept transposed, ``(H, B)``, so the product is
``W_hh (G·H, H) @ hᵀ (H, B)`` — a tall-skinny GEMM that OpenBLAS runs about 1.5× faster than
the batch-major ``h (B, H) @ W_hhᵀ`` at B = 16 — and every elementwise pass runs over
contiguous batch rows (vectorised; σ and tanh go through a libm-free ``e^y``, a few ns
instead of ~40 ns per value).

Gate layouts are PyTorch's: LSTM ``(i, f, g, o)``, GRU ``(r, z, n)``. Shapes (all C-contiguous):
input projections ``xpT`` (T, G·H, B); states ``hsT`` / ``csT`` (T, H, B); initial states
``h0T`` / ``c0T`` (H, B); saved activated gates ``gatesT`` (T, G·H, B) and, for the LSTM,
``tcT`` = tanh(c) (T, H, B); ``wh`` is W_hh
(G·H, H) and ``whT`` its transpose (H, G·H). Each kernel has a numpy twin (``*_np``) doing the
same steps with numpy, which the tests compare.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from engine.kernels.parallel import pin_blas  # noqa: F401  (the ops call k.pin_blas())

RELU, TANH = 0, 1
EXP_FLOOR = 36.0  # e^-36 < 3e-16: beyond it the exponential counts as 0
# Reassociation and contraction let LLVM vectorise the passes (no nnan/ninf: the saturation
# below relies on exact comparisons).
_FAST = {"reassoc", "contract", "nsz", "arcp"}
_JIT: dict[str, Any] = {"cache": True, "nogil": True, "error_model": "numpy", "fastmath": _FAST}


LN2_HI = 0.6931471803691238  # ln 2 = HI + LO, HI with 20 trailing zero bits (k·HI exact)
LN2_LO = 1.9082149292705877e-10
INV_LN2 = 1.4426950408889634


@njit(inline="always", **_JIT)
def _exp_neg(y):
    """e^y for y in [-36, 0] to ~1 ulp without libm: y = r − k·ln 2 (|r| ≤ ln2/2), a degree-12
    Taylor polynomial in r, times 2^-k written out bit by bit (a loop or a pow blocks SIMD).
    (The squaring form of :func:`engine.kernels.elementwise._exp_nonpos` amplifies rounding
    256×, which float64 central differences would see as noise.)"""
    k = np.floor(y * -INV_LN2 + 0.5)  # 0 … 52
    r = y + k * LN2_HI + k * LN2_LO
    p = 1.0 + r * (1.0 + r * (1.0 / 2 + r * (1.0 / 6 + r * (1.0 / 24 + r * (1.0 / 120 + r * (
        1.0 / 720 + r * (1.0 / 5040 + r * (1.0 / 40320 + r * (1.0 / 362880 + r * (
            1.0 / 3628800 + r * (1.0 / 39916800 + r * (1.0 / 479001600))))))))))))
    scale = 1.0
    if k >= 32.0:
        k -= 32.0
        scale *= 2.0 ** -32
    if k >= 16.0:
        k -= 16.0
        scale *= 2.0 ** -16
    if k >= 8.0:
        k -= 8.0
        scale *= 2.0 ** -8
    if k >= 4.0:
        k -= 4.0
        scale *= 2.0 ** -4
    if k >= 2.0:
        k -= 2.0
        scale *= 0.25
    if k >= 1.0:
        scale *= 0.5
    return p * scale


@njit(inline="always", **_JIT)
def _sigmoid(x):
    """σ(x) in float64 through the libm-free e^{-|x|} (vectorisable; error ~1 ulp)."""
    a = abs(x)
    e = _exp_neg(-min(a, EXP_FLOOR)) if a < EXP_FLOOR else 0.0
    s = 1.0 / (1.0 + e)
    return s if x >= 0.0 else e * s


@njit(inline="always", **_JIT)
def _tanh(x):
    """tanh(x) = sign(x)·(1 − e^{−2|x|}) / (1 + e^{−2|x|}), libm-free like :func:`_sigmoid`."""
    a = 2.0 * abs(x)
    e = _exp_neg(-min(a, EXP_FLOOR)) if a < EXP_FLOOR else 0.0
    t = (1.0 - e) / (1.0 + e)
    return t if x >= 0.0 else -t


@njit(**_JIT)
def _activate(z, out, lo, hi, kind):
    # out[r, :] = act(z[r, :]) for rows lo…hi-1; kind 0 σ, 1 tanh, 2 relu
    for r in range(lo, hi):
        for b in range(z.shape[1]):
            v = z[r, b]
            if kind == 0:
                out[r, b] = _sigmoid(v)
            elif kind == 1:
                out[r, b] = _tanh(v)
            else:
                out[r, b] = v if v > 0.0 else 0.0


# ---------------------------------------------------------------- Elman RNN


@njit(**_JIT)
def rnn_fwd(xpT, wh, h0T, act, hsT):
    # h_t = act(xp_t + W_hh h_{t-1});  xpT (T, H, B) holds both biases
    t_n, n, b_n = xpT.shape
    a = np.empty((n, b_n), xpT.dtype)
    for t in range(t_n):
        np.dot(wh, h0T if t == 0 else hsT[t - 1], a)
        a += xpT[t]
        _activate(a, hsT[t], 0, n, 1 if act == TANH else 2)


@njit(**_JIT)
def rnn_bwd(dhsT, dh_lastT, hsT, whT, act, daT):
    # daT (T, H, B): gradient of each step's pre-activation; returns dh0T (H, B)
    t_n, n, b_n = hsT.shape
    dh = dh_lastT.copy()
    for t in range(t_n - 1, -1, -1):
        for j in range(n):
            for b in range(b_n):
                g = dh[j, b] + dhsT[t, j, b]
                y = hsT[t, j, b]
                if act == TANH:
                    daT[t, j, b] = g * (1.0 - y * y)
                else:
                    daT[t, j, b] = g if y > 0.0 else 0.0
        np.dot(whT, daT[t], dh)
    return dh


def rnn_fwd_np(xpT, wh, h0T, act, hsT):
    h = h0T
    for t in range(xpT.shape[0]):
        v = xpT[t] + wh @ h
        h = hsT[t] = np.tanh(v) if act == TANH else np.maximum(v, 0.0)


def rnn_bwd_np(dhsT, dh_lastT, hsT, whT, act, daT):
    dh = dh_lastT.copy()
    for t in range(hsT.shape[0] - 1, -1, -1):
        g = dh + dhsT[t]
        y = hsT[t]
        daT[t] = g * (1.0 - y * y) if act == TANH else g * (y > 0.0)
        dh = whT @ daT[t]
    return dh


# ---------------------------------------------------------------- LSTM


@njit(**_JIT)
def lstm_fwd(xpT, wh, h0T, c0T, hsT, csT, gatesT, tcT):
    # i, f, o = σ(·), g = tanh(·);  c_t = f c_{t-1} + i g;  h_t = o tanh(c_t)  (tcT: tanh(c_t))
    t_n, g4, b_n = xpT.shape
    n = g4 // 4
    a = np.empty((g4, b_n), xpT.dtype)
    for t in range(t_n):
        np.dot(wh, h0T if t == 0 else hsT[t - 1], a)
        a += xpT[t]
        gates = gatesT[t]
        _activate(a, gates, 0, 2 * n, 0)
        _activate(a, gates, 2 * n, 3 * n, 1)
        _activate(a, gates, 3 * n, g4, 0)
        c_prev = c0T if t == 0 else csT[t - 1]
        c, tc, h = csT[t], tcT[t], hsT[t]
        for j in range(n):
            for b in range(b_n):
                c[j, b] = gates[n + j, b] * c_prev[j, b] + gates[j, b] * gates[2 * n + j, b]
        _activate(c, tc, 0, n, 1)
        for j in range(n):
            for b in range(b_n):
                h[j, b] = gates[3 * n + j, b] * tc[j, b]


@njit(**_JIT)
def lstm_bwd(dhsT, dh_lastT, dc_lastT, gatesT, csT, tcT, c0T, whT, daT):
    # daT (T, 4H, B): gradient of the gate pre-activations; returns (dh0T, dc0T). Each pass
    # touches few arrays, so LLVM vectorises it.
    t_n, n, b_n = csT.shape
    dh = dh_lastT.copy()
    dc = dc_lastT.copy()
    for t in range(t_n - 1, -1, -1):
        gates, tc, da = gatesT[t], tcT[t], daT[t]
        c_prev = c0T if t == 0 else csT[t - 1]
        dh += dhsT[t]
        for j in range(n):  # dc += dh·o·(1 − tanh²c);  d(o) = dh·tanh c·σ'
            o = 3 * n + j
            for b in range(b_n):
                dc[j, b] += dh[j, b] * gates[o, b] * (1.0 - tc[j, b] * tc[j, b])
                da[o, b] = dh[j, b] * tc[j, b] * gates[o, b] * (1.0 - gates[o, b])
        for j in range(n):  # d(i) = dc·g·σ';  d(g) = dc·i·(1 − g²)
            g = 2 * n + j
            for b in range(b_n):
                da[j, b] = dc[j, b] * gates[g, b] * gates[j, b] * (1.0 - gates[j, b])
                da[g, b] = dc[j, b] * gates[j, b] * (1.0 - gates[g, b] * gates[g, b])
        for j in range(n):  # d(f) = dc·c_{t−1}·σ';  dc_{t−1} = dc·f
            f = n + j
            for b in range(b_n):
                da[f, b] = dc[j, b] * c_prev[j, b] * gates[f, b] * (1.0 - gates[f, b])
                dc[j, b] *= gates[f, b]
        np.dot(whT, da, dh)
    return dh, dc


def _sigmoid_np(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def lstm_fwd_np(xpT, wh, h0T, c0T, hsT, csT, gatesT, tcT):
    n = xpT.shape[1] // 4
    h, c = h0T, c0T
    for t in range(xpT.shape[0]):
        a = xpT[t] + wh @ h
        i, f = _sigmoid_np(a[:n]), _sigmoid_np(a[n:2 * n])
        g, o = np.tanh(a[2 * n:3 * n]), _sigmoid_np(a[3 * n:])
        c = csT[t] = f * c + i * g
        tcT[t] = np.tanh(c)
        h = hsT[t] = o * tcT[t]
        gatesT[t] = np.concatenate([i, f, g, o])


def lstm_bwd_np(dhsT, dh_lastT, dc_lastT, gatesT, csT, tcT, c0T, whT, daT):
    n = csT.shape[1]
    dh, dc = dh_lastT.copy(), dc_lastT.copy()
    for t in range(csT.shape[0] - 1, -1, -1):
        i, f, g, o = (gatesT[t, k * n:(k + 1) * n] for k in range(4))
        c_prev = csT[t - 1] if t > 0 else c0T
        tc = tcT[t]
        d_h = dh + dhsT[t]
        d_c = dc + d_h * o * (1.0 - tc * tc)
        daT[t] = np.concatenate([d_c * g * i * (1 - i), d_c * c_prev * f * (1 - f),
                                 d_c * i * (1 - g * g), d_h * tc * o * (1 - o)])
        dc = d_c * f
        dh = whT @ daT[t]
    return dh, dc


# ---------------------------------------------------------------- GRU


@njit(**_JIT)
def gru_fwd(xpT, wh, b_hh, h0T, hsT, gatesT, hnT):
    # r, z = σ(xp + W_hh h + b_hh);  n = tanh(xp_n + r (W_hn h + b_hn));  h' = (1-z) n + z h
    # xpT (T, 3H, B) holds b_ih; hnT (T, H, B) keeps W_hn h + b_hn for the backward
    t_n, g3, b_n = xpT.shape
    n = g3 // 3
    a = np.empty((g3, b_n), xpT.dtype)
    for t in range(t_n):
        h_prev = h0T if t == 0 else hsT[t - 1]
        np.dot(wh, h_prev, a)
        gates = gatesT[t]
        for r in range(2 * n):
            for b in range(b_n):
                gates[r, b] = _sigmoid(xpT[t, r, b] + a[r, b] + b_hh[r])
        for j in range(n):
            for b in range(b_n):
                hh = a[2 * n + j, b] + b_hh[2 * n + j]
                nn = _tanh(xpT[t, 2 * n + j, b] + gates[j, b] * hh)
                z = gates[n + j, b]
                gates[2 * n + j, b] = nn
                hnT[t, j, b] = hh
                hsT[t, j, b] = (1.0 - z) * nn + z * h_prev[j, b]


@njit(**_JIT)
def gru_bwd(dhsT, dh_lastT, gatesT, hnT, hsT, h0T, whT, dxpT, daT):
    # dxpT (T,3H,B): gradient of W_ih x + b_ih; daT (T,3H,B): of W_hh h + b_hh; returns dh0T
    t_n, n, b_n = hsT.shape
    dh = dh_lastT.copy()
    rec = np.empty_like(dh)
    for t in range(t_n - 1, -1, -1):
        gates = gatesT[t]
        h_prev = h0T if t == 0 else hsT[t - 1]
        dx, da = dxpT[t], daT[t]
        for j in range(n):
            for b in range(b_n):
                r = gates[j, b]
                z = gates[n + j, b]
                nn = gates[2 * n + j, b]
                d_h = dh[j, b] + dhsT[t, j, b]
                d_n = d_h * (1.0 - z) * (1.0 - nn * nn)
                d_z = d_h * (h_prev[j, b] - nn) * z * (1.0 - z)
                d_r = d_n * hnT[t, j, b] * r * (1.0 - r)
                dx[j, b] = d_r
                dx[n + j, b] = d_z
                dx[2 * n + j, b] = d_n
                da[j, b] = d_r
                da[n + j, b] = d_z
                da[2 * n + j, b] = d_n * r
                dh[j, b] = d_h * z
        np.dot(whT, da, rec)
        dh += rec
    return dh


def gru_fwd_np(xpT, wh, b_hh, h0T, hsT, gatesT, hnT):
    n = xpT.shape[1] // 3
    h = h0T
    for t in range(xpT.shape[0]):
        a = wh @ h + b_hh[:, None]
        r = _sigmoid_np(xpT[t, :n] + a[:n])
        z = _sigmoid_np(xpT[t, n:2 * n] + a[n:2 * n])
        nn = np.tanh(xpT[t, 2 * n:] + r * a[2 * n:])
        h = hsT[t] = (1.0 - z) * nn + z * h
        gatesT[t] = np.concatenate([r, z, nn])
        hnT[t] = a[2 * n:]


def gru_bwd_np(dhsT, dh_lastT, gatesT, hnT, hsT, h0T, whT, dxpT, daT):
    n = hsT.shape[1]
    dh = dh_lastT.copy()
    for t in range(hsT.shape[0] - 1, -1, -1):
        r, z, nn = (gatesT[t, k * n:(k + 1) * n] for k in range(3))
        h_prev = hsT[t - 1] if t > 0 else h0T
        d_h = dh + dhsT[t]
        d_n = d_h * (1.0 - z) * (1.0 - nn * nn)
        d_z = d_h * (h_prev - nn) * z * (1.0 - z)
        d_r = d_n * hnT[t] * r * (1.0 - r)
        dxpT[t] = np.concatenate([d_r, d_z, d_n])
        daT[t] = np.concatenate([d_r, d_z, d_n * r])
        dh = d_h * z + whT @ daT[t]
    return dh
