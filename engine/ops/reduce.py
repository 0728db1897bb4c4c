"""Reductions along axes (``axes`` empty means all axes), with ``keepdims``."""

from __future__ import annotations

import numpy as np

from engine.core.registry import Example, OpSpec, Param, Port, ShapeError, TensorType, register
from engine.ops import batch_rules
from engine.ops._util import per_example, require_float

REDUCE_PARAMS = [
    Param("axes", "ints", [], doc="Axes to reduce; empty for all axes."),
    Param("keepdims", "bool", False, doc="Keep reduced axes with size 1."),
]
REDUCE_EXAMPLES = [
    Example([((3, 4), "float")]),
    Example([((2, 3, 4), "float")], {"axes": [1]}),
    Example([((2, 3, 4), "float")], {"axes": [-1, 0], "keepdims": True}),
    Example([((1, 5), "float")], {"axes": [1]}, note="batch of 1"),
]


def reduce_axes(params: dict, ndim: int) -> tuple[int, ...]:
    """Normalised, sorted, unique axes for a reduction (all axes when empty)."""
    axes = params["axes"]
    if not axes:
        return tuple(range(ndim))
    out = set()
    for a in axes:
        if not -ndim <= a < ndim:
            raise ShapeError(f"axis {a} out of range for a {ndim}-D input", port="x")
        out.add(a % ndim)
    return tuple(sorted(out))


def reduce_infer(inputs, params):
    x = inputs[0]
    require_float(x, "x")
    axes = reduce_axes(params, len(x.shape))
    if params["keepdims"]:
        shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
    else:
        shape = tuple(d for i, d in enumerate(x.shape) if i not in axes)
    return [TensorType(shape, "float")]


def _reduced_axes(params: dict, ndim: int) -> tuple[int, ...]:
    """The axes a reduction combines (for the batch rule; every axis when empty)."""
    return reduce_axes(params, ndim)


def expand_grad(g: np.ndarray, x_shape: tuple, axes: tuple, keepdims: bool) -> np.ndarray:
    """Reshape a reduced gradient so it broadcasts back over *x_shape*."""
    if not keepdims:
        g = np.expand_dims(g, axes) if axes else g
    return g


def _flops(inputs, outputs, params):
    return per_example(inputs[0])


def reduction(name: str, doc: str, fwd, grad) -> OpSpec:
    def forward(ctx, params, x):
        axes = reduce_axes(params, x.ndim)
        out = fwd(x, axes, params["keepdims"])
        ctx.save(x, out, axes)
        return np.asarray(out, dtype=x.dtype)

    def backward(ctx, params, g):
        x, out, axes = ctx.saved
        gk = expand_grad(g, x.shape, axes, params["keepdims"])
        ok = expand_grad(out, x.shape, axes, params["keepdims"])
        return (grad(x, ok, gk, axes),)

    return register(OpSpec(
        name=name, category="op", doc=doc, inputs=[Port("x")], outputs=[Port("out")],
        params=list(REDUCE_PARAMS), infer=reduce_infer, forward=forward, backward=backward,
        flops=_flops, examples=list(REDUCE_EXAMPLES), family="reduce",
        batch_rule=batch_rules.rowwise_unless(_reduced_axes),
    ))


def _count(x, axes):
    n = 1
    for a in axes:
        n *= x.shape[a]
    return n


reduction("sum", "Sum along axes.", lambda x, axes, k: np.sum(x, axis=axes, keepdims=k),
          lambda x, out, g, axes: np.broadcast_to(g, x.shape).copy())
reduction("mean", "Mean along axes.", lambda x, axes, k: np.mean(x, axis=axes, keepdims=k),
          lambda x, out, g, axes: np.broadcast_to(g / _count(x, axes), x.shape).copy())


def _max_grad(x, out, g, axes):
    # Ties share the gradient equally, like torch.amax.
    mask = x == out
    return np.where(mask, g / mask.sum(axis=axes, keepdims=True), 0).astype(x.dtype, copy=False)


reduction("max", """Maximum along axes.

    The gradient goes to the maximal elements; tied maxima share it equally (like
    torch.amax).""", lambda x, axes, k: np.max(x, axis=axes, keepdims=k), _max_grad)


# ------------------------------------------------------------------ variance


def _var_forward(ctx, params, x):
    axes = reduce_axes(params, x.ndim)
    mean = np.mean(x, axis=axes, keepdims=True)
    d = x - mean
    n = _count(x, axes) - params["correction"]
    out = np.sum(d * d, axis=axes, keepdims=params["keepdims"]) / n
    ctx.save(d, axes, n)
    return np.asarray(out, dtype=x.dtype)


def _var_backward(ctx, params, g):
    d, axes, n = ctx.saved
    gk = expand_grad(g, d.shape, axes, params["keepdims"])
    return ((2 / n) * gk * d,)


register(OpSpec(
    name="var", category="op",
    doc="""Variance along axes: Σ(x − mean)² / (N − correction).

    ``correction`` = 1 (the default, like torch.var) gives the unbiased estimate; 0 gives the
    population variance (numpy.var's default).""",
    inputs=[Port("x")], outputs=[Port("out")],
    params=list(REDUCE_PARAMS) + [
        Param("correction", "int", 1, minimum=0,
              doc="Subtracted from the element count N (1: unbiased, 0: population)."),
    ],
    infer=reduce_infer, forward=_var_forward, backward=_var_backward,
    flops=lambda inputs, outputs, params: 3 * per_example(inputs[0]),
    examples=list(REDUCE_EXAMPLES) + [
        Example([((4, 6), "float")], {"axes": [0], "correction": 0}, note="population"),
    ],
    batch_rule=batch_rules.rowwise_unless(_reduced_axes),
    family="reduce",
))
