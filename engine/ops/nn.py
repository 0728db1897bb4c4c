"""Neural-network primitives: softmax family, dropout, masking and embedding lookup.

Normalisation ops (layer_norm, batch_norm) live in :mod:`engine.ops.norm`. Kernels load
lazily (see ``_kernels``).
"""

from __future__ import annotations

import numpy as np

from engine.base.errors import WiregradError
from engine.core.registry import (
    Example,
    OpSpec,
    Param,
    Port,
    ShapeError,
    TensorType,
    broadcast_shapes,
    normalize_axis,
    register,
)
from engine.ops import batch_rules
from engine.ops._util import elementwise_flops, require_float
from engine.ops.kernel_choice import call_kernel, kernels


def log_softmax_ref(x: np.ndarray, axis: int) -> np.ndarray:
    """Numerically stable log-softmax (shift by the max)."""
    return kernels("softmax").log_softmax_ref(x, axis)


def _axis_infer(inputs, params):
    x = inputs[0]
    require_float(x, "x")
    if len(x.shape) == 0:
        raise ShapeError("needs at least a 1-D input (the axis to normalise over)", port="x")
    normalize_axis(params["axis"], len(x.shape), port="x")
    return [x]


def _along_last(fn, x: np.ndarray, axis: int, *more: np.ndarray) -> np.ndarray:
    """Apply a last-axis row function along *axis* (moving it last and back)."""
    axis = axis % x.ndim
    if axis == x.ndim - 1:
        return fn(x, *more)
    moved = [np.moveaxis(a, axis, -1) for a in (x, *more)]
    return np.moveaxis(fn(*moved), -1, axis)


def _log_softmax_forward(ctx, params, x):
    out = _along_last(kernels("softmax").log_softmax_rows, x, params["axis"])
    ctx.save(out)
    return out


def _log_softmax_backward(ctx, params, g):
    (out,) = ctx.saved
    return (_along_last(kernels("softmax").log_softmax_rows_bwd, out, params["axis"], g),)


def _softmax_forward(ctx, params, x):
    out = _along_last(kernels("softmax").softmax_rows, x, params["axis"])
    ctx.save(out)
    return out


def _softmax_backward(ctx, params, g):
    (out,) = ctx.saved
    return (_along_last(kernels("softmax").softmax_rows_bwd, out, params["axis"], g),)


AXIS_EXAMPLES = [
    Example([((3, 5), "float")]),
    Example([((2, 3, 4), "float")], {"axis": 1}),
    Example([((1, 6), "float")], {"axis": -1}, low=-30.0, high=30.0, note="wide range"),
    Example([((2, 4), "float")], {"axis": 0}, low=-1e3, high=1e3, note="extreme, axis 0"),
]

register(OpSpec(
    name="log_softmax",
    category="op",
    doc="""Log of the softmax along an axis, computed stably (max-shifted).""",
    inputs=[Port("x")],
    outputs=[Port("out")],
    params=[Param("axis", "int", -1, doc="Axis to normalise over.")],
    infer=_axis_infer,
    forward=_log_softmax_forward,
    backward=_log_softmax_backward,
    flops=elementwise_flops(5),
    examples=list(AXIS_EXAMPLES[:3]),
    batch_rule=batch_rules.rowwise_unless(batch_rules.param_axis("axis")),
    family="nn",
))

register(OpSpec(
    name="softmax",
    category="op",
    doc="""Softmax along an axis: exp(x − max) / Σ exp(x − max), stable for any magnitude.

    A slice that is entirely −inf (fully masked) gives zeros instead of NaN.""",
    inputs=[Port("x")],
    outputs=[Port("out")],
    params=[Param("axis", "int", -1, doc="Axis to normalise over.")],
    infer=_axis_infer,
    forward=_softmax_forward,
    backward=_softmax_backward,
    flops=elementwise_flops(5),
    examples=[*AXIS_EXAMPLES[:3], Example([((1, 1, 4), "float")], {"axis": 2},
                                          note="batch of 1")],
    batch_rule=batch_rules.rowwise_unless(batch_rules.param_axis("axis")),
    family="nn",
))


# ---------------------------------------------------------------- dropout


