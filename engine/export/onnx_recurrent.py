"""ONNX converters for the recurrent ops: ``rnn`` / ``lstm`` / ``gru`` → ONNX ``RNN`` / ``LSTM`` /
``GRU`` (one direction, time-major as onnxruntime requires: x is transposed in and y out).

ONNX orders the gates differently from PyTorch (LSTM ``i, o, f, c`` for PyTorch's ``i, f, g,
o``; GRU ``z, r, h`` for ``r, z, n``), so the weights are split per gate and re-concatenated in
the graph; the GRU uses ``linear_before_reset = 1``, PyTorch's formula
``n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))``. :data:`CONVERTERS` is merged into
:data:`engine.export.onnx_export.ONNX_OPS` by that module (this one does not import it).
"""

from __future__ import annotations

import numpy as np

# position in ONNX's gate order → PyTorch gate index
ORDER = {"rnn": (0,), "lstm": (0, 3, 1, 2), "gru": (1, 0, 2)}
ONNX_NAME = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}


def _reorder(b, w: str, kind: str, hidden: int) -> str:
    """*w* (gates·H, …) with its gate blocks in ONNX's order."""
    order = ORDER[kind]
    if len(order) == 1:
        return w
    parts = b.node("Split", [w, b.ints([hidden] * len(order))], len(order), axis=0)
    return b.one("Concat", [parts[i] for i in order], axis=0)


def _bias(b, ins: list[str], kind: str, hidden: int) -> str:
    """ONNX's B (1, 2·gates·H): [input bias, recurrent bias], zeros for one not wired."""
    given = [v for v in ins[3:5] if v]
    if not given:
        return ""
    zeros = b.const(np.zeros(len(ORDER[kind]) * hidden, np.float32), "zero_bias")
    pair = [_reorder(b, v or zeros, kind, hidden) for v in ins[3:5]]
    return b.one("Unsqueeze", [b.one("Concat", pair, axis=0), b.ints([0])])


def _convert(b, eq, ins, outs) -> None:
    kind = eq.op.name
    hidden = int(eq.input_types[2].shape[1])
    first = b.ints([0])
    w = b.one("Unsqueeze", [_reorder(b, ins[1], kind, hidden), first])
    r = b.one("Unsqueeze", [_reorder(b, ins[2], kind, hidden), first])
    states = [b.one("Unsqueeze", [v, first]) if v else "" for v in ins[5:7]]
    args = [b.one("Transpose", [ins[0]], perm=[1, 0, 2]), w, r, _bias(b, ins, kind, hidden),
            "", *states]
    while args and not args[-1]:
        args.pop()
    attrs: dict = {"hidden_size": hidden}
    if kind == "rnn":
        attrs["activations"] = ["Tanh" if eq.params["nonlinearity"] == "tanh" else "Relu"]
    if kind == "gru":
        attrs["linear_before_reset"] = 1
    results = b.node(ONNX_NAME[kind], args, len(outs), **attrs)
    y = b.one("Squeeze", [results[0], b.ints([1])])  # (T, 1, B, H) → (T, B, H)
    b.one("Transpose", [y], outs[0], perm=[1, 0, 2])
    for state, out in zip(results[1:], outs[1:]):
        b.one("Squeeze", [state, first], out)  # (1, B, H) → (B, H)


CONVERTERS = {name: _convert for name in ("rnn", "lstm", "gru")}
