"""Inference rules for incremental decoding: one table keyed by op name.

The incremental runner (:class:`engine.sample.kvcache.Incremental`) feeds a model only the new
tokens of each step. That is right only for ops that treat every position on its own, or that
carry what they need from earlier positions themselves. Each such op declares here how it runs:

* ``position-wise`` — the op's own inference forward on the new positions (elementwise ops,
  matmul against a weight, layer norm, embedding lookups…), sometimes through a leaner callable;
* ``shape`` — reshape / permute / index…: the geometry depends on the input's shape only, so
  it is computed once per shape and replayed;
* ``kv-cache`` — causal attention keeps the keys and values of the positions seen;
* ``offset`` — position ids start at the number of positions already decoded;
* ``recurrent`` — a recurrent cell starts from the state it ended the previous step with.

An op that depends on tokens but has no rule here (a reduction over time, a convolution, a
mask built from the sequence length…) makes the graph non-incremental: the sampler then
recomputes the whole window for every token. A rule may also refuse a configuration (attention
with a key mask or without the causal mask). Rules only *claim* correctness; the sampler checks
the claim once per model against full recomputation (:func:`engine.sample.paths.choose`).

A step is ``step(inputs, past) -> output(s)`` where *past* counts the positions before the new
ones (0 starts afresh).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from engine.base.errors import WiregradError
from engine.core.program import Equation
from engine.core.run import Context
from engine.ops.kernel_choice import kernels
from engine.ops.norm import affine as norm_affine

Step = Callable[[list, int], Any]


class Incremental(Protocol):
    """What a rule may read of the runner (:class:`engine.sample.kvcache.Incremental`, which
    imports this module)."""

    const: dict[str, np.ndarray]  # values computed from weights alone
    block_size: int
    dtype: np.dtype
    last_attention: dict[str, np.ndarray]


class NotIncremental(WiregradError):
    """A node of the model cannot be run one token at a time (the reason says why)."""


@dataclass(frozen=True)
class Rule:
    """How one op runs during incremental decoding.

    ``build(runner, eq, ctx)`` returns a step, or None for the op's own forward."""

    kind: str
    build: Callable[[Incremental, Equation, Context], Step | None] | None = None


def forward_of(eq: Equation) -> Callable:
    """The op's forward (every op a model runs has one)."""
    forward = eq.op.forward
    if forward is None:
        raise NotIncremental(f"'{eq.op.name}' computes nothing", node=eq.top)
    return forward


def _const(runner: Incremental, name: str | None) -> np.ndarray | None:
    """The value computed from weights alone that feeds an input, or None."""
    return runner.const.get(name) if name is not None else None


def generic(eq: Equation, ctx: Context) -> Step:
    """The op's own inference forward on the new positions."""
    forward, params = forward_of(eq), eq.params
    return lambda ins, past: forward(ctx, params, *ins)


# ---------------------------------------------------------------- position-wise fast forms


def _matmul(runner: Incremental, eq: Equation, ctx: Context) -> Step | None:
    """x @ W for a constant 2-D W: W (transposed once, contiguous) applied to the rows."""
    params = eq.params
    b = _const(runner, eq.inputs[1])
    if params["transpose_a"] or b is None or b.ndim != 2:
        return None
    b_eff = np.ascontiguousarray(b.T) if params["transpose_b"] else b
    k, n = b_eff.shape

    def matmul(ins, past):
        a = ins[0]
        if a.ndim < 2 or a.shape[-1] != k:
            return forward_of(eq)(ctx, params, *ins)
        return (a.reshape(-1, k) @ b_eff).reshape(a.shape[:-1] + (n,))
    return matmul


def _add(runner: Incremental, eq: Equation, ctx: Context) -> Step:
    return lambda ins, past: np.add(ins[0], ins[1])


