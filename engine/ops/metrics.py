"""Evaluation metrics: scalar nodes wired to model outputs and labels.

They run in every forward pass; the trainer reports them on the validation split, averaged
over evaluation batches. No gradient flows through them into training (only the loss is
differentiated), but each still has a correct backward where one exists.
"""

from __future__ import annotations

import numpy as np

from engine.base.errors import WiregradError
from engine.core.registry import Example, OpSpec, Param, Port, ShapeError, TensorType, register
from engine.ops._util import per_example, require_float
from engine.ops.loss import (  # the same arithmetic and shape check as the loss
    pair_infer,
    squared_error_backward,
    squared_error_forward,
)


def _class_infer(inputs, params):
    logits, labels = inputs
    require_float(logits, "logits")
    if labels.dtype != "int":
        raise ShapeError("expects integer class labels", port="labels")
    if tuple(labels.shape) != tuple(logits.shape[:-1]):
        raise ShapeError(f"labels must have shape {list(logits.shape[:-1])}, got "
                         f"{list(labels.shape)}", port="labels")
    return [TensorType((), "float")]


def _top_k_hits(logits: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """1.0 where the label is among the k largest logits (ties: strictly larger count)."""
    flat = logits.reshape(-1, logits.shape[-1])
    y = labels.reshape(-1)
    target = flat[np.arange(y.shape[0]), y][:, None]
    rank = np.sum(flat > target, axis=-1)  # how many classes beat the label
    return (rank < k).astype(np.float64)


def _accuracy_forward(ctx, params, logits, labels):
    k = params.get("k", 1)
    classes = logits.shape[-1]
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        bad = labels[(labels < 0) | (labels >= classes)].reshape(-1)[0]
        raise WiregradError(f"labels must lie in [0, {classes}) (the logits' last axis); got "
                            f"{int(bad)}", node=ctx.eq.path, field="labels")
    hits = _top_k_hits(logits, labels, k)
    return np.asarray(hits.mean() if hits.size else 0.0, dtype=logits.dtype)


def _no_grad(ctx, params, g):
    return None, None


CLASS_EXAMPLES = [
    Example([((6, 4), "float"), ((6,), "int", 4)]),
    Example([((2, 3, 5), "float"), ((2, 3), "int", 5)], note="sequence"),
]

register(OpSpec(
    name="accuracy",
    category="metric",
    doc="""Classification accuracy: fraction of positions whose largest logit is the label.""",
    inputs=[Port("logits"), Port("labels", dtype="int", differentiable=False)],
    outputs=[Port("value")],
    infer=_class_infer,
    forward=_accuracy_forward,
    backward=_no_grad,
    flops=lambda i, o, p: per_example(i[0]),
    examples=list(CLASS_EXAMPLES),
    family="metrics",
))

register(OpSpec(
    name="top_k_accuracy",
    category="metric",
    doc="""Top-k accuracy: fraction of positions whose label is among the k largest logits.""",
    inputs=[Port("logits"), Port("labels", dtype="int", differentiable=False)],
    outputs=[Port("value")],
    params=[Param("k", "int", 5, minimum=1, doc="How many top classes count as a hit.")],
    infer=_class_infer,
    forward=_accuracy_forward,
    backward=_no_grad,
    flops=lambda i, o, p: per_example(i[0]),
    examples=[Example([((6, 7), "float"), ((6,), "int", 7)], {"k": 3})],
    family="metrics",
))


def _perplexity_infer(inputs, params):
    require_float(inputs[0], "loss")
    if inputs[0].shape != ():
        raise ShapeError("expects a scalar loss (mean cross-entropy in nats)", port="loss")
    return [TensorType((), "float")]


def _perplexity_forward(ctx, params, loss):
    out = np.exp(np.minimum(loss, 700.0))
    ctx.save(out)
    return np.asarray(out, dtype=loss.dtype)


def _perplexity_backward(ctx, params, g):
    (out,) = ctx.saved
    return (g * out,)


register(OpSpec(
    name="perplexity",
    category="metric",
    doc="""Perplexity: exp of a mean cross-entropy loss (nats), for language models.""",
    inputs=[Port("loss")],
    outputs=[Port("value")],
    infer=_perplexity_infer,
    forward=_perplexity_forward,
    backward=_perplexity_backward,
    flops=lambda i, o, p: 1,
    examples=[Example([((), "float")], low=0.5, high=3.0)],
    family="metrics",
))


def _mae_forward(ctx, params, pred, target):
    diff = pred - target
    ctx.save(diff)
    return np.asarray(np.mean(np.abs(diff)), dtype=pred.dtype)


def _mae_backward(ctx, params, g):
    (diff,) = ctx.saved
    grad = g * np.sign(diff) / max(1, diff.size)
    return grad, -grad


PAIR_EXAMPLES = [Example([((5, 2), "float"), ((5, 2), "float")])]

register(OpSpec(
    name="mean_absolute_error",
    category="metric",
    doc="""Mean absolute error |pred − target| for regression.""",
    inputs=[Port("pred"), Port("target")],
    outputs=[Port("value")],
    infer=pair_infer,
    forward=_mae_forward,
    backward=_mae_backward,
    flops=lambda i, o, p: 2 * per_example(i[0]),
    examples=list(PAIR_EXAMPLES),
    family="metrics",
))

register(OpSpec(
    name="mean_squared_error",
    category="metric",
    doc="""Mean squared error (pred − target)² for regression, as a reported metric.""",
    inputs=[Port("pred"), Port("target")],
    outputs=[Port("value")],
    infer=pair_infer,
    forward=squared_error_forward,
    backward=squared_error_backward,
    flops=lambda i, o, p: 2 * per_example(i[0]),
    examples=list(PAIR_EXAMPLES),
    family="metrics",
))
