"""The sampler's incremental runner: the model's equations bound once, run per token.

What :meth:`engine.sample.sampler.Sampler._run` did per token through the generic path (a fresh
:class:`~engine.core.run.Context` per equation, every ``parameter`` node re-run, the keys and values
concatenated into a new cache each step) costs more than the arithmetic of one token. Here:

* equations that do not depend on the tokens (parameter nodes, anything computed from weights
  alone) are evaluated once, at construction;
* each remaining equation keeps one reusable context;
* each attention op owns preallocated ``(1, H, block, D)`` key and value buffers; a new
  token's key and value are written in place and a single query attends over the filled
  prefix with two small BLAS products (a prefill of several tokens runs the fused kernel).

The logits equal the generic path's (the cache test compares them with full recomputation).
"""

from __future__ import annotations

import math

import numpy as np

from engine.base.errors import WiregradError
from engine.core.program import Equation
from engine.core.run import Context
from engine.ops.kernel_choice import kernels
from engine.ops.norm import affine as norm_affine

ATTENTION_OP = "scaled_dot_product_attention"


class Incremental:
    """Runs *equations* for new tokens at positions ``past…``, caching keys and values."""

    def __init__(self, equations: list[Equation], tokens_value: str, logits_value: str,
                 weights: dict, state: dict, block_size: int, dtype) -> None:
        self.tokens_value = tokens_value
        self.logits_value = logits_value
        self.block_size = block_size
        self.dtype = np.dtype(dtype)
        self.const: dict[str, np.ndarray] = {}
        self.steps: list[tuple[Equation, Context, object]] = []
        dynamic = {tokens_value}
        for eq in equations:
            ctx = Context(eq, {k: weights[n] for k, n in eq.weights.items()},
                          {k: state[n] for k, n in eq.state.items()}, False, None, None,
                          self.dtype)
            if any(v in dynamic for v in eq.inputs if v is not None):
                dynamic.update(eq.outputs)
                self.steps.append((eq, ctx, self._fast(eq, ctx)))
            else:  # depends on weights only: evaluate once
                outs = eq.op.forward(ctx, eq.params, *[self.const[v] if v is not None else None
                                                       for v in eq.inputs])
                self.const.update(zip(eq.outputs, outs if isinstance(outs, tuple) else (outs,)))
        self.keys: dict[str, np.ndarray] = {}
        self.values: dict[str, np.ndarray] = {}
        self.last_attention: dict[str, np.ndarray] = {}
        # One uniform entry per step, so the per-token loop does no dispatching:
        # (input value names, output names, single output?, callable(ins, past)).
        self.plan = [(tuple(eq.inputs), tuple(eq.outputs), len(eq.outputs) == 1,
                      fast if fast is not None else _generic(eq, ctx))
                     for eq, ctx, fast in self.steps]

    def run(self, ids: np.ndarray, past: int) -> np.ndarray:
        """Logits (T, V) for *ids* (T,) at positions past…past+T−1; past=0 starts afresh."""
        env = dict(self.const)
        env[self.tokens_value] = ids[None, :].astype(np.int64)
        for names, outputs, single, step in self.plan:
            outs = step([env[v] if v is not None else None for v in names], past)
            if single:
                env[outputs[0]] = outs[0] if isinstance(outs, tuple) else outs
            else:
                env.update(zip(outputs, outs))
        return env[self.logits_value][0]

    # ------------------------------------------------------------------ fast forms

    def _fast(self, eq: Equation, ctx: Context):
        """A lean callable ``(inputs, past) -> output`` doing what the op's forward does for
        inference, or None (the generic forward runs). Shape ops replay the generic result's
        shape for each input shape they have seen."""
        name, params = eq.op.name, eq.params
        if name == ATTENTION_OP:
            return lambda ins, past: self._attend(eq, ctx, ins, past)
        if name in ("reshape", "permute", "index"):
            return _ShapeReplay(eq, ctx)
        if name == "matmul" and not params["transpose_a"]:
            b = self.const.get(eq.inputs[1])
            if b is not None and b.ndim == 2:  # a weight: transposed once, contiguous
                b_eff = np.ascontiguousarray(b.T) if params["transpose_b"] else b
                k, n = b_eff.shape

                def matmul(ins, past):
                    a = ins[0]
                    if a.ndim < 2 or a.shape[-1] != k:
                        return eq.op.forward(ctx, params, *ins)
                    return (a.reshape(-1, k) @ b_eff).reshape(a.shape[:-1] + (n,))
                return matmul
        if name == "add":
            return lambda ins, past: np.add(ins[0], ins[1])
        if name == "layer_norm":
            return self._layer_norm(eq, ctx)
        if name == "gelu" and self.dtype == np.float32:
            return _gelu32(params["approximate"])
        if name == "embedding":
            weight = self.const.get(eq.inputs[1])
            if weight is not None:
                return _Embedding(eq, ctx, weight)
        return None

    def _layer_norm(self, eq: Equation, ctx: Context):
        """The op's kernel call with its affine vectors resolved once (weights are constant)."""
        names = list(eq.inputs) + [None] * (3 - len(eq.inputs))
        if any(v is not None and v not in self.const for v in names[1:]):
            return None
        kernel, eps = kernels("norm").layer_norm_fwd, float(eq.params["eps"])
        cached: dict[tuple, tuple] = {}

        def layer_norm(ins, past):
            x = ins[0]
            d = x.shape[-1]
            key = (d, x.dtype)
            if key not in cached:
                cached[key] = norm_affine(x, d, *[self.const.get(v) if v else None
                                              for v in names[1:]])
            w, b = cached[key]
            x2 = np.ascontiguousarray(x).reshape(-1, d)
            out = np.empty(x2.shape, x.dtype)
            stats = np.empty((2, x2.shape[0]))
            kernel(x2, w, b, eps, out, stats[0], stats[1])
            return out.reshape(x.shape)
        return layer_norm

    def _buffers(self, eq: Equation, k: np.ndarray, v: np.ndarray):
        kb, vb = self.keys.get(eq.path), self.values.get(eq.path)
        shape_k = k.shape[:2] + (self.block_size, k.shape[3])
        shape_v = v.shape[:2] + (self.block_size, v.shape[3])
        if kb is None or kb.shape != shape_k or vb.shape != shape_v or kb.dtype != k.dtype:
            kb = self.keys[eq.path] = np.empty(shape_k, k.dtype)
            vb = self.values[eq.path] = np.empty(shape_v, v.dtype)
        return kb, vb

    def _attend(self, eq: Equation, ctx: Context, ins: list, past: int) -> np.ndarray:
        q, k, v = ins  # (1, H, T_new, D)
        t = q.shape[2]
        kb = self.keys.get(eq.path) if t == 1 and past > 0 else None
        if kb is not None:  # decoding one token after a prefill: its buffers fit
            vb = self.values[eq.path]
        else:
            kb, vb = self._buffers(eq, k, v)
        end = past + t
        if end > self.block_size:
            raise WiregradError(f"the KV cache holds {self.block_size} positions, "
                                f"{end} requested", node=eq.top)
        kb[:, :, past:end] = k
        vb[:, :, past:end] = v
        scale = eq.params.get("scale") or 1.0 / math.sqrt(q.shape[-1])
        h = q.shape[1]
        probs = np.empty((h, end))
        out = np.empty((h, v.shape[-1]), q.dtype)
        last = np.ascontiguousarray(q[0, :, -1, :])  # (H, D): the newest query sees every key
        _decode()(last, kb[0], vb[0], end, scale, out, probs)
        self.last_attention[eq.path.rsplit(".", 1)[0]] = probs
        if t == 1:
            return out[None, :, None, :]  # (1, H, 1, Dv)
        return eq.op.forward(ctx, eq.params, q, kb[:, :, :end], vb[:, :, :end])


