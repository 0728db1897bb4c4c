"""One pre-norm transformer decoder block for one new position per row, fused: what cached
seq2seq decoding runs per token and per block (causal self-attention over a KV cache, cross-
attention over the encoder's cached K/V with the source padding mask, GELU MLP), in a single
call instead of ~60 small numpy operations. :func:`block_step_numpy` is its numpy twin.

The block's weights come packed (:func:`pack`): layer norms ``ln`` (3, 2, C) (ln1/ln2/ln3 ×
weight/bias, ones/zeros where absent), the four C×C projections ``sq`` (4, C, C) transposed to
(in, out) — self-attention query, self-attention output, cross-attention query, cross-attention
output — with biases ``sqb`` (4, C), the self-attention key/value projection ``kvw`` (C, 2C) /
``kvb`` (2C,), and the MLP ``fcw`` (C, R·C) / ``fcb`` / ``prw`` (R·C, C) / ``prb``.
Shapes: ``x`` (B, C); caches ``k``/``v`` (B, H, t, D) hold the earlier positions; ``ck``/``cv``
(B, H, S, D) the encoder's keys/values; ``keep`` (B, S) (0 = padding, used when ``masked``).
Returns ``(x', k_new (B, H, D), v_new (B, H, D), cross probabilities (B, H, S))``; a query that
sees no key (every source position padded) gets zeros, like the attention kernel.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

LN_EPS = 1e-5  # the blocks' LayerNorm layers use the default eps
_SQRT2 = math.sqrt(2.0)


def pack(get, c: int, dtype) -> tuple[np.ndarray, ...]:
    """A block's weights in :func:`block_step`'s layout; *get(name)* returns the parameter
    named *name* inside the block (``ln1.weight``, ``self_attn.q_proj.weight`` …) or None."""
    def arr(name, fill, shape):
        w = get(name)
        return np.full(shape, fill, dtype) if w is None else np.asarray(w, dtype)

    ln = np.stack([np.stack([arr(f"ln{i}.weight", 1.0, (c,)), arr(f"ln{i}.bias", 0.0, (c,))])
                   for i in (1, 2, 3)])
    square = ("self_attn.q_proj", "self_attn.proj", "cross_attn.q_proj", "cross_attn.proj")
    sq = np.stack([arr(f"{n}.weight", 0.0, (c, c)).T for n in square])
    sqb = np.stack([arr(f"{n}.bias", 0.0, (c,)) for n in square])
    kvw = arr("self_attn.kv_proj.weight", 0.0, (2 * c, c)).T
    kvb = arr("self_attn.kv_proj.bias", 0.0, (2 * c,))
    fcw = np.asarray(get("mlp.fc.weight"), dtype).T  # (C, R·C)
    fcb = arr("mlp.fc.bias", 0.0, (fcw.shape[1],))
    prw = np.asarray(get("mlp.proj.weight"), dtype).T  # (R·C, C)
    prb = arr("mlp.proj.bias", 0.0, (c,))
    return tuple(np.ascontiguousarray(a) for a in (ln, sq, sqb, kvw, kvb, fcw, fcb, prw, prb))


@njit(cache=True, nogil=True)
def _layer_norm(x, w, b, out):  # x, out: (B, C); statistics in float64
    n, c = x.shape
    for i in range(n):
        s = 0.0
        for j in range(c):
            s += x[i, j]
        mu = s / c
        v = 0.0
        for j in range(c):
            t = x[i, j] - mu
            v += t * t
        r = 1.0 / math.sqrt(v / c + LN_EPS)
        for j in range(c):
            out[i, j] = (x[i, j] - mu) * r * w[j] + b[j]


@njit(cache=True, nogil=True)
def _attend(q, k, v, t, knew, vnew, keep, masked, out, probs):
    """Per row and head: softmax(q·kᵀ/√D) over *t* cached keys (plus *knew* when given)."""
    bsz, h, _, d = k.shape
    scale = 1.0 / math.sqrt(d)
    extra = knew.shape[0] > 0
    n = t + 1 if extra else t
    s = np.empty(n)
    for r in range(bsz):
        for hh in range(h):
            base = hh * d
            top = -np.inf
            for j in range(n):
                acc = 0.0
                if j < t:
                    if masked and keep[r, j] == 0:
                        s[j] = -np.inf
                        continue
                    for e in range(d):
                        acc += q[r, base + e] * k[r, hh, j, e]
                else:
                    for e in range(d):
                        acc += q[r, base + e] * knew[r, hh, e]
                s[j] = acc * scale
                top = max(top, s[j])
            for e in range(d):
                out[r, base + e] = 0.0
            if top == -np.inf:  # no key to see: zeros
                for j in range(n):
                    if probs.shape[0] > 0 and j < t:
                        probs[r, hh, j] = 0.0
                continue
            tot = 0.0
            for j in range(n):
                s[j] = math.exp(s[j] - top)
                tot += s[j]
            for j in range(n):
                p = s[j] / tot
                if probs.shape[0] > 0 and j < t:
                    probs[r, hh, j] = p
                if j < t:
                    for e in range(d):
                        out[r, base + e] += p * v[r, hh, j, e]
                else:
                    for e in range(d):
                        out[r, base + e] += p * vnew[r, hh, e]


@njit(cache=True, nogil=True)
def _gelu(x):  # (N, M) in place, exact (erf), computed in float64
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            u = float(x[i, j])
            x[i, j] = 0.5 * u * (1.0 + math.erf(u / _SQRT2))


def gelu_exact(x: np.ndarray) -> np.ndarray:
    """GELU (erf) of *x* in float64 — ``engine.ops.elementwise.gelu_exact(x, "none")`` (the
    same formula through ``math.erf``) without its per-element Python calls."""
    y = np.array(x, dtype=np.float64, order="C")
    _gelu(y.reshape(-1, y.shape[-1]) if y.ndim else y.reshape(1, 1))
    return y


@njit(cache=True, nogil=True)
def block_step(x, ln, sq, sqb, kvw, kvb, fcw, fcb, prw, prb, k, v, ck, cv, keep, masked):
    bsz, c = x.shape
    heads, d = k.shape[1], k.shape[3]
    t, s = k.shape[2], ck.shape[2]
    x = x.copy()
    h = np.empty_like(x)
    y = np.empty_like(x)
    _layer_norm(x, ln[0, 0], ln[0, 1], h)
    q = np.dot(h, sq[0]) + sqb[0]
    kv = np.dot(h, kvw) + kvb
    k_new = np.ascontiguousarray(kv[:, :c]).reshape(bsz, heads, d)
    v_new = np.ascontiguousarray(kv[:, c:]).reshape(bsz, heads, d)
    none = np.empty((0, 0, 0), x.dtype)
    _attend(q, k, v, t, k_new, v_new, keep, False, y, none)
    x += np.dot(y, sq[1]) + sqb[1]
    _layer_norm(x, ln[1, 0], ln[1, 1], h)
    q = np.dot(h, sq[2]) + sqb[2]
    probs = np.empty((bsz, heads, s), x.dtype)
    _attend(q, ck, cv, s, np.empty((0, 0, 0), x.dtype), none, keep, masked, y, probs)
    x += np.dot(y, sq[3]) + sqb[3]
    _layer_norm(x, ln[2, 0], ln[2, 1], h)
    f = np.dot(h, fcw) + fcb
    _gelu(f)
    x += np.dot(f, prw) + prb
    return x, k_new, v_new, probs


def _ln_numpy(x, w, b):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + LN_EPS) * w + b


def _attend_numpy(q, k, v, keep):  # q (B, H, D); k, v (B, H, T, D); keep (B, T) bool
    s = np.einsum("bhd,bhtd->bht", q, k) / math.sqrt(q.shape[-1])
    s = np.where(keep[:, None, :], s, -np.inf)
    top = s.max(-1, keepdims=True)
    e = np.exp(s - np.where(np.isneginf(top), 0.0, top))
    tot = e.sum(-1, keepdims=True)
    p = e / np.where(tot == 0, 1.0, tot)
    return np.einsum("bht,bhtd->bhd", p, v), p


def block_step_numpy(x, ln, sq, sqb, kvw, kvb, fcw, fcb, prw, prb, k, v, ck, cv, keep, masked):
    """The numpy twin of :func:`block_step` (same arguments, same results)."""
    bsz, c = x.shape
    heads, d = k.shape[1], k.shape[3]
    h = _ln_numpy(x, ln[0, 0], ln[0, 1])
    kv = h @ kvw + kvb
    k_new, v_new = kv[:, :c].reshape(bsz, heads, d), kv[:, c:].reshape(bsz, heads, d)
    keys = np.concatenate([k, k_new[:, :, None]], axis=2)
    values = np.concatenate([v, v_new[:, :, None]], axis=2)
    q = (h @ sq[0] + sqb[0]).reshape(bsz, heads, d)
    y, _ = _attend_numpy(q, keys, values, np.ones((bsz, keys.shape[2]), bool))
    x = x + y.reshape(bsz, c) @ sq[1] + sqb[1]
    q = (_ln_numpy(x, ln[1, 0], ln[1, 1]) @ sq[2] + sqb[2]).reshape(bsz, heads, d)
    see = keep != 0 if masked else np.ones(keep.shape, bool)
    y, probs = _attend_numpy(q, ck, cv, see)
    x = x + y.reshape(bsz, c) @ sq[3] + sqb[3]
    f = _ln_numpy(x, ln[2, 0], ln[2, 1]) @ fcw + fcb
    f = 0.5 * f * (1.0 + np.vectorize(math.erf)(f.astype(np.float64) / _SQRT2))
    x = x + f.astype(x.dtype) @ prw + prb
    return x, k_new, v_new, probs.astype(x.dtype)
