"""PyTorch references for the foundation ops (io, arithmetic, matmul)."""

from __future__ import annotations

import torch


def _reduce(fn):
    def ref(p, inputs, weights, state, ours):
        (x,) = inputs
        axes = tuple(p["axes"]) if p["axes"] else tuple(range(x.ndim))
        return fn(x, dim=axes, keepdim=p["keepdims"])

    return ref


def _matmul(p, inputs, weights, state, ours):
    a, b = inputs
    if p["transpose_a"]:
        a = a.transpose(-1, -2)
    if p["transpose_b"]:
        b = b.transpose(-1, -2)
    return a @ b


REFS = {
    "input": lambda p, inputs, w, s, ours: ours[0],
    "constant": lambda p, inputs, w, s, ours: torch.full(tuple(p["shape"]), p["value"],
                                                          dtype=torch.float64),
    "parameter": lambda p, inputs, w, s, ours: w[""] * 1.0,
    "add": lambda p, i, w, s, o: i[0] + i[1],
    "sub": lambda p, i, w, s, o: i[0] - i[1],
    "mul": lambda p, i, w, s, o: i[0] * i[1],
    "relu": lambda p, i, w, s, o: torch.relu(i[0]),
    "tanh": lambda p, i, w, s, o: torch.tanh(i[0]),
    "sum": _reduce(torch.sum),
    "mean": _reduce(torch.mean),
    "matmul": _matmul,
}
