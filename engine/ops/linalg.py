"""Matrix multiplication through NumPy/BLAS, transposes folded into the call."""

from __future__ import annotations

import numpy as np

from engine.core.registry import (
    Example,
    OpSpec,
    Param,
    Port,
    ShapeError,
    TensorType,
    broadcast_shapes,
    numel,
    register,
)
from engine.ops import batch_rules, two_cores
from engine.ops._util import unbroadcast

# A GEMM's FLOPs from which it runs on Numba's two threads when the step's ops own both cores
# (a CNN's unsplit step, BLAS on one thread there).
SPLIT_MIN_FLOPS = 4e6


def _effective(shape: tuple, transpose: bool) -> tuple:
    return shape[:-2] + (shape[-1], shape[-2]) if transpose else shape


def _infer(inputs, params):
    a, b = inputs
    for t, port in ((a, "a"), (b, "b")):
        if t.dtype != "float":
            raise ShapeError("expects float values", port=port)
        if len(t.shape) < 2:
            raise ShapeError("matmul needs at least 2-D inputs (use reshape first)", port=port)
    ea = _effective(a.shape, params["transpose_a"])
    eb = _effective(b.shape, params["transpose_b"])
    k1, k2 = ea[-1], eb[-2]
    if isinstance(k1, int) and isinstance(k2, int) and k1 != k2:
        raise ShapeError(
            f"inner dimensions differ: a is {'×'.join(map(str, ea))}, "
            f"b is {'×'.join(map(str, eb))} ({k1} ≠ {k2})", port="b")
    lead = broadcast_shapes(ea[:-2], eb[:-2], port_names=["a", "b"])
    return [TensorType(lead + (ea[-2], eb[-1]), "float")]


def _t(x: np.ndarray, flag: bool) -> np.ndarray:
    return x.swapaxes(-1, -2) if flag else x


def _folds(a: np.ndarray, b: np.ndarray, params: dict) -> bool:
    """A batched a against a 2-D b: fold a's leading axes into one big GEMM (B·T × k)."""
    return a.ndim > 2 and b.ndim == 2 and not params["transpose_a"]


