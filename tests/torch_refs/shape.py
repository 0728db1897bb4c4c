"""PyTorch references for the shape ops (engine/ops/shape.py)."""

from __future__ import annotations

import torch


def _target(shape: list, sizes: tuple) -> list:
    """A symbol standing where the axes before it are the input's takes the input's size
    there (so ["B", "T", 2, -1] on a 2×3×4 input is 2×3×2×2); any other symbol is -1."""
    out: list = []
    for k, d in enumerate(shape):
        if not isinstance(d, str):
            out.append(d)
        elif k < len(sizes) and all(isinstance(shape[j], str) or shape[j] == sizes[j]
                                    for j in range(k)):
            out.append(sizes[k])
        else:
            out.append(-1)
    return out


def _split(p, inputs, weights, state, ours):
    (x,) = inputs
    axis = p["axis"] % x.ndim
    n = x.shape[axis]
    if p["sizes"]:
        rest = n - sum(s for s in p["sizes"] if s != -1)
        sizes = [rest if s == -1 else s for s in p["sizes"]]
    else:
        sizes = [n // p["parts"]] * p["parts"]
    parts = list(torch.split(x, sizes, dim=axis))
    parts += [x.narrow(axis, n, 0)] * (4 - len(parts))
    return tuple(parts)


def _slice(p, inputs, weights, state, ours):
    (x,) = inputs
    axis = p["axis"] % x.ndim
    return x[(slice(None),) * axis + (slice(p["start"], p["stop"], p["step"]),)]


REFS = {
    "permute": lambda p, i, w, s, o: i[0].permute(*p["axes"]),
    "transpose": lambda p, i, w, s, o: i[0].transpose(p["dim0"], p["dim1"]),
    # a symbol the (concrete) input does not name is inferred, like -1
    "reshape": lambda p, i, w, s, o: i[0].reshape(_target(p["shape"], tuple(i[0].shape))),
    "concat": lambda p, i, w, s, o: torch.cat(i, dim=p["axis"]),
    "split": _split,
    "slice": _slice,
    "index": lambda p, i, w, s, o: i[0].select(p["axis"], p["index"]),
    "broadcast_to": lambda p, i, w, s, o: torch.broadcast_to(i[0], p["shape"]),
}
