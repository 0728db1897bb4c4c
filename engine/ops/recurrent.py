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


def _required(t: TensorType | None, port: str) -> TensorType:
    """The type of a required input; compile fills these, so None here is a bug upstream."""
    if t is None:
        raise ShapeError(f"input {port!r} is required but not connected", port=port)
    return t


def _infer_for(kind: str):
    gates = GATES[kind]

    def infer(inputs: list[TensorType | None], params: dict) -> list[TensorType]:
        x, w_ih, w_hh = (_required(t, port) for t, port in zip(inputs[:3], PORTS[:3]))
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
    """x (B, T, I) @ wᵀ plus the given biases, unit-major for the kernels: (T, G·H, B)."""
    b, t, i = x.shape
    xp = (np.ascontiguousarray(x).reshape(-1, i) @ w.T).reshape(b, t, w.shape[0])
    for bias in biases:
        if bias is not None:
            xp += bias
    return np.ascontiguousarray(xp.transpose(1, 2, 0))


def _state_t(s: np.ndarray | None, b: int, h: int, dtype) -> np.ndarray:
    """An initial state (B, H) as the kernels keep it: (H, B); zeros when not wired."""
    return np.zeros((h, b), dtype) if s is None else np.ascontiguousarray(s.T, dtype=dtype)


def _batch_major(a_t: np.ndarray) -> np.ndarray:
    """(T, H, B) → (B, T, H), contiguous."""
    return np.ascontiguousarray(a_t.transpose(2, 0, 1))


def _last(hs_t: np.ndarray, h0_t: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray((hs_t[-1] if hs_t.shape[0] else h0_t).T)


def _forward_for(kind: str):
    def forward(ctx, params, x, w_ih, w_hh, b_ih=None, b_hh=None, h0=None, c0=None):
        k = kernels("recurrent")
        k.pin_blas()
        bsz, t, _ = x.shape
        hidden = w_hh.shape[1]
        dtype = np.result_type(x.dtype, w_ih.dtype)
        h_t = _state_t(h0, bsz, hidden, dtype)
        wh = np.ascontiguousarray(w_hh, dtype=dtype)
        hs_t = np.empty((t, hidden, bsz), dtype)
        if kind == "rnn":
            act = k.TANH if params["nonlinearity"] == "tanh" else k.RELU
            k.rnn_fwd(_project(x, w_ih, b_ih, b_hh), wh, h_t, act, hs_t)
            y = _batch_major(hs_t)
            ctx.save(x, w_ih, w_hh, h_t, hs_t, y, act)
            return y, _last(hs_t, h_t)
        gates_t = np.empty((t, w_hh.shape[0], bsz), dtype)
        if kind == "lstm":
            c_t = _state_t(c0, bsz, hidden, dtype)
            cs_t, tc_t = np.empty_like(hs_t), np.empty_like(hs_t)
            k.lstm_fwd(_project(x, w_ih, b_ih, b_hh), wh, h_t, c_t, hs_t, cs_t, gates_t, tc_t)
            y = _batch_major(hs_t)
            ctx.save(x, w_ih, w_hh, h_t, hs_t, y, c_t, cs_t, gates_t, tc_t)
            return y, _last(hs_t, h_t), _last(cs_t, c_t)
        b_rec = np.zeros(w_hh.shape[0], dtype) if b_hh is None else b_hh.astype(dtype)
        hn_t = np.empty_like(hs_t)
        k.gru_fwd(_project(x, w_ih, b_ih), wh, b_rec, h_t, hs_t, gates_t, hn_t)
        y = _batch_major(hs_t)
        ctx.save(x, w_ih, w_hh, h_t, hs_t, y, gates_t, hn_t)
        return y, _last(hs_t, h_t)
    return forward


def _grad_t(g: np.ndarray | None, shape: tuple, dtype) -> np.ndarray:
    """An output gradient in the kernels' unit-major layout (zeros when none flows)."""
    if g is None:
        return np.zeros(shape, dtype)
    axes = (1, 2, 0) if g.ndim == 3 else (1, 0)
    return np.ascontiguousarray(g.transpose(axes), dtype=dtype)


def _weight_grads(ctx, dxp_t: np.ndarray, da_t: np.ndarray) -> tuple:
    """Gradients of x, the weights and the biases from the gradients of the input projection
    (dxp_t) and of the recurrent one (da_t; the same array for RNN and LSTM), both unit-major
    (T, G·H, B): made batch-major once, then one BLAS product each."""
    x, w_ih, w_hh, h_t, hs_t, y = ctx.saved[:6]
    bsz, t, i = x.shape
    g, hidden = dxp_t.shape[1], w_hh.shape[1]
    dxp = np.ascontiguousarray(dxp_t.transpose(2, 0, 1)).reshape(-1, g)  # (B·T, G·H)
    da = dxp if da_t is dxp_t else np.ascontiguousarray(da_t.transpose(2, 0, 1)).reshape(-1, g)
    dx = (dxp @ w_ih).reshape(bsz, t, i)
    dw_ih = dxp.T @ np.ascontiguousarray(x).reshape(-1, i)
    h_prev = np.concatenate([h_t.T[:, None, :], y[:, :-1]], axis=1)[:, :t].reshape(-1, hidden)
    dw_hh = da.T @ h_prev  # (zeros when T = 0)
    db_ih = dxp.sum(axis=0)
    return dx, dw_ih, dw_hh, db_ih, db_ih if da is dxp else da.sum(axis=0)


def _backward_for(kind: str):
    def backward(ctx, params, gy, gh, gc=None):
        k = kernels("recurrent")
        k.pin_blas()
        hs_t, h_t = ctx.saved[4], ctx.saved[3]
        w_hh = ctx.saved[2]
        dtype = hs_t.dtype
        wh_t = np.ascontiguousarray(w_hh.T, dtype=dtype)
        dhs_t, dh_t = _grad_t(gy, hs_t.shape, dtype), _grad_t(gh, h_t.shape, dtype)
        dc0 = None
        if kind == "rnn":
            da_t = np.empty_like(hs_t)
            dh0 = k.rnn_bwd(dhs_t, dh_t, hs_t, wh_t, ctx.saved[6], da_t)
            dxp_t = da_t
        elif kind == "lstm":
            c_t, cs_t, gates_t, tc_t = ctx.saved[6:10]
            da_t = np.empty_like(gates_t)
            dh0, dc0 = k.lstm_bwd(dhs_t, dh_t, _grad_t(gc, c_t.shape, dtype), gates_t, cs_t,
                                  tc_t, c_t, wh_t, da_t)
            dc0 = np.ascontiguousarray(dc0.T)
            dxp_t = da_t
        else:
            gates_t, hn_t = ctx.saved[6:8]
            dxp_t, da_t = np.empty_like(gates_t), np.empty_like(gates_t)
            dh0 = k.gru_bwd(dhs_t, dh_t, gates_t, hn_t, hs_t, h_t, wh_t, dxp_t, da_t)
        dx, dw_ih, dw_hh, db_ih, db_hh = _weight_grads(ctx, dxp_t, da_t)
        grads = (dx, dw_ih, dw_hh, db_ih, db_hh, np.ascontiguousarray(dh0.T), dc0)
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
    """Sequences of a batch never meet: rows split when x and every wired initial state lead
    with it (a state shared by the whole batch would not split with x)."""
    weights_fixed = all(a is None for a in in_axes[1:5])
    states = zip(in_axes[5:], list(in_types[5:]) + [None] * (len(in_axes) - len(in_types)))
    states_rowwise = all(a == 0 or (a is None and t is None) for a, t in states)
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