def _product(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x (M, K) @ y (K, N). Inside a step whose ops own both cores (a CNN's unsplit step,
    :class:`engine.ops.two_cores.own_threads`, where BLAS runs on one thread), a GEMM of at
    least :data:`SPLIT_MIN_FLOPS` runs on Numba's threads (:mod:`engine.kernels.gemm`), one
    block of output rows each; when N > M and y is a transposed weight, the blocks are rows of
    outᵀ = yᵀ·xᵀ instead, so each thread reads only its own part of the weight."""
    m, k = x.shape
    n = y.shape[1]
    transposed = n > m and y.flags.f_contiguous and not y.flags.c_contiguous
    rows = n if transposed else m
    if two_cores.owned_ways(rows, 2.0 * m * k * n, SPLIT_MIN_FLOPS) < 2:
        return x @ y
    from engine.kernels import gemm, parallel

    dtype = np.result_type(x, y)
    if transposed:  # outᵀ (N, M) = yᵀ (N, K, C-contiguous) · xᵀ
        a, b = y.T, x.T
    else:
        a, b = x, y
    a = np.ascontiguousarray(a, dtype)
    if not (b.flags.c_contiguous or b.flags.f_contiguous) or b.dtype != dtype:
        b = np.ascontiguousarray(b, dtype)
    out = np.empty((rows, b.shape[1]), dtype)
    variant = "C" if b.flags.c_contiguous else "F"
    if not parallel.run(gemm.rows_parallel, (a, b, out), rows, 2, dtype, variant):
        return x @ y  # the kernel is still compiling (a fresh install)
    return np.ascontiguousarray(out.T) if transposed else out


def _forward(ctx, params, a, b):
    ctx.save(a, b)
    b_eff = _t(b, params["transpose_b"])
    if _folds(a, b, params):
        k = a.shape[-1]
        return _product(a.reshape(-1, k), b_eff).reshape(a.shape[:-1] + (b_eff.shape[-1],))
    if a.ndim == 2 and b.ndim == 2:
        return _product(_t(a, params["transpose_a"]), b_eff)
    return np.matmul(_t(a, params["transpose_a"]), b_eff)


def _grad_b_folded(a_eff: np.ndarray, g: np.ndarray) -> np.ndarray:
    """dB for a batched A against a 2-D B: one GEMM over the flattened batch (called with
    the arguments swapped it gives dBᵀ, the gradient of a transposed B)."""
    a2 = a_eff.reshape(-1, a_eff.shape[-1])  # (N, k)
    g2 = g.reshape(-1, g.shape[-1])  # (N, n)
    return _product(a2.T, g2)  # (k, n)


def _backward(ctx, params, g):
    a, b = ctx.saved
    ta, tb = params["transpose_a"], params["transpose_b"]
    a_eff, b_eff = _t(a, ta), _t(b, tb)
    # C = A_eff @ B_eff  →  dA_eff = g @ B_effᵀ, dB_eff = A_effᵀ @ g
    flat = a.ndim == 2 and b.ndim == 2 and g.ndim == 2  # 2-D: one GEMM, maybe on two threads
    if _folds(a, b, params):
        ga = _product(g.reshape(-1, g.shape[-1]), b_eff.T).reshape(a.shape)
    elif ta:
        ga = (_product if flat else np.matmul)(b_eff, g.swapaxes(-1, -2))  # (g·B_effᵀ)ᵀ
    else:
        ga = (_product if flat else np.matmul)(g, b_eff.swapaxes(-1, -2))
    if b.ndim == 2 and a.ndim > 2 and tb:  # dB = gᵀ·A directly: C-contiguous, no transpose
        gb = _grad_b_folded(g, a_eff)
    elif b.ndim == 2 and a.ndim > 2:
        gb = _grad_b_folded(a_eff, g)
    elif tb:
        gb = (_product if flat else np.matmul)(g.swapaxes(-1, -2), a_eff)  # (A_effᵀ·g)ᵀ
    else:
        gb = (_product if flat else np.matmul)(a_eff.swapaxes(-1, -2), g)
    return unbroadcast(ga, a.shape), unbroadcast(gb, b.shape)


def _matmul_batch(params, in_axes, out_axes, in_types):
    """Row-wise unless the batch is contracted (e.g. xᵀ·x over examples) or paired across
    both sides (an outer product over the batch): with both batched, it must be a shared
    leading axis; with one batched, any axis but the contracted one."""
    contracted = (-2 if params["transpose_a"] else -1, -1 if params["transpose_b"] else -2)
    spots = [a - len(t.shape) for a, t in zip(in_axes, in_types) if a is not None]
    if len(spots) == 2:
        return batch_rules.ROWWISE if spots[0] == spots[1] and spots[0] < -2 else None
    side = 0 if in_axes[0] is not None else 1
    other = in_types[1 - side].shape
    if spots[0] < -2 and len(other) >= -spots[0] and other[spots[0]] != 1:
        return None  # the other side's own batch axis would pair its rows with the examples
    return batch_rules.ROWWISE if spots[0] != contracted[side] else None


def _flops(inputs, outputs, params):
    a = _effective(inputs[0].shape, params["transpose_a"])
    return 2 * numel(outputs[0].shape, 1) * (a[-1] if isinstance(a[-1], int) else 1)


register(OpSpec(
    name="matmul",
    category="op",
    doc="""Matrix product a @ b over the last two axes, batched over leading axes.

    Leading axes broadcast like NumPy. ``transpose_a`` / ``transpose_b`` use the transposed
    last two axes without copying (folded into the BLAS call), e.g. x @ Wᵀ for a weight
    stored PyTorch-style as (out, in).""",
    inputs=[Port("a"), Port("b")],
    outputs=[Port("out")],
    params=[
        Param("transpose_a", "bool", False, doc="Use aᵀ (last two axes swapped)."),
        Param("transpose_b", "bool", False, doc="Use bᵀ (last two axes swapped)."),
    ],
    infer=_infer,
    forward=_forward,
    backward=_backward,
    flops=_flops,
    examples=[
        Example([((3, 4), "float"), ((4, 5), "float")]),
        Example([((2, 3, 4), "float"), ((4, 5), "float")], note="batched a, 2-D b"),
        Example([((2, 3, 4), "float"), ((2, 4, 5), "float")], note="batched"),
        Example([((2, 1, 3, 4), "float"), ((3, 5, 4), "float")], {"transpose_b": True},
                note="broadcast batch, transposed b"),
        Example([((4, 3), "float"), ((4, 5), "float")], {"transpose_a": True}),
        Example([((2, 4, 3), "float"), ((5, 4), "float")],
                {"transpose_a": True, "transpose_b": True}),
        Example([((1, 4), "float"), ((4, 1), "float")], note="batch of 1"),
    ],
    batch_rule=_matmul_batch,
    family="linalg",
))
