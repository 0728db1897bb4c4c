"""Sequence helpers: position ids for learned positional embeddings."""

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
    normalize_axis,
    register,
)
from engine.ops import batch_rules


def _infer(inputs, params):
    x = inputs[0]
    axis = normalize_axis(params["axis"], len(x.shape), port="x")
    length = x.shape[axis]
    limit = params["limit"]
    if limit and isinstance(length, int) and length > limit:
        raise ShapeError(f"sequence length {length} exceeds the block size {limit}", port="x")
    return [TensorType((length,), "int")]


def _forward(ctx, params, x):
    axis = params["axis"] % x.ndim
    length = x.shape[axis]
    limit = params["limit"]
    if limit and params["offset"] + length > limit:
        raise WiregradError(
            f"positions {params['offset']}..{params['offset'] + length - 1} exceed the block "
            f"size {limit}: shorten the sequence", node=ctx.eq.top)
    return np.arange(params["offset"], params["offset"] + length, dtype=np.int64)


def _positions_batch(params, in_axes, out_axes, in_types):
    """Ids along a sequence axis depend on its length only; along the batch they would not."""
    axis = params["axis"] % len(in_types[0].shape)
    return batch_rules.SHAPE_ONLY if in_axes[0] != axis else None


register(OpSpec(
    name="positions",
    category="op",
    doc="""Position ids 0…T−1 along an axis of x (the sequence length), as integers.

    Feeds a learned positional embedding. ``limit`` (the block size, 0 = none) refuses longer
    sequences with a clear error.""",
    inputs=[Port("x", dtype="any", differentiable=False)],
    outputs=[Port("out", dtype="int")],
    params=[
        Param("axis", "int", 1, doc="Sequence axis of x."),
        Param("limit", "int", 0, minimum=0, doc="Largest allowed length (block size)."),
        Param("offset", "int", 0, minimum=0, doc="First position (e.g. after a KV cache)."),
    ],
    infer=_infer,
    forward=_forward,
    backward=lambda ctx, params, g: (None,),
    flops=lambda i, o, p: 0,
    examples=[Example([((2, 5, 3), "float")], {"limit": 8})],
    batch_rule=_positions_batch,
    family="sequence",
))
