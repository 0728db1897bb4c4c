"""Recurrent cells over time: Elman RNN, LSTM and GRU, forward and backward through time.

The input projection of every step (``xp = x W_ihᵀ + b``, one BLAS product over all B·T rows)
and the weight gradients (``dW = daᵀ · rows``, one product each) are computed by the op outside
these kernels; the kernels run only the time loop, whose one matrix product per step (the
recurrent ``h W_hhᵀ``, or ``da W_hh`` backward) goes to BLAS through ``np.dot``. Gate layouts are
PyTorch's: LSTM ``(i, f, g, o)``, GRU ``(r, z, n)``. Arrays are C-contiguous; ``whT`` is
``W_hhᵀ`` ``(H, G·H)`` and ``wh`` is ``W_hh`` ``(G·H, H)``. Each kernel has a numpy twin
(``*_np``) computing the same thing step by step, which the tests compare.

Shapes: x projection ``xp`` (B, T, G·H); states ``hs`` / ``cs`` (B, T, H); initial states
``h0`` / ``c0`` (B, H); saved activated gates (B, T, G·H).
"""

from __future__ import annotations

import numpy as np
from numba import njit

RELU, TANH = 0, 1


@njit(cache=True, nogil=True, inline="always")
def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # stable for any |x|


# ---------------------------------------------------------------- Elman RNN


@njit(cache=True, nogil=True)
def rnn_fwd(xp, whT, h0, act, hs):
    # h_t = act(xp_t + h_{t-1} W_hhᵀ);  xp (B,T,H) holds both biases
    b_n, t_n, h_n = xp.shape
    h = h0.copy()
    for t in range(t_n):
        a = np.dot(h, whT)  # (B, H)
        for b in range(b_n):
            for j in range(h_n):
                v = xp[b, t, j] + a[b, j]
                if act == TANH:
                    v = np.tanh(v)
                elif v < 0.0:
                    v = 0.0
                h[b, j] = v
                hs[b, t, j] = v


@njit(cache=True, nogil=True)
def rnn_bwd(dhs, dh_last, hs, wh, act, da):
    # da (B,T,H): gradient of each step's pre-activation; returns dh0 (B,H)
    b_n, t_n, h_n = hs.shape
    dh = dh_last.copy()
    for t in range(t_n - 1, -1, -1):
        for b in range(b_n):
            for j in range(h_n):
                g = dh[b, j] + dhs[b, t, j]
                y = hs[b, t, j]
                if act == TANH:
                    g *= 1.0 - y * y
                elif y <= 0.0:
                    g = 0.0
                da[b, t, j] = g
        dh = np.dot(np.ascontiguousarray(da[:, t, :]), wh)
    return dh


def rnn_fwd_np(xp, whT, h0, act, hs):
    h = h0.copy()
    for t in range(xp.shape[1]):
        v = xp[:, t] + h @ whT
        h = np.tanh(v) if act == TANH else np.maximum(v, 0.0)
        hs[:, t] = h


def rnn_bwd_np(dhs, dh_last, hs, wh, act, da):
    dh = dh_last.copy()
    for t in range(hs.shape[1] - 1, -1, -1):
        g = dh + dhs[:, t]
        y = hs[:, t]
        da[:, t] = g * (1.0 - y * y) if act == TANH else g * (y > 0.0)
        dh = da[:, t] @ wh
    return dh


# ---------------------------------------------------------------- LSTM


