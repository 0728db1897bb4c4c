"""PyTorch references for the nn family (softmax, normalisation, dropout, masks, embedding)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _optional(inputs, index):
    return inputs[index] if len(inputs) > index else None


def _layer_norm(p, inputs, weights, state, ours):
    x = inputs[0]
    return F.layer_norm(x, (x.shape[-1],), _optional(inputs, 1), _optional(inputs, 2),
                        eps=p["eps"])


def _batch_norm(p, inputs, weights, state, ours):
    return F.batch_norm(inputs[0], state["running_mean"], state["running_var"],
                        _optional(inputs, 1), _optional(inputs, 2), training=True,
                        momentum=p["momentum"], eps=p["eps"])


def _dropout(p, inputs, weights, state, ours):
    """Reuses our random mask (read off our output: inputs are never exactly zero)."""
    x = inputs[0]
    if p["p"] >= 1.0:
        return x * 0.0
    keep = (ours[0] != 0).to(x.dtype)
    return x * keep / (1.0 - p["p"])


def _causal_mask(p, inputs, weights, state, ours):
    x = inputs[0]
    t, s = x.shape[-2], x.shape[-1]
    keep = torch.ones(t, s, dtype=torch.bool).tril(diagonal=p["offset"])
    return x.masked_fill(~keep, p["value"])


REFS = {
    "softmax": lambda p, i, w, s, o: F.softmax(i[0], dim=p["axis"]),
    "log_softmax": lambda p, i, w, s, o: F.log_softmax(i[0], dim=p["axis"]),
    "layer_norm": _layer_norm,
    "batch_norm": _batch_norm,
    "dropout": _dropout,
    "masked_fill": lambda p, i, w, s, o: i[0].masked_fill(i[1] != 0, p["value"]),
    "causal_mask": _causal_mask,
    "embedding": lambda p, i, w, s, o: F.embedding(i[0], i[1]),
}
