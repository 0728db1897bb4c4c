"""Scaled dot-product attention. float64: scores, causal mask, softmax and the weighted sum in
one fused Numba kernel pair (the forward keeps only the per-row log-sum-exp for the backward).
float32: the scores and the gradient products as batched BLAS matmuls, the masked softmax and
dS as one-pass kernels, the probabilities kept for the backward (3–3.5× faster at T = 64).
An optional key padding mask (B, Tk) hides padded keys in both paths."""

from __future__ import annotations

import math

import numpy as np

from engine.core.registry import Example, OpSpec, Param, Port, ShapeError, TensorType, register
from engine.ops import batch_rules
from engine.ops._util import per_example, require_float
from engine.ops.kernel_choice import kernels

MAX_BLAS_SCORES = 1 << 24  # BH·Tq·Tk above which keeping the probabilities costs too much


def _compatible(a, b) -> bool:
    return not (isinstance(a, int) and isinstance(b, int) and a != b)


def _check_mask(mask, q, k) -> None:
    """The key padding mask is (B, Tk): B = q's first axis, Tk = the number of keys."""
    if mask is None:
        return
    want = (q.shape[0], k.shape[-2])
    if len(mask.shape) != 2 or not all(_compatible(a, b) for a, b in zip(mask.shape, want)):
        raise ShapeError(f"key padding mask must be (B, Tk) = {list(want)}, got "
                         f"{list(mask.shape)}", port="key_mask")


def _infer(inputs, params):
    q, k, v = inputs[:3]
    for t, port in ((q, "q"), (k, "k"), (v, "v")):
        require_float(t, port)
        if len(t.shape) < 3:
            raise ShapeError(f"expects (B, H, T, D) (at least 3-D), got {list(t.shape)}",
                             port=port)
    for t, port in ((k, "k"), (v, "v")):
        if len(t.shape) != len(q.shape) or not all(
                _compatible(a, b) for a, b in zip(t.shape[:-2], q.shape[:-2])):
            raise ShapeError(f"leading axes {list(t.shape[:-2])} differ from q's "
                             f"{list(q.shape[:-2])}", port=port)
    if not _compatible(k.shape[-1], q.shape[-1]):
        raise ShapeError(f"key size {k.shape[-1]} differs from query size {q.shape[-1]}",
                         port="k")
    if not _compatible(v.shape[-2], k.shape[-2]):
        raise ShapeError(f"{v.shape[-2]} values for {k.shape[-2]} keys", port="v")
    _check_mask(inputs[3] if len(inputs) > 3 else None, q, k)
    return [TensorType(tuple(q.shape[:-1]) + (v.shape[-1],), "float")]


def _flatten(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x).reshape((-1,) + x.shape[-2:])  # (BH, T, D)


