"""Scaled dot-product attention. float64: scores, causal mask, softmax and the weighted sum in
one fused Numba kernel pair (the forward keeps only the per-row log-sum-exp for the backward).
float32: the scores and the gradient products as batched BLAS matmuls, the masked softmax and
dS as one-pass kernels, the probabilities kept for the backward (3–3.5× faster at T = 64).
An optional key padding mask (B, Tk) hides padded keys in both paths."""

from __future__ import annotations

import math

import numpy as np

from engine.core import lent
from engine.core.registry import Example, OpSpec, Param, Port, ShapeError, TensorType, register
from engine.ops import batch_rules
from engine.ops._util import per_example, require_float
from engine.ops.kernel_choice import call_kernel, kernels

MAX_BLAS_SCORES = 1 << 24  # BH·Tq·Tk above which keeping the probabilities costs too much
MIN_HALVED_T = 96  # causal self-attention from this length skips the hidden block's products


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
    bh = math.prod(q.shape[:-2])
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


def _use_blas(q: np.ndarray, k: np.ndarray) -> bool:
    """float32 runs scores and gradients as batched BLAS products (probabilities kept for the
    backward); float64 keeps the fused exact kernels (gradient checks, parity at 1e-10).
    *q*, *k*: (…, Tq, D), (…, Tk, D)."""
    return q.dtype == np.float32 and math.prod(q.shape[:-1]) * k.shape[-2] <= MAX_BLAS_SCORES


def _heads(x: np.ndarray) -> np.ndarray:
    """*x* (…, H, T, D) as a 4-D (N, H, T, D) array, a view whenever the leading axes allow
    (the strided q, k, v a qkv projection's permute and index give: BLAS reads their rows in
    place, at the speed of contiguous ones)."""
    if x.ndim == 4:
        return x
    if x.ndim == 3:
        return x[None]
    return np.ascontiguousarray(x).reshape((-1,) + x.shape[-3:])


def _merged_heads(n: int, h: int, t: int, d: int, dtype) -> np.ndarray:
    """An empty (N, H, T, D) array laid out as (N, T, H, D): the layout the heads' merge
    (permute to (B, T, H, D), reshape to (B, T, H·D)) reads as a contiguous view, and the
    qkv gradient's scatter copies without a transpose."""
    return np.empty((n, t, h, d), dtype).transpose(0, 2, 1, 3)


def _tokens_first(x: np.ndarray) -> np.ndarray:
    """(N, H, T, D) as a C-contiguous (N, T, H, D): a view of a merged-heads array."""
    return np.ascontiguousarray(x.swapaxes(1, 2))


def _causal_half(causal: bool, offset: int, tq: int, tk: int) -> int:
    """Where causal self-attention's products split their query and key axes (0: they do
    not). Query i < h sees only keys < h, so the (i < h, j ≥ h) block of every (Tq, Tk)
    product is never computed: a quarter of the attention's GEMM work at Tq = Tk ≥
    :data:`MIN_HALVED_T`, in twice as many BLAS calls. One layer's forward, backward, heads'
    merge and qkv scatter, 6×4 heads of 32, one thread, CPU time (median of 15 blocks): T=64
    713 → 670 µs, T=128 3015 → 2745 µs; T=32 221 → 232 µs.

    The threshold comes from whole training steps, where the op alone misleads: with both
    cores running batch parts, each part's many small BLAS calls slow the other's (the op
    alone, 6×4×64×32: 0.84 ms; beside a second thread doing the same, 0.96–1.03 ms; beside a
    large GEMM, 0.85 ms), and halving doubles those calls. Wall per step, halved vs whole,
    alternating blocks in one process (``bench/step_ab.py attention-halving``): T=64
    char-GPT split step −1.2 to −2.6 % whole (8 heads of 16: −1.9 %; 6 layers × 8 heads of
    32: −0.1 %), one unsplit thread +0.1 to +0.3 % (neutral); T=96 +0.6 %; T=128 +1.0 to
    +1.6 % (halving pays)."""
    return tq // 2 if causal and offset == 0 and tq == tk and tq >= MIN_HALVED_T else 0


def _scores(a: np.ndarray, b: np.ndarray, h: int) -> np.ndarray:
    """a (…, Tq, E) @ b (…, E, Tk); with a causal half *h*, the hidden block is zeros."""
    if not h:
        return np.matmul(a, b)
    out = np.empty(a.shape[:-1] + b.shape[-1:], a.dtype)
    np.matmul(a[..., :h, :], b[..., :h], out=out[..., :h, :h])
    out[..., :h, h:] = 0.0
    np.matmul(a[..., h:, :], b, out=out[..., h:, :])
    return out


def _rows(p: np.ndarray, b: np.ndarray, out: np.ndarray | None, h: int) -> np.ndarray:
    """p (…, Tq, Tk) @ b (…, Tk, E) into *out* (or a new array); with a causal half *h*
    the first h queries read only the first h keys."""
    if not h:
        return np.matmul(p, b, out=out)
    out = np.empty(p.shape[:-1] + b.shape[-1:], b.dtype) if out is None else out
    np.matmul(p[..., :h, :h], b[..., :h, :], out=out[..., :h, :])
    np.matmul(p[..., h:, :], b, out=out[..., h:, :])
    return out


