"""Recurrent cells as fused ops: ``rnn`` (Elman), ``lstm`` and ``gru``, batch-first.

Each op runs one layer over a whole sequence x (B, T, I) — the time loop, forward and backward
through time, in :mod:`engine.kernels.recurrent` — and returns every hidden state y (B, T, H)
and the last state h_n (B, H) (and c_n for the LSTM). Weights arrive as inputs in PyTorch's
layout and gate order, so a layer's parameter nodes named ``weight_ih_l0`` … map 1:1 onto
``torch.nn.RNN/LSTM/GRU``'s: weight_ih (G·H, I), weight_hh (G·H, H), bias_ih and bias_hh (G·H)
with G = 1 (RNN), 4 (LSTM: i, f, g, o) or 3 (GRU: r, z, n). The initial states h0 / c0 (B, H)
are optional (zeros). The layers ``RNN`` / ``LSTM`` / ``GRU`` stack these ops.
"""

from __future__ import annotations

import numpy as np

from engine.core.registry import (
    Example,
    OpSpec,
    Param,
    Port,
    ShapeError,
    TensorType,
    numel,
    register,
)
from engine.ops import batch_rules
from engine.ops.kernel_choice import kernels

GATES = {"rnn": 1, "lstm": 4, "gru": 3}
PORTS = ("x", "weight_ih", "weight_hh", "bias_ih", "bias_hh", "h0", "c0")


def _check(ok: bool, message: str, port: str) -> None:
    if not ok:
        raise ShapeError(message, port=port)


def _same(a, b) -> bool:
    return not (isinstance(a, int) and isinstance(b, int)) or a == b


def _infer_for(kind: str):
    gates = GATES[kind]

    def infer(inputs: list[TensorType | None], params: dict) -> list[TensorType]:
        x, w_ih, w_hh = inputs[:3]
        _check(len(x.shape) == 3, f"x must be (B, T, features), got {len(x.shape)}-D", "x")
        _check(len(w_ih.shape) == 2, "weight_ih must be 2-D (gates·hidden, input)", "weight_ih")
        _check(len(w_hh.shape) == 2, "weight_hh must be 2-D (gates·hidden, hidden)", "weight_hh")
        hidden = w_hh.shape[1]
        rows = gates * hidden if isinstance(hidden, int) else w_hh.shape[0]
        _check(_same(w_hh.shape[0], rows), f"weight_hh must have {gates}·hidden = {rows} rows, "
               f"got {w_hh.shape[0]}", "weight_hh")
        _check(_same(w_ih.shape[0], rows), f"weight_ih must have {rows} rows (like weight_hh), "
               f"got {w_ih.shape[0]}", "weight_ih")
        _check(_same(w_ih.shape[1], x.shape[2]), f"weight_ih takes {w_ih.shape[1]} input "
               f"features, x has {x.shape[2]}", "x")
        for name, t in zip(PORTS[3:5], inputs[3:5]):
            if t is not None:
                _check(len(t.shape) == 1 and _same(t.shape[0], rows),
                       f"{name} must have shape ({rows},), got {list(t.shape)}", name)
        for name, t in zip(PORTS[5:], inputs[5:]):
            if t is not None:
                _check(len(t.shape) == 2 and _same(t.shape[1], hidden)
                       and _same(t.shape[0], x.shape[0]),
                       f"{name} must be (batch, {hidden}), got {list(t.shape)}", name)
        state = TensorType((x.shape[0], hidden))
        y = TensorType((x.shape[0], x.shape[1], hidden))
        return [y, state, state] if kind == "lstm" else [y, state]
    return infer


def _project(x: np.ndarray, w: np.ndarray, *biases) -> np.ndarray:
    """x (B, T, I) @ wᵀ plus the given biases: (B, T, G·H), contiguous."""
    b, t, i = x.shape
    xp = (np.ascontiguousarray(x).reshape(-1, i) @ w.T).reshape(b, t, w.shape[0])
    for bias in biases:
        if bias is not None:
            xp += bias
    return np.ascontiguousarray(xp)


def _state(s: np.ndarray | None, b: int, h: int, dtype) -> np.ndarray:
    return np.zeros((b, h), dtype) if s is None else np.ascontiguousarray(s, dtype=dtype)


def _last(hs: np.ndarray, h0: np.ndarray) -> np.ndarray:
    return hs[:, -1].copy() if hs.shape[1] else h0.copy()


