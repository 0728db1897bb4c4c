"""Losses: scalar outputs that training minimises."""

from __future__ import annotations

import numpy as np

from engine.base.errors import WiregradError
from engine.core.registry import Example, OpSpec, Param, Port, ShapeError, TensorType, register
from engine.ops import batch_rules
from engine.ops._util import per_example, require_float, require_same_shape
from engine.ops.kernel_choice import call_kernel, kernels


def _ce_infer(inputs, params):
    logits, labels = inputs
    require_float(logits, "logits")
    if labels.dtype != "int":
        raise ShapeError("expects integer class labels", port="labels")
    if len(logits.shape) < 1 or tuple(labels.shape) != tuple(logits.shape[:-1]):
        lead = list(logits.shape[:-1])
        raise ShapeError(
            f"labels must have the logits' shape without the class axis ({lead}), "
            f"got {list(labels.shape)}", port="labels")
    return [TensorType((), "float")]




def _ce_batch(params, in_axes, out_axes, in_types):
    """A mean over the kept positions; the batch must not be the class axis."""
    logits_axis, labels_axis = in_axes
    if logits_axis is None or logits_axis == len(in_types[0].shape) - 1:
        return None
    return batch_rules.MEAN if labels_axis in (None, logits_axis) else None


def _ce_count(ctx) -> int:
    """Positions the mean averaged (labels equal to ignore_index left out)."""
    return int(ctx.saved[3])


def _check_labels(ctx, y: np.ndarray, c: int, ignore: int) -> None:
    if y.size and 0 <= y.min() and y.max() < c:  # the common case, without a masked copy
        return
    kept = y[y != ignore]
    if kept.size and (kept.min() < 0 or kept.max() >= c):
        raise WiregradError(f"labels must lie in [0, {c}) (or equal ignore_index {ignore}), "
                            f"got {int(kept.min())}..{int(kept.max())}",
                            node=ctx.eq.path, port="labels")


def _ce_forward(ctx, params, logits, labels):
    c = logits.shape[-1]
    x = np.ascontiguousarray(logits).reshape(-1, c)  # (N, C)
    y = np.ascontiguousarray(labels, dtype=np.int64).reshape(-1)  # (N,)
    ignore, eps = int(params["ignore_index"]), float(params["label_smoothing"])
    _check_labels(ctx, y, c, ignore)
    # The Numba kernel (vectorised polynomial exp) beats numpy in both dtypes at every size:
    # 768×83 float32 0.16 ms vs 0.30 ms (numpy's fixed cost alone is ~50 µs).
    lse = np.empty(x.shape[0])
    k = kernels("loss")
    fwd = k.cross_entropy_fwd32 if x.dtype == np.float32 else k.cross_entropy_fwd
    total, kept = call_kernel(fwd, x, y, ignore, eps, lse)
    ctx.save(x, y, lse, kept, logits.shape)
    return np.asarray(total / max(1, kept), dtype=logits.dtype)


def _ce_backward(ctx, params, g):
    x, y, lse, kept, shape = ctx.saved
    ignore, eps = int(params["ignore_index"]), float(params["label_smoothing"])
    scale = float(g) / max(1, kept)
    grad = np.empty_like(x)  # Numba in both dtypes (768×83 float32: 0.13 ms)
    k = kernels("loss")
    bwd = k.cross_entropy_bwd32 if x.dtype == np.float32 else k.cross_entropy_bwd
    call_kernel(bwd, x, y, lse, ignore, eps, scale, grad)
    return grad.reshape(shape), None


