"""Normalisation primitives: fused layer norm and batch norm (part of the ``nn`` family).

Affine weight and bias are optional *inputs* (wire them from parameter nodes), so the same op
serves LayerNorm with or without bias. Batch norm owns its running statistics as state.
"""

from __future__ import annotations

import numpy as np

from engine.base.errors import WiregradError
from engine.core.registry import Example, OpSpec, Param, Port, ShapeError, WeightSpec, register
from engine.ops import batch_rules, two_cores
from engine.ops._util import elementwise_flops, require_float
from engine.ops.kernel_choice import call_kernel, kernels


def _check_vector(t, size, port: str, what: str) -> None:
    if t is None:
        return
    require_float(t, port)
    ok = len(t.shape) == 1 and (not isinstance(t.shape[0], int) or not isinstance(size, int)
                                or t.shape[0] == size)
    if not ok:
        raise ShapeError(f"must have shape ({size},) to match {what}, got {list(t.shape)}",
                         port=port)


def affine(x: np.ndarray, size: int, weight, bias):
    w = np.ones(size, x.dtype) if weight is None else np.ascontiguousarray(weight, x.dtype)
    b = np.zeros(size, x.dtype) if bias is None else np.ascontiguousarray(bias, x.dtype)
    return w, b


# ---------------------------------------------------------------- layer norm


def _ln_infer(inputs, params):
    x = inputs[0]
    require_float(x, "x")
    if len(x.shape) == 0:
        raise ShapeError("needs at least a 1-D input (normalised over the last axis)", port="x")
    d = x.shape[-1]
    _check_vector(inputs[1] if len(inputs) > 1 else None, d, "weight", "the last axis of x")
    _check_vector(inputs[2] if len(inputs) > 2 else None, d, "bias", "the last axis of x")
    return [x]


def _ln_forward(ctx, params, x, weight=None, bias=None):
    d = x.shape[-1]
    x2 = np.ascontiguousarray(x).reshape(-1, d)  # (N, D)
    w, b = affine(x, d, weight, bias)
    out = np.empty(x2.shape, x.dtype)
    mean = np.empty(x2.shape[0])
    rstd = np.empty(x2.shape[0])
    call_kernel(kernels("norm").layer_norm_fwd, x2, w, b, float(params["eps"]), out, mean, rstd)
    ctx.save(x2, mean, rstd, w, weight is not None, bias is not None)
    return out.reshape(x.shape)


def _ln_backward(ctx, params, g):
    x2, mean, rstd, w, has_w, has_b = ctx.saved
    d = x2.shape[1]
    g2 = np.ascontiguousarray(g, x2.dtype).reshape(-1, d)
    gx = np.empty(x2.shape, x2.dtype)
    gw = np.zeros(d)
    gb = np.zeros(d)
    call_kernel(kernels("norm").layer_norm_bwd, g2, x2, mean, rstd, w, gx, gw, gb)
    return (gx.reshape(g.shape), gw.astype(x2.dtype) if has_w else None,
            gb.astype(x2.dtype) if has_b else None)


register(OpSpec(
    name="layer_norm",
    category="op",
    doc="""Layer normalisation over the last axis: (x − mean) / √(var + eps) · weight + bias.

    One fused kernel per pass (statistics in float64). ``weight`` and ``bias`` are optional
    inputs of shape (D,) for the last axis D; wire them from parameter nodes (ones / zeros).""",
    inputs=[Port("x"), Port("weight", optional=True), Port("bias", optional=True)],
    outputs=[Port("out")],
    params=[Param("eps", "float", 1e-5, minimum=0.0, doc="Added to the variance.")],
    infer=_ln_infer,
    forward=_ln_forward,
    backward=_ln_backward,
    flops=elementwise_flops(8),
    examples=[
        Example([((4, 6), "float"), ((6,), "float"), ((6,), "float")]),
        Example([((2, 3, 5), "float"), ((5,), "float")], note="no bias"),
        Example([((1, 8), "float"), ((8,), "float"), ((8,), "float")], low=-1e3, high=1e3,
                note="batch of 1, extreme"),
        Example([((3, 4), "float")], {"eps": 1e-3}, note="no affine"),
    ],
    batch_rule=batch_rules.first_input_only(batch_rules.rowwise_unless(batch_rules.last_axes(1))),
    family="nn",
))


# ---------------------------------------------------------------- batch norm


def _bn_channels(params, inputs) -> tuple[int]:
    x = inputs[0]
    if len(x.shape) < 2:
        raise ShapeError("needs (N, C) or (N, C, …) input", port="x")
    return (x.shape[1],)


def _bn_infer(inputs, params):
    x = inputs[0]
    require_float(x, "x")
    (c,) = _bn_channels(params, inputs)
    _check_vector(inputs[1] if len(inputs) > 1 else None, c, "weight", "the channel axis 1")
    _check_vector(inputs[2] if len(inputs) > 2 else None, c, "bias", "the channel axis 1")
    return [x]


# Both cores per op (engine.ops.two_cores): the statistics are per channel, so a large batch
# norm runs as blocks of channels on two threads (not blocks of rows, which would need every
# row's sums first); forward ~6 and backward ~10 flops per element, against MIN_FLOPS
_FWD_FLOPS, _BWD_FLOPS = 6.0, 10.0