def _float_infer(inputs, params):
    require_float(inputs[0], "x")
    return [inputs[0]]


def _dropout_forward(ctx, params, x):
    p = float(params["p"])
    if not ctx.training or p == 0.0:
        ctx.save(None)
        return x
    if p >= 1.0:
        mask = np.zeros(x.shape, x.dtype)
    else:
        keep = ctx.rng.random(x.shape) >= p
        mask = keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - p))
    ctx.save(mask)
    return x * mask


def _dropout_backward(ctx, params, g):
    (mask,) = ctx.saved
    return (g if mask is None else g * mask,)


register(OpSpec(
    name="dropout",
    category="op",
    doc="""Dropout: zero each element with probability p while training, scale the rest by 1/(1−p).

    The identity in evaluation mode. The random mask is seeded per forward pass and node, so
    a run is reproducible.""",
    inputs=[Port("x")],
    outputs=[Port("out")],
    params=[Param("p", "float", 0.5, minimum=0.0, maximum=1.0, hot=True,
                  doc="Probability of zeroing an element.")],
    infer=_float_infer,
    forward=_dropout_forward,
    backward=_dropout_backward,
    flops=elementwise_flops(1),
    examples=[
        Example([((4, 6), "float")]),
        Example([((2, 3, 5), "float")], {"p": 0.2}),
        Example([((1, 8), "float")], {"p": 0.0}, note="batch of 1, p=0"),
        Example([((3, 4), "float")], {"p": 1.0}, note="p=1 drops everything"),
    ],
    batch_rule=batch_rules.rowwise,
    family="nn",
))


# ---------------------------------------------------------------- masking


def _masked_fill_infer(inputs, params):
    x, mask = inputs
    require_float(x, "x")
    if mask.dtype != "int":
        raise ShapeError("expects an integer mask (non-zero = fill)", port="mask")
    out = broadcast_shapes(x.shape, mask.shape, port_names=["x", "mask"])
    if len(out) != len(x.shape) or any(
            isinstance(a, int) and isinstance(b, int) and a != b for a, b in zip(out, x.shape)):
        raise ShapeError(f"mask {list(mask.shape)} must broadcast to x {list(x.shape)}",
                         port="mask")
    return [x]


def _masked_fill_forward(ctx, params, x, mask):
    fill = np.broadcast_to(mask != 0, x.shape)
    ctx.save(fill)
    return np.where(fill, x.dtype.type(params["value"]), x)


def _masked_fill_backward(ctx, params, g):
    (fill,) = ctx.saved
    return np.where(fill, 0, g).astype(g.dtype, copy=False), None


register(OpSpec(
    name="masked_fill",
    category="op",
    doc="""Replace x where mask is non-zero by a constant value (mask broadcasts to x).

    Filled positions receive no gradient. For attention masks prefer a big negative value
    (the default −1e9) over −inf: softmax then gives exact zeros there and a row that is
    masked everywhere stays finite.""",
    inputs=[Port("x"), Port("mask", dtype="int", differentiable=False)],
    outputs=[Port("out")],
    params=[Param("value", "float", -1e9, doc="Value written where mask ≠ 0.")],
    infer=_masked_fill_infer,
    forward=_masked_fill_forward,
    backward=_masked_fill_backward,
    flops=elementwise_flops(1),
    examples=[
        Example([((3, 4), "float"), ((3, 4), "int", 2)], {"value": -5.0}),
        Example([((2, 3, 4), "float"), ((3, 1), "int", 2)], {"value": 0.0}, note="broadcast"),
        Example([((1, 5), "float"), ((5,), "int", 2)], {"value": 2.5}, note="batch of 1"),
    ],
    batch_rule=batch_rules.broadcast_rowwise,
    family="nn",
))


def causal_allowed(t: int, s: int, offset: int) -> np.ndarray:
    """Boolean ``(T, S)``: True where position j ≤ i + offset (kept by :func:`causal_mask`)."""
    return np.arange(s)[None, :] <= np.arange(t)[:, None] + offset


def _causal_infer(inputs, params):
    x = inputs[0]
    require_float(x, "x")
    if len(x.shape) < 2:
        raise ShapeError("needs at least 2 axes (query, key) to mask", port="x")
    return [x]


