"""Fused cross-entropy (log-softmax + NLL with label smoothing and ignore_index) forward and
backward over ``(N, C)`` logits, with numpy twins.

The forward keeps only the per-row log-sum-exp ``(N,)``; the backward rebuilds the softmax
from it. Ignored rows (label == ignore_index) contribute neither loss nor gradient.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from engine.kernels.elementwise import _exp_nonpos

EXP_FLOOR = 36.0  # e^-36 < 3e-16: below it a probability is 0
# Reassociation vectorises the row sums and the polynomial exp (no libm call per logit); no
# nnan/ninf, so infinities keep their meaning.
_FAST = {"reassoc", "contract", "nsz", "arcp"}


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_FAST)
def cross_entropy_fwd(x, y, ignore_index, smoothing, lse):
    # x: (N, C); y: (N,) int64; lse: (N,) float64 out → (Σ loss over kept rows, kept count)
    n, c = x.shape
    total = 0.0
    kept = 0
    for i in range(n):
        m = -np.inf
        for j in range(c):
            m = max(m, np.float64(x[i, j]))
        s = 0.0
        xs = 0.0
        for j in range(c):
            d = max(x[i, j] - m, -EXP_FLOOR)
            e = _exp_nonpos(d)
            s += e if d > -EXP_FLOOR else 0.0
            xs += x[i, j]
        li = m + math.log(s)
        lse[i] = li
        if y[i] == ignore_index:
            continue
        kept += 1
        nll = li - x[i, y[i]]
        total += (1.0 - smoothing) * nll + smoothing * (li - xs / c)
    return total, kept


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_FAST)
def cross_entropy_bwd(x, y, lse, ignore_index, smoothing, scale, gx):
    # gx = scale · (softmax − (1−ε)·onehot − ε/C) on kept rows, 0 on ignored rows
    n, c = x.shape
    u = smoothing / c
    for i in range(n):
        if y[i] == ignore_index:
            gx[i, :] = 0.0
            continue
        li = lse[i]
        for j in range(c):
            d = max(x[i, j] - li, -EXP_FLOOR)
            e = _exp_nonpos(d)
            gx[i, j] = scale * ((e if d > -EXP_FLOOR else 0.0) - u)
        gx[i, y[i]] -= scale * (1.0 - smoothing)


def cross_entropy_fwd_ref(x, y, ignore_index, smoothing):
    """(Σ loss over kept rows, kept count, lse)."""
    m = x.max(-1, keepdims=True)
    lse = (m + np.log(np.exp(x - m).sum(-1, keepdims=True)))[:, 0].astype(np.float64)
    keep = y != ignore_index
    yk = np.where(keep, y, 0)
    nll = lse - x[np.arange(x.shape[0]), yk]
    smooth = lse - x.mean(-1, dtype=np.float64)
    per = (1.0 - smoothing) * nll + smoothing * smooth
    return float(per[keep].sum()), int(keep.sum()), lse


def cross_entropy_bwd_ref(x, y, lse, ignore_index, smoothing, scale):
    p = np.exp(x - lse[:, None])
    p -= smoothing / x.shape[1]
    keep = y != ignore_index
    rows = np.arange(x.shape[0])
    p[rows, np.where(keep, y, 0)] -= (1.0 - smoothing) * keep
    p[~keep] = 0.0
    return (p * scale).astype(x.dtype)