def _cols(p: np.ndarray, b: np.ndarray, out: np.ndarray | None, h: int) -> np.ndarray:
    """pᵀ (…, Tk, Tq) @ b (…, Tq, E) into *out* (or a new array); with a causal half *h*
    the keys from h on are seen only by the queries from h on."""
    pt = p.swapaxes(-1, -2)
    if not h:
        return np.matmul(pt, b, out=out)
    out = np.empty(pt.shape[:-1] + b.shape[-1:], b.dtype) if out is None else out
    np.matmul(pt[..., :h, :], b, out=out[..., :h, :])
    np.matmul(pt[..., h:, h:], b[..., h:, :], out=out[..., h:, :])
    return out


def _blas_forward(ctx, scale, causal, offset, q, k, v, keep):
    """The float32 path: raw scores q·kᵀ (BLAS on the strided heads, k transposed into one
    contiguous copy: a @ b runs faster than a @ bᵀ at these sizes), the softmax kernel in
    place, then p·v written straight into the merged-heads layout. Per char-GPT part and layer
    (6×4×64×32, one thread, CPU time): forward 0.32 → 0.26 ms, and forward, backward, the
    heads' merge and the qkv gradient's scatter together 0.66 → 0.60 ms."""
    q4, k4, v4 = _heads(q), _heads(k), _heads(v)
    n, h, tq, _ = q4.shape
    tk = k4.shape[2]
    half = _causal_half(causal, offset, tq, tk)
    p = _scores(q4, np.ascontiguousarray(k4.swapaxes(-1, -2)), half)  # (N, H, Tq, Tk)
    p3 = p.reshape(n * h, tq, tk)
    if keep.shape[1] == 0:  # no key mask: whole-row passes, its own kernel to compile
        call_kernel(kernels("attention").attention_probs32_unmasked, p3, scale, causal, offset,
                    np.empty((n * h, 0)))  # no lse kept
    else:
        call_kernel(kernels("attention").attention_probs32, p3, keep, scale, causal, offset,
                    np.empty((n * h, tq)))
    out = _rows(p, v4, _merged_heads(n, h, tq, v4.shape[3], q.dtype) if q.ndim == 4 else None,
                half)  # (N, H, Tq, Dv)
    ctx.save(q4, k4, v4, out, p, q.shape, k.shape, v.shape, (keep, half))
    return out if q.ndim == 4 else out.reshape(tuple(q.shape[:-1]) + (v.shape[-1],))


def _blas_backward(ctx, scale, g):
    """dV = Pᵀ·g, dS = scale·P∘(g·Vᵀ − rowsum(g∘out)), dQ = dS·K, dK = dSᵀ·Q, on the strided
    4-D arrays; the gradients in the merged-heads layout (see :func:`_merged_heads`)."""
    q4, k4, v4, out, p, qs, ks, vs, (_, half) = ctx.saved
    g4 = np.asarray(g, q4.dtype).reshape(out.shape)  # a view: strided like out, or not
    # q, k, v picked from one (permuted) qkv value: their gradients go into one lent buffer
    # in its layout, which the picks' scatter adopts as its sum (engine.core.lent)
    base = lent.common_base(q4, k4, v4) if len(qs) == len(ks) == len(vs) == 4 else None
    buf = lent.lend(base.shape, base.dtype) if base is not None else None

    def merged(like: np.ndarray) -> np.ndarray | None:
        if buf is not None:
            return lent.view_like(buf, like)
        n, h, t, d = like.shape
        return _merged_heads(n, h, t, d, like.dtype) if len(qs) == 4 else None

    ds = _scores(g4, np.ascontiguousarray(v4.swapaxes(-1, -2)), half)  # dP (N, H, Tq, Tk)
    call_kernel(kernels("attention").attention_dscores, p, ds, _tokens_first(g4),
                _tokens_first(out), scale)
    gv = _cols(p, g4, merged(v4), half)
    gq = _rows(ds, k4, merged(q4), half)
    gk = _cols(ds, q4, merged(k4), half)
    return gq.reshape(qs), gk.reshape(ks), gv.reshape(vs), None


def _forward(ctx, params, q, k, v, key_mask=None):
    scale, causal, offset = _setup(params, q, k)
    keep = _keep(key_mask, q)
    if _use_blas(q, k):
        return _blas_forward(ctx, scale, causal, offset, q, k, v, keep)
    q3, k3, v3 = _flatten(q), _flatten(k), _flatten(v)
    lse = np.empty(q3.shape[:2])
    out = np.empty(q3.shape[:2] + (v3.shape[2],), q.dtype)
    kernels("attention").attention_fwd(q3, k3, v3, keep, scale, causal, offset, out, lse)
    ctx.save(q3, k3, v3, out, lse, q.shape, k.shape, v.shape, keep)
    return out.reshape(tuple(q.shape[:-1]) + (v.shape[-1],))


def _backward(ctx, params, g):
    q3, k3, v3, out, saved, qs, ks, vs, keep = ctx.saved
    scale, causal, offset = _setup(params, q3, k3)
    if saved.ndim == 4:  # the BLAS path kept the probabilities
        return _blas_backward(ctx, scale, g)
    g3 = np.ascontiguousarray(g, q3.dtype).reshape(out.shape)
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