def _by_channels(c: int, work: float, fn, kernel=None, args: tuple = (), dtype=None) -> None:
    """``fn(c0, c1)`` over the *c* channels, or the parallel Numba *kernel* ``(*args,
    bounds)`` over blocks of channels on Numba's threads (:func:`two_cores.run_native`), or
    two Python threads in blocks when *work* pays."""
    if kernel is not None and two_cores.run_native(c, work, kernel, args, dtype,
                                                   two_cores.NATIVE_PASS_MIN_FLOPS):
        return
    if two_cores.ways(c, work, two_cores.PASS_MIN_FLOPS) == 2:
        two_cores.halves(c, fn)
    else:
        fn(0, c)


def _bn_forward(ctx, params, x, weight=None, bias=None):
    n, c = x.shape[:2]
    x3 = np.ascontiguousarray(x).reshape(n, c, -1)  # (N, C, S)
    w, b = affine(x, c, weight, bias)
    k = kernels("norm")
    eps = float(params["eps"])
    rm, rv = ctx.state["running_mean"], ctx.state["running_var"]
    out = np.empty(x3.shape, x.dtype)
    if ctx.training:
        m = n * x3.shape[2]
        if m < 2:
            raise WiregradError("batch norm needs more than one value per channel while "
                                f"training (got input {list(x.shape)})", node=ctx.eq.path,
                                port="x")
        mean, var, invstd = np.empty(c), np.empty(c), np.empty(c)

        def part(c0: int, c1: int) -> None:
            k.batch_norm_stats(x3, mean, var, invstd, eps, c0, c1)
            k.batch_norm_apply(x3, mean, invstd, w, b, out, c0, c1)

        _by_channels(c, _FWD_FLOPS * x3.size, part, k.batch_norm_fwd_parallel,
                     (x3, mean, var, invstd, eps, w, b, out), x.dtype)
        mom = float(params["momentum"])
        rm *= 1.0 - mom
        rm += (mom * mean).astype(rm.dtype)
        rv *= 1.0 - mom
        rv += (mom * var * (m / (m - 1))).astype(rv.dtype)
    else:
        mean, var = rm.astype(np.float64), rv.astype(np.float64)
        invstd = 1.0 / np.sqrt(var + eps)
        k.batch_norm_apply(x3, mean, invstd, w, b, out, 0, c)
    ctx.save(x3, mean, invstd, w, ctx.training, weight is not None, bias is not None)
    return out.reshape(x.shape)


def _bn_backward(ctx, params, g):
    x3, mean, invstd, w, training, has_w, has_b = ctx.saved
    g3 = np.ascontiguousarray(g, x3.dtype).reshape(x3.shape)
    c = x3.shape[1]
    if training:
        gx = np.empty(x3.shape, x3.dtype)
        gw = np.empty(c)
        gb = np.empty(c)
        k = kernels("norm")
        _by_channels(c, _BWD_FLOPS * x3.size, lambda c0, c1: k.batch_norm_bwd(
            g3, x3, mean, invstd, w, gx, gw, gb, c0, c1), k.batch_norm_bwd_parallel,
            (g3, x3, mean, invstd, w, gx, gw, gb), x3.dtype)
    else:  # running statistics are constants: a per-channel affine map
        scale = (w * invstd)[:, None]
        gx = (g3 * scale).astype(x3.dtype)
        gb = g3.sum(axis=(0, 2), dtype=np.float64)
        gw = (g3 * ((x3 - mean[:, None]) * invstd[:, None])).sum(axis=(0, 2))
    return (gx.reshape(g.shape), gw.astype(x3.dtype) if has_w else None,
            gb.astype(x3.dtype) if has_b else None)


register(OpSpec(
    name="batch_norm",
    category="op",
    doc="""Batch normalisation per channel (axis 1) of (N, C) or (N, C, H, W) input.

    Training: normalise with the batch's statistics over every axis except 1 and update the
    running mean / (unbiased) variance with ``momentum`` like PyTorch. Evaluation: use the
    running statistics. ``weight`` and ``bias`` are optional (C,) inputs.""",
    inputs=[Port("x"), Port("weight", optional=True), Port("bias", optional=True)],
    outputs=[Port("out")],
    params=[
        Param("eps", "float", 1e-5, minimum=0.0, doc="Added to the variance."),
        Param("momentum", "float", 0.1, minimum=0.0, maximum=1.0, hot=True,
              doc="Weight of the current batch in the running statistics."),
    ],
    state=[
        WeightSpec("running_mean", _bn_channels, "zeros", doc="Running mean per channel."),
        WeightSpec("running_var", _bn_channels, "ones", doc="Running variance per channel."),
    ],
    infer=_bn_infer,
    forward=_bn_forward,
    backward=_bn_backward,
    flops=elementwise_flops(8),
    examples=[
        Example([((4, 3), "float"), ((3,), "float"), ((3,), "float")]),
        Example([((2, 3, 4, 5), "float"), ((3,), "float"), ((3,), "float")], note="NCHW"),
        Example([((1, 2, 3, 3), "float"), ((2,), "float")], {"momentum": 0.5},
                note="batch of 1, no bias"),
        Example([((5, 4), "float")], {"eps": 1e-3}, low=-10.0, high=10.0,
                note="no affine, wide range"),
    ],
    family="nn",
))
