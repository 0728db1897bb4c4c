"""PyTorch reference for position ids."""

from __future__ import annotations

import torch

REFS = {
    "positions": lambda p, i, w, s, o: torch.arange(
        p["offset"], p["offset"] + i[0].shape[p["axis"]], dtype=torch.int64),
}