def _forward_for(kind: str):
    def forward(ctx, params, x, w_ih, w_hh, b_ih=None, b_hh=None, h0=None, c0=None):
        k = kernels("recurrent")
        bsz, t, _ = x.shape
        hidden = w_hh.shape[1]
        dtype = np.result_type(x.dtype, w_ih.dtype)
        h_init = _state(h0, bsz, hidden, dtype)
        whT = np.ascontiguousarray(w_hh.T, dtype=dtype)
        hs = np.empty((bsz, t, hidden), dtype)
        if kind == "rnn":
            act = k.TANH if params["nonlinearity"] == "tanh" else k.RELU
            k.rnn_fwd(_project(x, w_ih, b_ih, b_hh), whT, h_init, act, hs)
            ctx.save(x, w_ih, w_hh, h_init, hs, act)
            return hs, _last(hs, h_init)
        gates = np.empty((bsz, t, w_hh.shape[0]), dtype)
        if kind == "lstm":
            c_init = _state(c0, bsz, hidden, dtype)
            cs = np.empty_like(hs)
            k.lstm_fwd(_project(x, w_ih, b_ih, b_hh), whT, h_init, c_init, hs, cs, gates)
            ctx.save(x, w_ih, w_hh, h_init, hs, c_init, cs, gates)
            return hs, _last(hs, h_init), _last(cs, c_init)
        b_rec = np.zeros(w_hh.shape[0], dtype) if b_hh is None else b_hh.astype(dtype)
        hn = np.empty_like(hs)
        k.gru_fwd(_project(x, w_ih, b_ih), whT, b_rec, h_init, hs, gates, hn)
        ctx.save(x, w_ih, w_hh, h_init, hs, gates, hn)
        return hs, _last(hs, h_init)
    return forward


def _grad(g: np.ndarray | None, like: np.ndarray) -> np.ndarray:
    return np.zeros_like(like) if g is None else np.ascontiguousarray(g, dtype=like.dtype)


def _weight_grads(ctx, dxp: np.ndarray, da: np.ndarray) -> tuple:
    """Gradients of x, the weights, the biases and h0's direct path, from the gradients of
    the input projection (dxp) and of the recurrent one (da), both (B, T, G·H)."""
    x, w_ih, w_hh, h_init, hs = ctx.saved[:5]
    bsz, t, i = x.shape
    g = dxp.shape[2]
    h_prev = np.concatenate([h_init[:, None, :], hs[:, :-1]], axis=1) if t else hs
    dxp2, da2 = dxp.reshape(-1, g), da.reshape(-1, g)
    dx = (dxp2 @ w_ih).reshape(bsz, t, i)
    dw_ih = dxp2.T @ np.ascontiguousarray(x).reshape(-1, i)
    dw_hh = da2.T @ h_prev.reshape(-1, h_prev.shape[2])
    return dx, dw_ih, dw_hh, dxp2.sum(axis=0), da2.sum(axis=0)


def _backward_for(kind: str):
    def backward(ctx, params, gy, gh, gc=None):
        k = kernels("recurrent")
        x, w_ih, w_hh, h_init, hs = ctx.saved[:5]
        wh = np.ascontiguousarray(w_hh, dtype=hs.dtype)
        dhs, dh_last = _grad(gy, hs), _grad(gh, h_init)
        dc0 = None
        if kind == "rnn":
            da = np.empty_like(hs)
            dh0 = k.rnn_bwd(dhs, dh_last, hs, wh, ctx.saved[5], da)
            dxp = da
        elif kind == "lstm":
            c_init, cs, gates = ctx.saved[5:8]
            da = np.empty_like(gates)
            dh0, dc0 = k.lstm_bwd(dhs, dh_last, _grad(gc, c_init), gates, cs, c_init, wh, da)
            dxp = da
        else:
            gates, hn = ctx.saved[5:7]
            dxp, da = np.empty_like(gates), np.empty_like(gates)
            dh0 = k.gru_bwd(dhs, dh_last, gates, hn, hs, h_init, wh, dxp, da)
        dx, dw_ih, dw_hh, db_ih, db_hh = _weight_grads(ctx, dxp, da)
        if kind != "gru":
            db_hh = db_ih
        grads = (dx, dw_ih, dw_hh, db_ih, db_hh, dh0, dc0)
        return tuple(g if v is not None else None
                     for g, v in zip(grads, ctx.eq.inputs))
    return backward


