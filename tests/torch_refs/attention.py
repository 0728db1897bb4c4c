"""PyTorch reference for scaled dot-product attention.

For Tq = Tk our causal mask is torch's ``is_causal``; for a KV cache (Tq < Tk) we align the
last query with the last key, so the reference passes that mask explicitly. A key padding
mask (nonzero = keep) is written out by hand.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _masked(p, q, k, v, key_mask):
    """Softmax attention written out, so that a query seeing only padding gets zeros (torch's
    fused kernel would give NaN there)."""
    tq, tk = q.shape[-2], k.shape[-2]
    scale = p["scale"] if p["scale"] is not None else q.shape[-1] ** -0.5
    s = q @ k.transpose(-1, -2) * scale  # (B, H, Tq, Tk)
    ok = (key_mask != 0)[:, None, None, :]
    if p["causal"]:
        ok = ok & torch.ones(tq, tk, dtype=torch.bool).tril(diagonal=tk - tq)
    s = torch.where(ok, s, torch.full_like(s, float("-inf")))
    m = s.amax(-1, keepdim=True).detach()
    m = torch.where(torch.isinf(m), torch.zeros_like(m), m)
    e = torch.exp(s - m)
    tot = e.sum(-1, keepdim=True)
    return (e / torch.where(tot == 0, torch.ones_like(tot), tot)) @ v


def _sdpa(p, inputs, weights, state, ours):
    q, k, v = inputs[:3]
    if len(inputs) > 3 and inputs[3] is not None:
        return _masked(p, q, k, v, inputs[3])
    tq, tk = q.shape[-2], k.shape[-2]
    if p["causal"] and tq != tk:
        mask = torch.ones(tq, tk, dtype=torch.bool).tril(diagonal=tk - tq)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=p["scale"])
    return F.scaled_dot_product_attention(q, k, v, is_causal=p["causal"], scale=p["scale"])


REFS = {"scaled_dot_product_attention": _sdpa}