@njit(cache=True, nogil=True)
def lstm_fwd(xp, whT, h0, c0, hs, cs, gates):
    # i, f, o = σ(·), g = tanh(·);  c_t = f c_{t-1} + i g;  h_t = o tanh(c_t)
    b_n, t_n, g4 = xp.shape
    n = g4 // 4
    h = h0.copy()
    c = c0.copy()
    for t in range(t_n):
        a = np.dot(h, whT)  # (B, 4H)
        for b in range(b_n):
            for j in range(n):
                i = _sigmoid(xp[b, t, j] + a[b, j])
                f = _sigmoid(xp[b, t, n + j] + a[b, n + j])
                g = np.tanh(xp[b, t, 2 * n + j] + a[b, 2 * n + j])
                o = _sigmoid(xp[b, t, 3 * n + j] + a[b, 3 * n + j])
                cn = f * c[b, j] + i * g
                c[b, j] = cn
                h[b, j] = o * np.tanh(cn)
                hs[b, t, j] = h[b, j]
                cs[b, t, j] = cn
                gates[b, t, j] = i
                gates[b, t, n + j] = f
                gates[b, t, 2 * n + j] = g
                gates[b, t, 3 * n + j] = o


@njit(cache=True, nogil=True)
def lstm_bwd(dhs, dh_last, dc_last, gates, cs, c0, wh, da):
    # da (B,T,4H): gradient of the gate pre-activations; returns (dh0, dc0)
    b_n, t_n, n = cs.shape
    dh = dh_last.copy()
    dc = dc_last.copy()
    for t in range(t_n - 1, -1, -1):
        for b in range(b_n):
            for j in range(n):
                i = gates[b, t, j]
                f = gates[b, t, n + j]
                g = gates[b, t, 2 * n + j]
                o = gates[b, t, 3 * n + j]
                c_prev = cs[b, t - 1, j] if t > 0 else c0[b, j]
                tc = np.tanh(cs[b, t, j])
                d_h = dh[b, j] + dhs[b, t, j]
                d_c = dc[b, j] + d_h * o * (1.0 - tc * tc)
                da[b, t, j] = d_c * g * i * (1.0 - i)
                da[b, t, n + j] = d_c * c_prev * f * (1.0 - f)
                da[b, t, 2 * n + j] = d_c * i * (1.0 - g * g)
                da[b, t, 3 * n + j] = d_h * tc * o * (1.0 - o)
                dc[b, j] = d_c * f
        dh = np.dot(np.ascontiguousarray(da[:, t, :]), wh)
    return dh, dc


