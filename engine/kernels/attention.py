"""Fused scaled-dot-product attention: scores, causal mask, softmax and weighted sum in one
pass per query row (forward), and the matching backward that recomputes probabilities from
the saved log-sum-exp. Arrays are contiguous ``(BH, T, D)``; numpy twins below.

Causal masking lets query ``i`` see keys ``j <= i + offset`` (``offset = Tk - Tq`` aligns the
last query with the last key, the KV-cache convention). A key padding mask ``keep``
``(BH, Tk)`` bool hides the keys where it is False from every query of that row (padded source
positions); a ``keep`` of shape ``(BH, 0)`` (:data:`NO_MASK`) means every key is kept. A query
row that sees no key at all is *fully masked*: its output and gradients are zero and its
log-sum-exp is ``-inf`` — never NaN.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from engine.kernels.cold import twin
from engine.kernels.elementwise import F32, _exp_nonpos, _exp_nonpos32

EXP_FLOOR = 36.0  # e^-36 < 3e-16: below it a probability is 0
NO_MASK = np.ones((1, 0), np.bool_)  # "keep every key": a (BH, 0) mask broadcasts over BH


def no_mask(bh: int) -> np.ndarray:
    """A ``(bh, 0)`` keep-mask: no key is hidden."""
    return np.ones((bh, 0), np.bool_)

# Reassociation lets LLVM vectorise the dot products (measured ~3× on the backward); no
# "nnan"/"ninf", so the -inf of fully masked rows keeps its meaning.
_FAST = {"reassoc", "contract", "nsz", "arcp"}


@njit(cache=True, nogil=True)
def _limit(i, tk, causal, offset):
    if not causal:
        return tk
    lim = i + offset + 1
    return min(max(lim, 0), tk)


@njit(cache=True, nogil=True)
def _hidden(keep, bh, j):
    # True where key j of row bh is padding (a (BH, 0) mask hides nothing)
    return keep.shape[1] > 0 and not keep[bh, j]


@njit(cache=True, nogil=True, fastmath=_FAST)
def attention_fwd(q, k, v, keep, scale, causal, offset, out, lse):
    # q: (BH, Tq, D)  k: (BH, Tk, D)  v: (BH, Tk, Dv)  keep: (BH, Tk | 0) bool
    # out: (BH, Tq, Dv)  lse: (BH, Tq) float64
    bh_n, tq, d = q.shape
    tk = k.shape[1]
    dv = v.shape[2]
    s = np.empty(tk)
    acc = np.empty(dv)
    for bh in range(bh_n):
        for i in range(tq):
            lim = _limit(i, tk, causal, offset)
            if lim == 0:
                out[bh, i, :] = 0.0
                lse[bh, i] = -np.inf
                continue
            m = -np.inf
            for j in range(lim):
                if _hidden(keep, bh, j):
                    s[j] = -np.inf
                    continue
                dot = 0.0
                for e in range(d):
                    dot += q[bh, i, e] * k[bh, j, e]
                dot *= scale
                s[j] = dot
                if dot > m:
                    m = dot
            if m == -np.inf:  # every visible key is padding
                out[bh, i, :] = 0.0
                lse[bh, i] = -np.inf
                continue
            tot = 0.0
            for j in range(lim):
                p = math.exp(s[j] - m)
                s[j] = p
                tot += p
            acc[:] = 0.0
            for j in range(lim):
                p = s[j] / tot
                for e in range(dv):
                    acc[e] += p * v[bh, j, e]
            for e in range(dv):
                out[bh, i, e] = acc[e]
            lse[bh, i] = m + math.log(tot)


@njit(cache=True, nogil=True, fastmath=_FAST)
def attention_bwd(q, k, v, keep, out, lse, g, scale, causal, offset, gq, gk, gv):
    # dP = g·vᵀ;  dS = P ∘ (dP − rowsum(g ∘ out));  dq = scale·dS·k;  dk = scale·dSᵀ·q;  dv = Pᵀ·g
    bh_n, tq, d = q.shape
    tk = k.shape[1]
    dv = v.shape[2]
    gk_acc = np.empty((tk, d))
    gv_acc = np.empty((tk, dv))
    gq_acc = np.empty(d)
    for bh in range(bh_n):
        gk_acc[:, :] = 0.0
        gv_acc[:, :] = 0.0
        for i in range(tq):
            lim = _limit(i, tk, causal, offset)
            gq_acc[:] = 0.0
            if lim > 0 and lse[bh, i] > -np.inf:
                di = 0.0
                for e in range(dv):
                    di += g[bh, i, e] * out[bh, i, e]
                li = lse[bh, i]
                for j in range(lim):
                    if _hidden(keep, bh, j):
                        continue
                    dot = 0.0
                    for e in range(d):
                        dot += q[bh, i, e] * k[bh, j, e]
                    p = math.exp(dot * scale - li)
                    dp = 0.0
                    for e in range(dv):
                        dp += g[bh, i, e] * v[bh, j, e]
                        gv_acc[j, e] += p * g[bh, i, e]
                    ds = p * (dp - di) * scale
                    for e in range(d):
                        gq_acc[e] += ds * k[bh, j, e]
                        gk_acc[j, e] += ds * q[bh, i, e]
            for e in range(d):
                gq[bh, i, e] = gq_acc[e]
        for j in range(tk):
            for e in range(d):
                gk[bh, j, e] = gk_acc[j, e]
            for e in range(dv):
                gv[bh, j, e] = gv_acc[j, e]


# ------------------------------------------------------------------ BLAS-shaped path
# For float32 the op computes scores and the three gradient products with batched BLAS
# matmuls and keeps the probabilities (BH·Tq·Tk floats) for the backward; these two kernels do
# the memory-bound parts in one pass each. exp is the vectorisable polynomial of
# engine.kernels.elementwise (relative error < 5e-13; e^y for y < -36 is taken as 0).


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_FAST)
def attention_probs(s, keep, scale, causal, offset, lse):
    # s: (BH, Tq, Tk) raw scores q·kᵀ, replaced in place by the masked softmax of s·scale;
    # lse: (BH, Tq) float64 log-sum-exp of the kept scaled scores (-inf for a masked row)
    bh_n, tq, tk = s.shape
    for bh in range(bh_n):
        for i in range(tq):
            lim = _limit(i, tk, causal, offset)
            if lim == 0:
                s[bh, i, :] = 0.0
                lse[bh, i] = -np.inf
                continue
            m = -np.inf
            for j in range(lim):
                x = -np.inf if _hidden(keep, bh, j) else s[bh, i, j] * scale
                s[bh, i, j] = x
                m = max(m, x)
            if m == -np.inf:  # every visible key is padding
                s[bh, i, :] = 0.0
                lse[bh, i] = -np.inf
                continue
            tot = 0.0
            for j in range(lim):
                y = max(s[bh, i, j] - m, -EXP_FLOOR)
                e = _exp_nonpos(y)
                e = e if y > -EXP_FLOOR else 0.0
                s[bh, i, j] = e
                tot += e
            inv = 1.0 / tot
            for j in range(lim):
                s[bh, i, j] = s[bh, i, j] * inv
            for j in range(lim, tk):
                s[bh, i, j] = 0.0
            lse[bh, i] = m + math.log(tot)


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_FAST, inline="always")
def _probs_row32(row, lim, sc):
    """Row *row* (Tk,) of raw scores → its softmax over the first *lim* keys (0 after), in
    place; returns (max scaled score, Σ e) for the log-sum-exp. *lim* ≥ 1. The passes run
    to *lim* rounded up to a multiple of 8 (a whole number of float32 AVX2 lanes, so LLVM's
    vector loop covers it without scalar remainder iterations; the keys from *lim* on are
    dropped by selects), and the rest of the row is zeroed without an exponential: a causal
    row's hidden half is no longer computed. Per char-GPT part and layer (24×64×64 causal,
    one thread, a fresh copy of the scores each call): 127 → 103 µs."""
    n8 = min((lim + 7) // 8 * 8, row.size)
    m = row[0]  # the max over the raw scores times scale (≥ 0) = the max of the scaled ones
    for j in range(1, n8):
        m = max(m, row[j] if j < lim else row[0])
    ms = m * sc
    tot = F32(0.0)
    for j in range(n8):  # hidden keys (j ≥ lim) may hold anything: the select drops it
        y = row[j] * sc - ms
        y = max(y if j < lim else F32(-EXP_FLOOR), F32(-EXP_FLOOR))
        e = _exp_nonpos32(y)
        e = e if y > F32(-EXP_FLOOR) else F32(0.0)
        row[j] = e
        tot += e
    inv = F32(1.0) / tot
    for j in range(n8):
        row[j] = row[j] * inv
    for j in range(n8, row.size):
        row[j] = F32(0.0)
    return ms, tot


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_FAST)
def attention_probs32_unmasked(s, scale, causal, offset, lse):
    # attention_probs32 without a key mask: the passes run in whole vectors of lanes (see
    # _probs_row32) instead of loops of the causal limit's length (1 … Tk, mostly remainder
    # iterations). An lse with no columns (BH, 0) asks for the probabilities only (the op
    # keeps those, not lse): no scalar log per row. Per char-GPT layer (48×64×64 causal, one
    # thread, CPU time, with a fresh copy of the scores): 218 → 175 µs.
    bh_n, tq, tk = s.shape
    sc = F32(scale)
    for bh in range(bh_n):
        if lse.shape[1] == 0:
            for i in range(tq):
                lim = _limit(i, tk, causal, offset)
                if lim == 0:
                    s[bh, i, :] = F32(0.0)
                else:
                    _probs_row32(s[bh, i], lim, sc)
            continue
        for i in range(tq):
            lim = _limit(i, tk, causal, offset)
            if lim == 0:
                s[bh, i, :] = F32(0.0)
                lse[bh, i] = -np.inf
                continue
            ms, tot = _probs_row32(s[bh, i], lim, sc)
            lse[bh, i] = ms + math.log(tot)


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_FAST)
def attention_probs32(s, keep, scale, causal, offset, lse):
    # float32 twin of attention_probs computed in float32 lanes (the float32 exp of
    # engine.kernels.elementwise, ≤ 2 ulps): per char-GPT layer (48×64×64) 0.42 → 0.26 ms;
    # without a key mask the op calls attention_probs32_unmasked (whole-row passes: 0.36 →
    # 0.19 ms); a separate kernel, so a graph without masks never compiles this one (0.45 s
    # of a cold first step). An empty (BH, 0) mask here hides nothing.
    bh_n, tq, tk = s.shape
    sc = F32(scale)
    for bh in range(bh_n):
        for i in range(tq):
            lim = _limit(i, tk, causal, offset)
            row = s[bh, i]
            if lim == 0:
                row[:] = F32(0.0)
                lse[bh, i] = -np.inf
                continue
            m = F32(-np.inf)
            for j in range(lim):
                x = F32(-np.inf) if _hidden(keep, bh, j) else row[j] * sc
                row[j] = x
                m = max(m, x)
            if m == F32(-np.inf):  # every visible key is padding
                row[:] = F32(0.0)
                lse[bh, i] = -np.inf
                continue
            tot = F32(0.0)
            for j in range(lim):
                y = max(row[j] - m, F32(-EXP_FLOOR))
                e = _exp_nonpos32(y)
                e = e if y > F32(-EXP_FLOOR) else F32(0.0)
                row[j] = e
                tot += e
            inv = F32(1.0) / tot
            for j in range(lim):
                row[j] = row[j] * inv
            for j in range(lim, tk):
                row[j] = F32(0.0)
            lse[bh, i] = m + math.log(tot)


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_FAST)
def attention_dscores(p, dp, g, out, scale):
    # p, dp: (N, H, Tq, Tk); g, out: (N, Tq, H, Dv), the merged-heads layout of the op's
    # output and its gradient (contiguous there). dp = g·vᵀ is replaced in place by
    # dS = scale·P ∘ (dP − rowsum(g ∘ out)), in the arrays' dtype: float32 lanes for float32
    # (the row sum was float64 before; char-GPT part, 6×4×64×64, one thread: 39 → 16 µs)
    n_n, h_n, tq, tk = p.shape
    dv = g.shape[3]
    sc = p.dtype.type(scale)
    for n in range(n_n):
        for h in range(h_n):
            for i in range(tq):
                di = p.dtype.type(0.0)
                for e in range(dv):
                    di += g[n, i, h, e] * out[n, i, h, e]
                for j in range(tk):
                    dp[n, h, i, j] = p[n, h, i, j] * (dp[n, h, i, j] - di) * sc


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_FAST)
def attention_decode(q, k, v, tk, scale, out, probs):
    # One new query per head against the first tk cached keys (it sees all of them):
    # q: (H, D)  k: (H, T_buf, D)  v: (H, T_buf, Dv)  out: (H, Dv)  probs: (H, tk) float64
    # Reassociated dot products and the polynomial exp vectorise (8.0 → ~3 µs at H=4, tk=40).
    h_n, d = q.shape
    dv = v.shape[2]
    acc = np.empty(dv)
    for h in range(h_n):
        m = -np.inf
        for j in range(tk):
            dot = 0.0
            for e in range(d):
                dot += q[h, e] * k[h, j, e]
            dot *= scale
            probs[h, j] = dot
            m = max(m, dot)
        tot = 0.0
        for j in range(tk):
            y = max(probs[h, j] - m, -EXP_FLOOR)
            x = _exp_nonpos(y)
            x = x if y > -EXP_FLOOR else 0.0
            probs[h, j] = x
            tot += x
        inv = 1.0 / tot
        acc[:] = 0.0
        for j in range(tk):
            pj = probs[h, j] * inv
            probs[h, j] = pj
            for e in range(dv):
                acc[e] += pj * v[h, j, e]
        for e in range(dv):
            out[h, e] = acc[e]


def attention_probs_ref(s, scale, causal, offset, keep=None):
    """(probs, lse) of raw scores *s* — the twin of :func:`attention_probs`."""
    x = np.where(allowed(s.shape, causal, offset, keep), s.astype(np.float64) * scale, -np.inf)
    m = x.max(-1, keepdims=True)
    m = np.where(np.isneginf(m), 0.0, m)
    e = np.exp(x - m)
    tot = e.sum(-1, keepdims=True)
    with np.errstate(divide="ignore"):
        lse = (m + np.log(tot))[..., 0]
    return (e / np.where(tot == 0, 1.0, tot)).astype(s.dtype), lse


def attention_dscores_ref(p, dp, g, out, scale):
    """The twin of :func:`attention_dscores` for p, dp (…, Tq, Tk) and g, out (…, Tq, Dv)
    (the kernel's g and out with their Tq and H axes swapped back)."""
    return (p * (dp - np.sum(g * out, axis=-1, keepdims=True)) * scale).astype(p.dtype)


# ------------------------------------------------------------------ numpy twins


def causal_allowed(tq: int, tk: int, offset: int) -> np.ndarray:
    """Boolean ``(Tq, Tk)``: True where query i may see key j (``j <= i + offset``)."""
    return np.arange(tk)[None, :] <= np.arange(tq)[:, None] + offset


def allowed(shape: tuple, causal: bool, offset: int, keep=None) -> np.ndarray:
    """Boolean ``(BH, Tq, Tk)`` (broadcastable): the keys each query sees."""
    ok = np.ones((1, shape[1], shape[2]), bool)
    if causal:
        ok = ok & causal_allowed(shape[1], shape[2], offset)[None]
    if keep is not None and keep.shape[1] > 0:
        ok = ok & keep.astype(bool)[:, None, :]
    return ok


def attention_fwd_ref(q, k, v, scale, causal, offset, keep=None):
    """(out, lse, probs) via BLAS matmuls; fully masked rows give zeros."""
    s = np.matmul(q, np.swapaxes(k, -1, -2)) * scale  # (BH, Tq, Tk)
    s = np.where(allowed(s.shape, causal, offset, keep), s, -np.inf)
    m = s.max(-1, keepdims=True)
    m = np.where(np.isneginf(m), 0.0, m)
    e = np.exp(s - m)
    tot = e.sum(-1, keepdims=True)
    p = e / np.where(tot == 0, 1.0, tot)
    with np.errstate(divide="ignore"):
        lse = (m + np.log(tot))[..., 0]
    return np.matmul(p, v).astype(q.dtype), lse, p.astype(q.dtype)


def attention_bwd_ref(q, k, v, out, p, g, scale):
    """(gq, gk, gv) from the saved probabilities *p*."""
    gv = np.matmul(np.swapaxes(p, -1, -2), g)
    dp = np.matmul(g, np.swapaxes(v, -1, -2))
    ds = p * (dp - np.sum(g * out, axis=-1, keepdims=True)) * scale
    return np.matmul(ds, k), np.matmul(np.swapaxes(ds, -1, -2), q), gv


# ------------------------------------------------------------------ cold-start twins
# (engine.kernels.cold: the kernels' arguments and outputs, while the helper compiles them)


@twin(attention_probs)
@twin(attention_probs32)
def _attention_probs_cold(s, keep, scale, causal, offset, lse):
    with np.errstate(invalid="ignore", over="ignore"):  # hidden scores may be anything
        s[...], full = attention_probs_ref(s, scale, causal, offset, keep)
    lse[...] = full


@twin(attention_probs32_unmasked)
def _attention_probs_unmasked_cold(s, scale, causal, offset, lse):
    with np.errstate(invalid="ignore", over="ignore"):
        s[...], full = attention_probs_ref(s, scale, causal, offset)
    if lse.shape[1]:
        lse[...] = full


@twin(attention_dscores)
def _attention_dscores_cold(p, dp, g, out, scale):
    dp[...] = attention_dscores_ref(p, dp, g.transpose(0, 2, 1, 3), out.transpose(0, 2, 1, 3),
                                    scale)
