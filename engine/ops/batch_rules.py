"""How ops treat the batch axis: the facts the two-core batch split
(:mod:`engine.train.batch_split`) relies on to run the rows of a batch as independent parts.

A rule is called as ``rule(params, in_axes, out_axes, in_types)``: the op's params, the batch
axis of each input (``None`` when that input does not depend on the batch: weights, constants,
position ids), the axis of each output whose shape carries the batch symbol (``None`` where it
does not) and the input types. It answers one of

* :data:`ROWWISE` — each slice of the outputs along their batch axis depends only on the same
  slice of the inputs (element-wise maths, matmul against a weight, attention over a batch of
  sequences, layer norm over features, reshapes that keep the batch leading);
* :data:`SHAPE_ONLY` — the outputs depend on the inputs' shapes, not on the batch's values
  (position ids), and are the same for every part;
* :data:`MEAN` — a loss: the scalar mean over the batch's elements;
* ``None`` — the op may mix examples along this batch axis (a reduction over it, batch norm's
  statistics, a softmax across the batch): the graph then trains unsplit.
"""

from __future__ import annotations

from collections.abc import Callable

ROWWISE = "rowwise"
SHAPE_ONLY = "shape_only"
MEAN = "mean"


def _from_end(axis: int, ndim: int) -> int:
    return ndim - axis


def _others_broadcast(in_axes, in_types, spot: int) -> bool:
    """Inputs that do not depend on the batch must broadcast along it: no axis at *spot*
    (counted from the end) or a size-1 one. (A weight with a real axis there would pair its
    rows with the examples.)"""
    for axis, t in zip(in_axes, in_types):
        if axis is None and t is not None and len(t.shape) >= spot and t.shape[-spot] != 1:
            return False
    return True


def rowwise(params, in_axes, out_axes, in_types) -> str:
    """Never mixes positions of any axis (permute, transpose, dropout)."""
    return ROWWISE


def broadcast_rowwise(params, in_axes, out_axes, in_types) -> str | None:
    """Element-wise with broadcasting: the batch axis of every batched input must line up
    (counted from the last axis) with the output's batch axis."""
    spots = {_from_end(a, len(t.shape)) for a, t in zip(in_axes, in_types) if a is not None}
    if len(spots) != 1 or out_axes[0] is None:
        return None
    return ROWWISE if _others_broadcast(in_axes, in_types, spots.pop()) else None


def rowwise_unless(mixed_axes: Callable[[dict, int], tuple[int, ...]]) -> Callable:
    """Row-wise unless an input's batch axis is among ``mixed_axes(params, ndim)`` (the axes
    the op normalises, reduces, concatenates or selects along). Several batched inputs (a
    concat) must agree on the batch axis; inputs without it must broadcast along it."""

    def rule(params, in_axes, out_axes, in_types) -> str | None:
        for axis, t in zip(in_axes, in_types):
            if axis is not None and axis in mixed_axes(params, len(t.shape)):
                return None
        spots = {_from_end(a, len(t.shape)) for a, t in zip(in_axes, in_types) if a is not None}
        if len(spots) != 1 or any(a is None for a in out_axes):
            return None
        return ROWWISE if _others_broadcast(in_axes, in_types, spots.pop()) else None

    return rule


def last_axes(count: int) -> Callable[[dict, int], tuple[int, ...]]:
    """The last *count* axes (layer norm: 1; a causal mask or attention's T×D: 2)."""
    return lambda params, ndim: tuple(range(max(0, ndim - count), ndim))


def param_axis(name: str) -> Callable[[dict, int], tuple[int, ...]]:
    """The axis named by the param *name* (normalised; e.g. softmax's ``axis``)."""

    def axes(params, ndim: int) -> tuple[int, ...]:
        value = params[name]
        return (value % ndim,) if ndim else ()

    return axes


def leading_only(params, in_axes, out_axes, in_types) -> str | None:
    """Batched inputs must carry the batch on axis 0 (convolution, pooling: N×C×H×W)."""
    return ROWWISE if all(a in (None, 0) for a in in_axes) else None


def first_input_only(rule: Callable) -> Callable:
    """*rule* applied to the first input; any other input depending on the batch (an embedding
    table, a convolution kernel computed from the data) makes the op mix examples."""

    def wrapped(params, in_axes, out_axes, in_types) -> str | None:
        if any(a is not None for a in in_axes[1:]):
            return None
        return rule(params, in_axes, out_axes, in_types)

    return wrapped


def mean_loss(params, in_axes, out_axes, in_types) -> str | None:
    """A loss averaged over every element (MSE, BCE): parts weigh in by their element counts.
    Prediction and target must carry the batch on the same axis of equally shaped inputs (a
    (B, 1) against a (1, B) would broadcast every example against every other)."""
    if any(a is None for a in in_axes):
        return None
    layouts = {(a, len(t.shape)) for a, t in zip(in_axes, in_types)}
    return MEAN if len(layouts) == 1 else None
