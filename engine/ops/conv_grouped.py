"""Grouped convolutions with several input channels per group (ResNeXt's, AlexNet's two
halves) as one convolution per group, each on the route chosen for its own shape (Winograd,
per image, whole batch; :mod:`engine.ops.conv`).

The whole-batch GEMM route takes groups too, but its columns copy every group's image kh·kw
times for GEMMs of one group's channels: 32×32×16² 3×3 with 4 groups took 6.9 ms CPU forward
and backward against PyTorch's 2.5 ms. Cut into groups, each is a 32×8×16² convolution that
the Winograd route takes. It pays only where each group gets that route (one-thread CPU,
forward and backward, whole-batch route → group by group): 3×3 with 4 groups of 8 channels
5.5–8.1 → 2.9–3.0 ms, 2 groups of 32 19.1 → 9.7–11.8, 5×5 with 4 groups of 16 19.3–19.7 →
12.6–13.2 (32×32×16², 32×64×16², 16×64×15²); with groups of 4 channels, at stride 2 or for
1×1 kernels the per-group calls cost more than the copies save (8 groups of 4 6.1 → 6.7–7.3,
stride 2 with 4 groups of 16 5.0–5.1 → 5.8–7.1, 1×1 stride 2 0.34 → 0.63).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from engine.ops import conv_winograd


class _GroupContext:
    """What one group's convolution saves between its forward and backward."""

    __slots__ = ("saved", "needs_input_grad")

    def __init__(self) -> None:
        self.saved: tuple = ()
        self.needs_input_grad: tuple = ()

    def save(self, *arrays) -> None:
        self.saved = arrays


def applies(params: dict, x_shape: tuple, w_shape: tuple) -> bool:
    """Whether conv2d runs group by group: several groups, each of which the Winograd route
    takes (3×3 or 5×5, stride 1, enough channels per group)."""
    groups = params["groups"]
    if groups <= 1:
        return False
    one = (x_shape[0], x_shape[1] // groups, *x_shape[2:])
    return conv_winograd.applies({**params, "groups": 1}, one, w_shape)


def forward(ctx, params: dict, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None,
            conv_forward: Callable) -> np.ndarray:
    """conv2d as one ``conv_forward`` per group (its params with ``groups`` 1), outputs
    side by side along the channels; saves each group's context."""
    groups, cg = params["groups"], weight.shape[1]
    og = weight.shape[0] // groups
    one = {**params, "groups": 1}
    parts, outs = [], []
    for i in range(groups):
        sub = _GroupContext()
        outs.append(conv_forward(sub, one, np.ascontiguousarray(x[:, i * cg:(i + 1) * cg]),
                                 weight[i * og:(i + 1) * og],
                                 None if bias is None else bias[i * og:(i + 1) * og]))
        parts.append(sub)
    ctx.save("grouped", parts)
    return np.concatenate(outs, axis=1)


def backward(ctx, params: dict, g: np.ndarray, conv_backward: Callable) -> tuple:
    """(gx or None, gw, gb or None), group by group."""
    parts = ctx.saved[1]
    og = g.shape[1] // len(parts)
    one = {**params, "groups": 1}
    grads = []
    for i, sub in enumerate(parts):
        sub.needs_input_grad = ctx.needs_input_grad
        grads.append(conv_backward(sub, one, np.ascontiguousarray(g[:, i * og:(i + 1) * og])))
    gx = None if grads[0][0] is None else np.concatenate([q[0] for q in grads], axis=1)
    gb = None if grads[0][2] is None else np.concatenate([q[2] for q in grads])
    return gx, np.concatenate([q[1] for q in grads], axis=0), gb