def _layer_norm(runner: Incremental, eq: Equation, ctx: Context) -> Step | None:
    """The op's kernel call with its affine vectors resolved once (weights are constant)."""
    names = list(eq.inputs) + [None] * (3 - len(eq.inputs))
    if any(v is not None and v not in runner.const for v in names[1:]):
        return None
    kernel, eps = kernels("norm").layer_norm_fwd, float(eq.params["eps"])
    cached: dict[tuple, tuple] = {}

    def layer_norm(ins, past):
        x = ins[0]
        d = x.shape[-1]
        key = (d, x.dtype)
        if key not in cached:
            cached[key] = norm_affine(x, d, *[_const(runner, v) for v in names[1:]])
        w, b = cached[key]
        x2 = np.ascontiguousarray(x).reshape(-1, d)
        out = np.empty(x2.shape, x.dtype)
        stats = np.empty((2, x2.shape[0]))
        kernel(x2, w, b, eps, out, stats[0], stats[1])
        return out.reshape(x.shape)
    return layer_norm


def _gelu(runner: Incremental, eq: Equation, ctx: Context) -> Step | None:
    """float32 GELU through the op's kernel (same bits), without the op's wrappers."""
    if runner.dtype != np.float32:
        return None
    k = kernels("elementwise")
    kernel = k.gelu_tanh_fwd_d32 if eq.params["approximate"] == "tanh" else k.gelu_erf_fwd_d32
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
            return forward_of(self.eq)(self.ctx, self.eq.params, ids, self.weight)  # its error
        return self.weight[flat].reshape(ids.shape + (self.weight.shape[1],))


def _embedding(runner: Incremental, eq: Equation, ctx: Context) -> Step | None:
    weight = _const(runner, eq.inputs[1])
    return _Embedding(eq, ctx, weight) if weight is not None else None


# ---------------------------------------------------------------- shape replay


class _ShapeReplay:
    """reshape / permute / index: the output's geometry depends only on the input's shape, so
    the generic forward runs once per input shape and later calls replay it on the view."""

    __slots__ = ("eq", "ctx", "seen")

    def __init__(self, eq: Equation, ctx: Context) -> None:
        self.eq, self.ctx = eq, ctx
        self.seen: dict[tuple, Callable] = {}

    def __call__(self, ins: list, past: int):
        x = ins[0]
        replay = self.seen.get(x.shape)
        if replay is not None:
            return replay(x)
        out = forward_of(self.eq)(self.ctx, self.eq.params, x)
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


def _shape_replay(runner: Incremental, eq: Equation, ctx: Context) -> Step:
    return _ShapeReplay(eq, ctx)


# ---------------------------------------------------------------- positions and attention


def _positions(runner: Incremental, eq: Equation, ctx: Context) -> Step:
    forward, params = forward_of(eq), eq.params
    return lambda ins, past: forward(ctx, {**params, "offset": past}, *ins)