def _keep(mask, q: np.ndarray) -> np.ndarray:
    """(BH, Tk) bool keep-mask from the (B, Tk) padding mask (nonzero = a real key)."""
    bh = int(np.prod(q.shape[:-2]))
    if mask is None:
        return kernels("attention").no_mask(bh)
    mask = np.asarray(mask)
    if mask.shape[0] != q.shape[0]:
        raise ShapeError(f"key padding mask has {mask.shape[0]} rows for a batch of "
                         f"{q.shape[0]}", port="key_mask")
    keep = np.broadcast_to((mask != 0)[:, None, :],
                           (mask.shape[0], bh // mask.shape[0], mask.shape[1]))
    return np.ascontiguousarray(keep).reshape(bh, mask.shape[1])


def _setup(params, q, k):
    scale = params["scale"] if params["scale"] is not None else 1.0 / math.sqrt(q.shape[-1])
    return float(scale), bool(params["causal"]), k.shape[-2] - q.shape[-2]


def _use_blas(q3: np.ndarray, k3: np.ndarray) -> bool:
    """float32 runs scores and gradients as batched BLAS products (probabilities kept for the
    backward); float64 keeps the fused exact kernels (gradient checks, parity at 1e-10)."""
    return q3.dtype == np.float32 and q3.shape[0] * q3.shape[1] * k3.shape[1] <= MAX_BLAS_SCORES


def _forward(ctx, params, q, k, v, key_mask=None):
    scale, causal, offset = _setup(params, q, k)
    q3, k3, v3 = _flatten(q), _flatten(k), _flatten(v)
    keep = _keep(key_mask, q)
    lse = np.empty(q3.shape[:2])
    if _use_blas(q3, k3):
        # every product in a layout OpenBLAS runs fast at these sizes: a @ b or aᵀ @ b, never
        # a @ bᵀ (48×64×32 @ 32×64: 0.12 ms as a @ b, 0.20 ms as a @ bᵀ, one thread)
        kt3 = np.ascontiguousarray(k3.transpose(0, 2, 1))  # (BH, D, Tk)
        p = np.matmul(q3, kt3)  # (BH, Tq, Tk) raw scores
        if keep.shape[1] == 0:  # no key mask: whole-row passes, its own kernel to compile
            kernels("attention").attention_probs32_unmasked(p, scale, causal, offset, lse)
        else:
            kernels("attention").attention_probs32(p, keep, scale, causal, offset, lse)
        out = np.matmul(p, v3)  # (BH, Tq, Dv)
        ctx.save(q3, k3, v3, out, p, q.shape, k.shape, v.shape, keep)
    else:
        out = np.empty(q3.shape[:2] + (v3.shape[2],), q.dtype)
        kernels("attention").attention_fwd(q3, k3, v3, keep, scale, causal, offset, out, lse)
        ctx.save(q3, k3, v3, out, lse, q.shape, k.shape, v.shape, keep)
    return out.reshape(tuple(q.shape[:-1]) + (v.shape[-1],))


def _backward(ctx, params, g):
    q3, k3, v3, out, saved, qs, ks, vs, keep = ctx.saved
    scale, causal, offset = _setup(params, q3, k3)
    g3 = np.ascontiguousarray(g, q3.dtype).reshape(out.shape)
    if saved.ndim == 3:  # the BLAS path kept the probabilities
        p = saved
        ds = np.matmul(g3, np.ascontiguousarray(v3.transpose(0, 2, 1)))  # dP (BH, Tq, Tk)
        kernels("attention").attention_dscores(p, ds, g3, out, scale)
        gv = np.matmul(p.transpose(0, 2, 1), g3)
        gq = np.matmul(ds, k3)
        gk = np.matmul(ds.transpose(0, 2, 1), q3)
    else:
        gq, gk, gv = np.empty_like(q3), np.empty_like(k3), np.empty_like(v3)
        kernels("attention").attention_bwd(q3, k3, v3, keep, out, saved, g3, scale, causal,
                                           offset, gq, gk, gv)
    return gq.reshape(qs), gk.reshape(ks), gv.reshape(vs), None


def _attention_batch(params, in_axes, out_axes, in_types):
    """Row-wise when the batch is the same leading axis of q, k and v (never T or D), and
    axis 0 of q and of the key padding mask."""
    if len(in_axes) > 3:
        mask_connected = len(in_types) > 3 and in_types[3] is not None
        if mask_connected and (in_axes[3] != 0 or in_axes[0] != 0):
            return None
        in_axes, in_types = in_axes[:3], in_types[:3]  # an unwired mask changes nothing
    if any(a is None for a in in_axes):
        return None  # shared keys or values would pair every example with the same rows
    spots = {len(t.shape) - a for a, t in zip(in_axes, in_types)}
    return batch_rules.ROWWISE if len(spots) == 1 and min(spots) > 2 else None


def _flops(inputs, outputs, params):
    """Per example: scores (2·D), softmax (~5) and weighted sum (2·Dv) per (query, key)."""
    q, k, v = inputs[:3]
    heads_tq = per_example(TensorType(q.shape[1:-1]))  # H · Tq (symbols count 1)
    tk, d, dv = (s if isinstance(s, int) else 1 for s in (k.shape[-2], q.shape[-1], v.shape[-1]))
    return heads_tq * tk * (2 * d + 2 * dv + 5)


register(OpSpec(
    name="scaled_dot_product_attention",
    category="op",
    doc="""Attention softmax(q·kᵀ·scale [+ causal mask])·v over (B, H, T, D) inputs, fused.

    ``scale`` defaults to 1/√D. With ``causal`` (the default) query i sees keys
    j ≤ i + (Tk − Tq): for self-attention (Tq = Tk) that is PyTorch's ``is_causal``, and for
    a KV cache the newest query sees every key. A query that sees no key gets a zero output
    and zero gradient (never NaN).

    ``key_mask`` (optional, (B, Tk), any dtype): keys where it is 0 are padding and get no
    weight from any query of that example (PyTorch's ``key_padding_mask``, inverted: here
    nonzero = keep).""",
    inputs=[Port("q"), Port("k"), Port("v"),
            Port("key_mask", dtype="any", optional=True, differentiable=False,
                 doc="(B, Tk): 1 for a real key, 0 for padding.")],
    outputs=[Port("out")],
    params=[
        Param("causal", "bool", True, doc="Hide future keys from each query."),
        Param("scale", "float", None, optional=True, minimum=0.0,
              doc="Score scale (default 1/√D)."),
    ],
    infer=_infer,
    forward=_forward,
    backward=_backward,
    flops=_flops,
    examples=[
        Example([((2, 2, 4, 3), "float")] * 3),
        Example([((2, 1, 3, 4), "float"), ((2, 1, 5, 4), "float"), ((2, 1, 5, 2), "float")],
                {"causal": False}, note="cross-attention, Dv ≠ D"),
        Example([((1, 1, 2, 4), "float"), ((1, 1, 5, 4), "float"), ((1, 1, 5, 4), "float")],
                note="batch of 1, KV cache (Tq < Tk)"),
        Example([((1, 2, 5, 4), "float")] * 3, {"scale": 0.5}, low=-3.0, high=3.0,
                note="explicit scale, wide range"),
        Example([((3, 2, 4, 4), "float"), ((3, 2, 6, 4), "float"), ((3, 2, 6, 3), "float"),
                 ((3, 6), "int", 2)], {"causal": False},
                note="cross-attention with a random 0/1 key padding mask"),
        Example([((2, 2, 5, 4), "float")] * 3 + [((2, 5), "int", 2)],
                note="causal self-attention with a key padding mask"),
    ],
    batch_rule=_attention_batch,
    family="attention",
))
