"""PyTorch references for the reductions beyond sum/mean (those live in core.py)."""

from __future__ import annotations

import torch


def _dims(p, x):
    return tuple(p["axes"]) if p["axes"] else tuple(range(x.ndim))


REFS = {
    "max": lambda p, i, w, s, o: torch.amax(i[0], dim=_dims(p, i[0]), keepdim=p["keepdims"]),
    "var": lambda p, i, w, s, o: torch.var(i[0], dim=_dims(p, i[0]),
                                           correction=p["correction"], keepdim=p["keepdims"]),
}
