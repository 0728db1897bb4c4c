"""The numpy arithmetic of the preset-shaped seq2seq decoder (:mod:`engine.sample.seq2seq`):
layer norm, linear maps, heads, softmax attention, the blocks' projections and MLP — op for op
what the graph's layers compute, so cached decoding equals a full forward pass."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from engine.kernels.decoder_step import gelu_exact  # exact erf GELU, in float64


class BlockWeights(Protocol):
    """What the arithmetic reads of a block (:class:`engine.sample.seq2seq.Block`)."""

    heads: int

    def get(self, name: str) -> np.ndarray | None: ...


LN_EPS = 1e-5  # the LayerNorm layers inside the blocks use the default eps


def _ln(x, weight, bias, eps=LN_EPS):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    y = (x - mean) / np.sqrt(var + eps)
    if weight is not None:
        y = y * weight
    return y + bias if bias is not None else y


def _linear(x, weight, bias):
    y = x @ weight.T
    return y + bias if bias is not None else y


def _heads(x, h):  # (B, T, C) -> (B, H, T, D)
    b, t, c = x.shape
    return x.reshape(b, t, h, c // h).transpose(0, 2, 1, 3)


def _merge(x):  # (B, H, T, D) -> (B, T, C)
    b, h, t, d = x.shape
    return x.transpose(0, 2, 1, 3).reshape(b, t, h * d)


def attend(q, k, v, keep=None, causal=False):
    """Softmax attention (B, H, Tq, D) over (B, H, Tk, D); *keep* (B, Tk) hides padding.
    A query that sees no key gets zeros, like the engine's kernel. Returns (out, probs)."""
    s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(q.shape[-1])
    ok = np.ones(s.shape, bool)
    if keep is not None:
        ok = ok & (keep != 0)[:, None, None, :]
    if causal:
        tq, tk = s.shape[-2:]
        ok = ok & (np.arange(tk)[None, :] <= np.arange(tq)[:, None] + tk - tq)
    s = np.where(ok, s, -np.inf)
    m = s.max(-1, keepdims=True)
    m = np.where(np.isneginf(m), 0.0, m)
    e = np.exp(s - m)
    tot = e.sum(-1, keepdims=True)
    p = e / np.where(tot == 0, 1.0, tot)
    return p @ v, p


def _attention_proj(b: BlockWeights, name: str, query, key_value):
    """(q heads, k heads, v heads) of the MultiHeadAttention *name* inside block *b*."""
    q = _heads(_linear(query, b.get(f"{name}.q_proj.weight"), b.get(f"{name}.q_proj.bias")),
               b.heads)
    kv = _linear(key_value, b.get(f"{name}.kv_proj.weight"), b.get(f"{name}.kv_proj.bias"))
    c = kv.shape[-1] // 2
    return q, _heads(kv[..., :c], b.heads), _heads(kv[..., c:], b.heads)


def _out_proj(b: BlockWeights, name: str, y):
    return _linear(_merge(y), b.get(f"{name}.proj.weight"), b.get(f"{name}.proj.bias"))


def _mlp(b: BlockWeights, x):
    h = gelu_exact(_linear(x, b.get("mlp.fc.weight"), b.get("mlp.fc.bias")))
    return _linear(h.astype(x.dtype), b.get("mlp.proj.weight"), b.get("mlp.proj.bias"))


def _ln_of(b: BlockWeights, name: str, x):
    return _ln(x, b.get(f"{name}.weight"), b.get(f"{name}.bias"))