def _flops_for(kind: str):
    gates = GATES[kind]

    def flops(inputs, outputs, params):
        x, w_hh = inputs[0], inputs[2]
        hidden = w_hh.shape[1] if isinstance(w_hh.shape[1], int) else 1
        features = x.shape[2] if isinstance(x.shape[2], int) else 1
        steps = numel(x.shape[1:2], 1)
        return 2 * steps * gates * hidden * (features + hidden) + 8 * steps * gates * hidden
    return flops


def _batch(params, in_axes, out_axes, in_types) -> str | None:
    """Sequences of a batch never meet: rows split when x and the states lead with it."""
    weights_fixed = all(a is None for a in in_axes[1:5])
    states_rowwise = all(a in (None, 0) for a in in_axes[5:])
    return batch_rules.ROWWISE if in_axes[0] == 0 and weights_fixed and states_rowwise else None


def _examples(kind: str) -> list[Example]:
    g, b, t, i, h = GATES[kind], 2, 4, 3, 5
    base = [((b, t, i), "float"), ((g * h, i), "float"), ((g * h, h), "float")]
    full = base + [((g * h,), "float"), ((g * h,), "float"), ((b, h), "float")]
    if kind == "lstm":
        full.append(((b, h), "float"))
    cases = [Example(base, note="no biases, zero state"),
             Example(full, note="biases and initial state")]
    if kind == "rnn":
        cases.append(Example(full, {"nonlinearity": "relu"}, note="relu"))
    return cases


DOCS = {
    "rnn": """Elman RNN over a sequence: h_t = act(x_t W_ihᵀ + b_ih + h_{t−1} W_hhᵀ + b_hh).

    x is batch-first (B, T, I); y holds every h_t (B, T, H), h_n the last (B, H). act is tanh or
    relu. Weights in torch.nn.RNN's layout; h0 defaults to zeros.""",
    "lstm": """LSTM over a sequence, PyTorch's gate order (i, f, g, o):
    i, f, o = σ(x_t W_i·ᵀ + h_{t−1} W_h·ᵀ + b), g = tanh(…), c_t = f·c_{t−1} + i·g,
    h_t = o·tanh(c_t).

    x is batch-first (B, T, I); y holds every h_t (B, T, H), h_n and c_n the last states.
    Weights in torch.nn.LSTM's layout (4·H rows); h0 and c0 default to zeros.""",
    "gru": """GRU over a sequence, PyTorch's gate order (r, z, n):
    r, z = σ(x_t W_i·ᵀ + b_i· + h_{t−1} W_h·ᵀ + b_h·), n = tanh(x_t W_inᵀ + b_in +
    r·(h_{t−1} W_hnᵀ + b_hn)), h_t = (1 − z)·n + z·h_{t−1}.

    x is batch-first (B, T, I); y holds every h_t (B, T, H), h_n the last (B, H). Weights in
    torch.nn.GRU's layout (3·H rows); h0 defaults to zeros.""",
}


def _ports(kind: str) -> tuple[list[Port], list[Port]]:
    inputs = [Port("x", doc="Sequence (B, T, I)."),
              Port("weight_ih", doc="Input weights (G·H, I)."),
              Port("weight_hh", doc="Recurrent weights (G·H, H)."),
              Port("bias_ih", optional=True, doc="Input bias (G·H)."),
              Port("bias_hh", optional=True, doc="Recurrent bias (G·H)."),
              Port("h0", optional=True, doc="Initial hidden state (B, H); zeros if absent.")]
    outputs = [Port("y", doc="Every hidden state (B, T, H)."),
               Port("h_n", doc="The last hidden state (B, H).")]
    if kind == "lstm":
        inputs.append(Port("c0", optional=True, doc="Initial cell state (B, H)."))
        outputs.append(Port("c_n", doc="The last cell state (B, H)."))
    return inputs, outputs


for _kind in GATES:
    _inputs, _outputs = _ports(_kind)
    register(OpSpec(
        name=_kind,
        category="op",
        doc=DOCS[_kind],
        inputs=_inputs,
        outputs=_outputs,
        params=[Param("nonlinearity", "choice", "tanh", choices=("tanh", "relu"),
                      doc="The activation of the hidden state.")] if _kind == "rnn" else [],
        infer=_infer_for(_kind),
        forward=_forward_for(_kind),
        backward=_backward_for(_kind),
        flops=_flops_for(_kind),
        examples=_examples(_kind),
        batch_rule=_batch,
        family="recurrent",
    ))