def _causal_forward(ctx, params, x):
    keep = causal_allowed(x.shape[-2], x.shape[-1], params["offset"])
    ctx.save(keep)
    return np.where(keep, x, x.dtype.type(params["value"]))


def _causal_backward(ctx, params, g):
    (keep,) = ctx.saved
    return (np.where(keep, g, 0).astype(g.dtype, copy=False),)


register(OpSpec(
    name="causal_mask",
    category="op",
    doc="""Causal mask for attention scores: fill positions j > i (+ offset) of the last two axes.

    Feed the result to softmax over the last axis. The default fill is −1e9, not −inf: softmax
    gives exact zeros there just the same, and rows that end up fully masked (an offset below
    zero) stay finite instead of NaN. Masked positions receive no gradient. ``value`` may be
    set to −inf if you know every row keeps at least one position.""",
    inputs=[Port("x")],
    outputs=[Port("out")],
    params=[
        Param("value", "float", -1e9, doc="Value written at masked (future) positions."),
        Param("offset", "int", 0, doc="Query i sees keys j ≤ i + offset (Tk − Tq for a cache)."),
    ],
    infer=_causal_infer,
    forward=_causal_forward,
    backward=_causal_backward,
    flops=elementwise_flops(1),
    examples=[
        Example([((2, 4, 4), "float")], {"value": -7.0}),
        Example([((2, 2, 3, 5), "float")], {"value": 0.0, "offset": 2}, note="rectangular"),
        Example([((1, 3, 3), "float")], {"value": -1e3}, low=-1e3, high=1e3,
                note="batch of 1, extreme"),
    ],
    batch_rule=batch_rules.rowwise_unless(batch_rules.last_axes(2)),
    family="nn",
))


# ---------------------------------------------------------------- embedding


def _embedding_infer(inputs, params):
    ids, weight = inputs
    if ids.dtype != "int":
        raise ShapeError("expects integer token ids", port="ids")
    require_float(weight, "weight")
    if len(weight.shape) != 2:
        raise ShapeError(f"the table must be 2-D (num_embeddings, dim), got "
                         f"{list(weight.shape)}", port="weight")
    return [TensorType(tuple(ids.shape) + (weight.shape[1],), "float")]


def _embedding_forward(ctx, params, ids, weight):
    num = weight.shape[0]
    flat = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
    if flat.size and (flat.min() < 0 or flat.max() >= num):
        bad = int(kernels("embedding").ids_in_range(flat, num))
        raise WiregradError(
            f"token id {int(flat[bad])} (at flat position {bad}) is outside the embedding "
            f"table's range [0, {num})", node=ctx.eq.path, port="ids")
    ctx.save(flat, weight.shape)
    return np.take(weight, flat, axis=0).reshape(tuple(ids.shape) + (weight.shape[1],))


def _embedding_backward(ctx, params, g):
    flat, shape = ctx.saved
    gw = np.zeros(shape, g.dtype)
    g2 = np.ascontiguousarray(g).reshape(-1, shape[1])
    call_kernel(kernels("embedding").embedding_bwd, flat, g2, gw)
    return None, gw


register(OpSpec(
    name="embedding",
    category="op",
    doc="""Embedding lookup: row ids[…] of a (num_embeddings, dim) table.

    Output shape is ids' shape plus dim. Wire the table from a parameter node. The backward
    scatter-adds gradients into the rows that were used (repeated ids accumulate). Ids outside
    the table are an error naming this node.""",
    inputs=[Port("ids", dtype="int", differentiable=False), Port("weight")],
    outputs=[Port("out")],
    infer=_embedding_infer,
    forward=_embedding_forward,
    backward=_embedding_backward,
    flops=lambda inputs, outputs, params: 0,
    examples=[
        Example([((6,), "int", 5), ((5, 3), "float")]),
        Example([((2, 4), "int", 7), ((7, 4), "float")], note="batch × sequence"),
        Example([((1, 3), "int", 2), ((2, 5), "float")], note="batch of 1, repeated ids"),
    ],
    batch_rule=batch_rules.first_input_only(batch_rules.rowwise),
    family="nn",
))

