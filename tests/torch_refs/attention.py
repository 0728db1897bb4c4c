"""PyTorch reference for scaled dot-product attention.

For Tq = Tk our causal mask is torch's ``is_causal``; for a KV cache (Tq < Tk) we align the
last query with the last key, so the reference passes that mask explicitly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _sdpa(p, inputs, weights, state, ours):
    q, k, v = inputs
    tq, tk = q.shape[-2], k.shape[-2]
    if p["causal"] and tq != tk:
        mask = torch.ones(tq, tk, dtype=torch.bool).tril(diagonal=tk - tq)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=p["scale"])
    return F.scaled_dot_product_attention(q, k, v, is_causal=p["causal"], scale=p["scale"])


REFS = {"scaled_dot_product_attention": _sdpa}