class _AttentionCache:
    """Causal attention over preallocated ``(1, H, block, D)`` key and value buffers: a new
    token's key and value are written in place and its query attends over the filled prefix
    (a prefill of several tokens runs the op's fused kernel)."""

    def __init__(self, runner: Incremental, eq: Equation, ctx: Context) -> None:
        self.runner, self.eq, self.ctx = runner, eq, ctx
        self.keys: np.ndarray | None = None
        self.values: np.ndarray | None = None
        self.layer = eq.path.rsplit(".", 1)[0]

    def _buffers(self, k: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        block = self.runner.block_size
        shape_k = k.shape[:2] + (block, k.shape[3])
        shape_v = v.shape[:2] + (block, v.shape[3])
        kb, vb = self.keys, self.values
        if kb is None or vb is None or kb.shape != shape_k or vb.shape != shape_v \
                or kb.dtype != k.dtype:
            kb = self.keys = np.empty(shape_k, k.dtype)
            vb = self.values = np.empty(shape_v, v.dtype)
        return kb, vb

    def __call__(self, ins: list, past: int) -> np.ndarray:
        q, k, v = ins[:3]  # (1, H, T_new, D)
        t = q.shape[2]
        if t == 1 and past > 0 and self.keys is not None and self.values is not None:
            kb, vb = self.keys, self.values  # decoding one token after a prefill
        else:
            kb, vb = self._buffers(k, v)
        end = past + t
        if end > self.runner.block_size:
            raise WiregradError(f"the KV cache holds {self.runner.block_size} positions, "
                                f"{end} requested", node=self.eq.top)
        kb[:, :, past:end] = k
        vb[:, :, past:end] = v
        scale = self.eq.params.get("scale") or 1.0 / math.sqrt(q.shape[-1])
        h = q.shape[1]
        probs = np.empty((h, end))
        out = np.empty((h, v.shape[-1]), q.dtype)
        last = np.ascontiguousarray(q[0, :, -1, :])  # (H, D): the newest query sees every key
        kernels("attention").attention_decode(last, kb[0], vb[0], end, scale, out, probs)
        self.runner.last_attention[self.layer] = probs
        if t == 1:
            return out[None, :, None, :]  # (1, H, 1, Dv)
        return forward_of(self.eq)(self.ctx, self.eq.params, q, kb[:, :, :end], vb[:, :, :end])


def _attention(runner: Incremental, eq: Equation, ctx: Context) -> Step:
    if not eq.params.get("causal", True):
        raise NotIncremental("attention without the causal mask sees later positions",
                             node=eq.top)
    if len(eq.inputs) > 3 and any(v is not None for v in eq.inputs[3:]):
        raise NotIncremental("attention with a key mask", node=eq.top)
    return _AttentionCache(runner, eq, ctx)


# ---------------------------------------------------------------- recurrent cells


class _RecurrentState:
    """rnn / lstm / gru: the new positions start from the state the previous call ended with
    (the wired initial state, or zeros, when *past* is 0)."""

    __slots__ = ("eq", "ctx", "states")

    def __init__(self, eq: Equation, ctx: Context) -> None:
        self.eq, self.ctx = eq, ctx
        self.states: tuple = ()

    def __call__(self, ins: list, past: int):
        ins = list(ins) + [None] * (len(self.eq.op.inputs) - len(ins))
        if past > 0 and self.states:
            ins[5:5 + len(self.states)] = self.states  # h0 (, c0) := the carried state
        outs = forward_of(self.eq)(self.ctx, self.eq.params, *ins)
        self.states = tuple(outs[1:])  # h_n (, c_n)
        return outs


def _recurrent(runner: Incremental, eq: Equation, ctx: Context) -> Step:
    return _RecurrentState(eq, ctx)


# ---------------------------------------------------------------- the table

POSITION_WISE = Rule("position-wise")
_ELEMENTWISE = ("abs", "clamp", "div", "exp", "leaky_relu", "log", "mul", "neg", "pow", "relu",
                "sigmoid", "silu", "sqrt", "sub", "tanh", "where")

RULES: dict[str, Rule] = {
    **{name: POSITION_WISE for name in _ELEMENTWISE},
    "add": Rule("position-wise", _add),
    "gelu": Rule("position-wise", _gelu),
    "matmul": Rule("position-wise", _matmul),
    "layer_norm": Rule("position-wise", _layer_norm),
    "batch_norm": POSITION_WISE,  # inference uses the running statistics
    "embedding": Rule("position-wise", _embedding),
    "dropout": POSITION_WISE,  # the identity at inference
    "softmax": POSITION_WISE,
    "log_softmax": POSITION_WISE,
    "concat": POSITION_WISE,
    "split": POSITION_WISE,
    "transpose": POSITION_WISE,
    "slice": POSITION_WISE,
    "reshape": Rule("shape", _shape_replay),
    "permute": Rule("shape", _shape_replay),
    "index": Rule("shape", _shape_replay),
    "positions": Rule("offset", _positions),
    "scaled_dot_product_attention": Rule("kv-cache", _attention),
    **{name: Rule("recurrent", _recurrent) for name in ("rnn", "lstm", "gru")},
}


def step_for(runner: Incremental, eq: Equation, ctx: Context) -> tuple[str, Step]:
    """The rule kind and step of *eq*; :class:`NotIncremental` names the node without one."""
    rule = RULES.get(eq.op.name)
    if rule is None:
        raise NotIncremental(f"'{eq.op.name}' has no rule for decoding one token at a time",
                             node=eq.top)
    step = rule.build(runner, eq, ctx) if rule.build is not None else None
    return rule.kind, step if step is not None else generic(eq, ctx)