register(OpSpec(
    name="cross_entropy",
    category="loss",
    doc="""Cross-entropy from logits: fused log-softmax and negative log-likelihood.

    ``logits`` has classes on the last axis; ``labels`` holds integer class ids with the
    logits' shape minus that axis. Averaged over the positions whose label is not
    ``ignore_index`` (0 when every position is ignored). ``label_smoothing`` ε mixes the
    one-hot target with the uniform distribution: (1 − ε)·onehot + ε/C, like PyTorch.""",
    inputs=[Port("logits"), Port("labels", dtype="int", differentiable=False)],
    outputs=[Port("loss")],
    params=[
        Param("label_smoothing", "float", 0.0, minimum=0.0, maximum=1.0,
              doc="Weight ε of the uniform target."),
        Param("ignore_index", "int", -100, doc="Label value excluded from loss and mean."),
    ],
    infer=_ce_infer,
    forward=_ce_forward,
    backward=_ce_backward,
    flops=lambda inputs, outputs, params: 6 * per_example(inputs[0]),
    examples=[
        Example([((4, 3), "float"), ((4,), "int", 3)]),
        Example([((2, 3, 5), "float"), ((2, 3), "int", 5)], note="sequence"),
        Example([((1, 4), "float"), ((1,), "int", 4)], low=-4, high=4, note="batch of 1"),
        Example([((6, 4), "float"), ((6,), "int", 4)],
                {"label_smoothing": 0.1, "ignore_index": 1}, note="smoothing, ignore"),
        Example([((3, 5), "float"), ((3,), "int", 5)], {"label_smoothing": 0.3},
                low=-1e3, high=1e3, note="extreme logits"),
    ],
    batch_rule=_ce_batch, mean_count=_ce_count,
    family="loss",
))


def _bce_infer(inputs, params):
    logits, targets = inputs
    require_float(logits, "logits")
    require_float(targets, "targets")
    require_same_shape(logits, targets, "logits", "targets")
    return [TensorType((), "float")]


def _bce_forward(ctx, params, logits, targets):
    # max(x, 0) − x·t + log(1 + exp(−|x|)): no overflow for any x
    e = np.exp(-np.abs(logits))
    loss = np.maximum(logits, 0) - logits * targets + np.log1p(e)
    ctx.save(logits, targets, e)
    return np.asarray(loss.mean() if loss.size else 0.0, dtype=logits.dtype)


def _bce_backward(ctx, params, g):
    x, t, e = ctx.saved
    sig = np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))  # stable sigmoid(x)
    scale = g / max(1, x.size)
    return ((sig - t) * scale).astype(x.dtype), (-x * scale).astype(x.dtype)


register(OpSpec(
    name="binary_cross_entropy_with_logits",
    category="loss",
    doc="""Binary cross-entropy on logits (sigmoid fused in, stable for any magnitude).

    ``targets`` are probabilities in [0, 1] with the logits' shape; averaged over all
    elements: mean(max(x, 0) − x·t + log(1 + e^(−|x|))).""",
    inputs=[Port("logits"), Port("targets")],
    outputs=[Port("loss")],
    infer=_bce_infer,
    forward=_bce_forward,
    backward=_bce_backward,
    flops=lambda inputs, outputs, params: 6 * per_example(inputs[0]),
    examples=[
        Example([((4, 3), "float"), ((4, 3), "float")]),
        Example([((2, 3, 2), "float"), ((2, 3, 2), "float")], low=-30.0, high=30.0,
                note="wide range"),
        Example([((1, 1), "float"), ((1, 1), "float")], note="batch of 1"),
    ],
    batch_rule=batch_rules.mean_loss,
    family="loss",
))


def pair_infer(inputs, params):
    """A scalar from a float prediction and a float target of the same shape (MSE, MAE)."""
    pred, target = inputs
    require_float(pred, "pred")
    require_float(target, "target")
    require_same_shape(pred, target, "pred", "target")
    return [TensorType((), "float")]


def squared_error_forward(ctx, params, pred, target):
    """mean((pred − target)²): the ``mse`` loss and the ``mean_squared_error`` metric."""
    diff = pred - target
    ctx.save(diff)
    return np.asarray(np.mean(diff * diff), dtype=pred.dtype)


def squared_error_backward(ctx, params, g):
    (diff,) = ctx.saved
    grad = (2.0 / max(1, diff.size)) * g * diff
    return grad, -grad


register(OpSpec(
    name="mse",
    category="loss",
    doc="""Mean squared error between prediction and target (same shapes).""",
    inputs=[Port("pred"), Port("target")],
    outputs=[Port("loss")],
    infer=pair_infer,
    forward=squared_error_forward,
    backward=squared_error_backward,
    flops=lambda inputs, outputs, params: 3 * per_example(inputs[0]),
    examples=[
        Example([((4, 3), "float"), ((4, 3), "float")]),
        Example([((1, 1), "float"), ((1, 1), "float")], note="batch of 1"),
    ],
    batch_rule=batch_rules.mean_loss,
    family="loss",
))