class _ShapeReplay:
    """reshape / permute / index: the output's geometry depends only on the input's shape, so
    the generic forward runs once per input shape and later calls replay it on the view."""

    __slots__ = ("eq", "ctx", "seen")

    def __init__(self, eq: Equation, ctx: Context) -> None:
        self.eq, self.ctx = eq, ctx
        self.seen: dict[tuple, object] = {}

    def __call__(self, ins: list, past: int):
        x = ins[0]
        replay = self.seen.get(x.shape)
        if replay is not None:
            return replay(x)
        out = self.eq.op.forward(self.ctx, self.eq.params, x)
        name = self.eq.op.name
        if name == "reshape":
            shape = out.shape
            self.seen[x.shape] = lambda a: a.reshape(shape)
        elif name == "permute":
            perm = self.ctx.saved[0]
            self.seen[x.shape] = lambda a: a.transpose(perm)
        else:  # index
            key = self.ctx.saved[0]
            self.seen[x.shape] = lambda a: a[key]
        return out


def _generic(eq: Equation, ctx: Context):
    """The op's own inference forward (``positions`` gets the cache offset)."""
    forward, params = eq.op.forward, eq.params
    if eq.op.name == "positions":
        return lambda ins, past: forward(ctx, {**params, "offset": past}, *ins)
    return lambda ins, past: forward(ctx, params, *ins)


def _decode():
    return kernels("attention").attention_decode


def _gelu32(approximate: str):
    """float32 GELU through the op's kernel (same bits), without the op's wrappers."""
    k = kernels("elementwise")
    kernel = k.gelu_tanh_fwd_d32 if approximate == "tanh" else k.gelu_erf_fwd_d32
    slope: dict[int, np.ndarray] = {}  # scratch for the slope the kernel also writes

    def gelu(ins, past):
        x = np.ascontiguousarray(ins[0])
        out = np.empty_like(x)
        d = slope.get(x.size)
        if d is None:
            d = slope[x.size] = np.empty(x.size, np.float32)
        kernel(x.reshape(-1), out.reshape(-1), d)
        return out
    return gelu


class _Embedding:
    """Row lookup with the op's range check, for a constant table."""

    __slots__ = ("eq", "ctx", "weight")

    def __init__(self, eq: Equation, ctx: Context, weight: np.ndarray) -> None:
        self.eq, self.ctx, self.weight = eq, ctx, weight

    def __call__(self, ins: list, past: int):
        ids = ins[0]
        flat = ids.reshape(-1)
        n = self.weight.shape[0]
        if flat.size == 1:  # decoding: one id, checked as a Python int
            ok = 0 <= int(flat[0]) < n
        else:
            ok = flat.size > 0 and flat.min() >= 0 and flat.max() < n
        if not ok:
            return self.eq.op.forward(self.ctx, self.eq.params, ids, self.weight)  # its error
        return self.weight[flat].reshape(ids.shape + (self.weight.shape[1],))
