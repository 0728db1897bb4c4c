"""PyTorch references for the element-wise ops beyond the core arithmetic (see core.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _clamp(p, inputs, weights, state, ours):
    (x,) = inputs
    if p["min"] is None and p["max"] is None:
        return x * 1.0
    return torch.clamp(x, min=p["min"], max=p["max"])


REFS = {
    "div": lambda p, i, w, s, o: i[0] / i[1],
    "neg": lambda p, i, w, s, o: -i[0],
    "pow": lambda p, i, w, s, o: torch.pow(i[0], p["exponent"]),
    "exp": lambda p, i, w, s, o: torch.exp(i[0]),
    "log": lambda p, i, w, s, o: torch.log(i[0]),
    "sqrt": lambda p, i, w, s, o: torch.sqrt(i[0]),
    "abs": lambda p, i, w, s, o: torch.abs(i[0]),
    "clamp": _clamp,
    "where": lambda p, i, w, s, o: torch.where(i[0] != 0, i[1], i[2]),
    "leaky_relu": lambda p, i, w, s, o: F.leaky_relu(i[0], p["negative_slope"]),
    "gelu": lambda p, i, w, s, o: F.gelu(i[0], approximate=p["approximate"]),
    "sigmoid": lambda p, i, w, s, o: torch.sigmoid(i[0]),
    "silu": lambda p, i, w, s, o: F.silu(i[0]),
}