def _sigmoid_np(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def lstm_fwd_np(xp, whT, h0, c0, hs, cs, gates):
    n = xp.shape[2] // 4
    h, c = h0.copy(), c0.copy()
    for t in range(xp.shape[1]):
        a = xp[:, t] + h @ whT
        i, f = _sigmoid_np(a[:, :n]), _sigmoid_np(a[:, n:2 * n])
        g, o = np.tanh(a[:, 2 * n:3 * n]), _sigmoid_np(a[:, 3 * n:])
        c = f * c + i * g
        h = o * np.tanh(c)
        hs[:, t], cs[:, t] = h, c
        gates[:, t] = np.concatenate([i, f, g, o], axis=1)


def lstm_bwd_np(dhs, dh_last, dc_last, gates, cs, c0, wh, da):
    n = cs.shape[2]
    dh, dc = dh_last.copy(), dc_last.copy()
    for t in range(cs.shape[1] - 1, -1, -1):
        i, f, g, o = (gates[:, t, k * n:(k + 1) * n] for k in range(4))
        c_prev = cs[:, t - 1] if t > 0 else c0
        tc = np.tanh(cs[:, t])
        d_h = dh + dhs[:, t]
        d_c = dc + d_h * o * (1.0 - tc * tc)
        da[:, t] = np.concatenate([d_c * g * i * (1 - i), d_c * c_prev * f * (1 - f),
                                   d_c * i * (1 - g * g), d_h * tc * o * (1 - o)], axis=1)
        dc = d_c * f
        dh = da[:, t] @ wh
    return dh, dc


# ---------------------------------------------------------------- GRU


@njit(cache=True, nogil=True)
def gru_fwd(xp, whT, b_hh, h0, hs, gates, hn):
    # r, z = σ(xp + h W_hhᵀ + b_hh);  n = tanh(xp_n + r (h W_hnᵀ + b_hn));  h' = (1-z) n + z h
    # xp (B,T,3H) holds b_ih; hn (B,T,H) keeps h W_hnᵀ + b_hn for the backward
    b_n, t_n, g3 = xp.shape
    n_ = g3 // 3
    h = h0.copy()
    for t in range(t_n):
        a = np.dot(h, whT)  # (B, 3H)
        for b in range(b_n):
            for j in range(n_):
                r = _sigmoid(xp[b, t, j] + a[b, j] + b_hh[j])
                z = _sigmoid(xp[b, t, n_ + j] + a[b, n_ + j] + b_hh[n_ + j])
                hh = a[b, 2 * n_ + j] + b_hh[2 * n_ + j]
                nn = np.tanh(xp[b, t, 2 * n_ + j] + r * hh)
                h[b, j] = (1.0 - z) * nn + z * h[b, j]
                hs[b, t, j] = h[b, j]
                gates[b, t, j] = r
                gates[b, t, n_ + j] = z
                gates[b, t, 2 * n_ + j] = nn
                hn[b, t, j] = hh


@njit(cache=True, nogil=True)
def gru_bwd(dhs, dh_last, gates, hn, hs, h0, wh, dxp, da):
    # dxp (B,T,3H): gradient of x W_ihᵀ + b_ih; da (B,T,3H): of h W_hhᵀ + b_hh; returns dh0
    b_n, t_n, n_ = hs.shape
    dh = dh_last.copy()
    for t in range(t_n - 1, -1, -1):
        for b in range(b_n):
            for j in range(n_):
                r = gates[b, t, j]
                z = gates[b, t, n_ + j]
                nn = gates[b, t, 2 * n_ + j]
                h_prev = hs[b, t - 1, j] if t > 0 else h0[b, j]
                d_h = dh[b, j] + dhs[b, t, j]
                d_n = d_h * (1.0 - z) * (1.0 - nn * nn)
                d_z = d_h * (h_prev - nn) * z * (1.0 - z)
                d_r = d_n * hn[b, t, j] * r * (1.0 - r)
                dxp[b, t, j] = d_r
                dxp[b, t, n_ + j] = d_z
                dxp[b, t, 2 * n_ + j] = d_n
                da[b, t, j] = d_r
                da[b, t, n_ + j] = d_z
                da[b, t, 2 * n_ + j] = d_n * r
                dh[b, j] = d_h * z
        dh = dh + np.dot(np.ascontiguousarray(da[:, t, :]), wh)
    return dh


def gru_fwd_np(xp, whT, b_hh, h0, hs, gates, hn):
    n = xp.shape[2] // 3
    h = h0.copy()
    for t in range(xp.shape[1]):
        a = h @ whT + b_hh
        r = _sigmoid_np(xp[:, t, :n] + a[:, :n])
        z = _sigmoid_np(xp[:, t, n:2 * n] + a[:, n:2 * n])
        nn = np.tanh(xp[:, t, 2 * n:] + r * a[:, 2 * n:])
        h = (1.0 - z) * nn + z * h
        hs[:, t] = h
        gates[:, t] = np.concatenate([r, z, nn], axis=1)
        hn[:, t] = a[:, 2 * n:]


def gru_bwd_np(dhs, dh_last, gates, hn, hs, h0, wh, dxp, da):
    n = hs.shape[2]
    dh = dh_last.copy()
    for t in range(hs.shape[1] - 1, -1, -1):
        r, z, nn = (gates[:, t, k * n:(k + 1) * n] for k in range(3))
        h_prev = hs[:, t - 1] if t > 0 else h0
        d_h = dh + dhs[:, t]
        d_n = d_h * (1.0 - z) * (1.0 - nn * nn)
        d_z = d_h * (h_prev - nn) * z * (1.0 - z)
        d_r = d_n * hn[:, t] * r * (1.0 - r)
        dxp[:, t] = np.concatenate([d_r, d_z, d_n], axis=1)
        da[:, t] = np.concatenate([d_r, d_z, d_n * r], axis=1)
        dh = d_h * z + da[:, t] @ wh
    return dh
