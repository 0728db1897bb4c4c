"""PyTorch references for the recurrent ops: torch.nn.RNN / LSTM / GRU (batch-first) called
with our weights, so outputs and every gradient are compared with PyTorch's own modules."""

from __future__ import annotations

import torch
from torch.func import functional_call

MODULES = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}


def run_torch(kind: str, params: dict, inputs: list):
    """(y, h_n[, c_n]) of the torch module with weights *inputs* in our port order."""
    x, w_ih, w_hh = inputs[:3]
    bias = len(inputs) > 3 and inputs[3] is not None
    extra = {"nonlinearity": params.get("nonlinearity", "tanh")} if kind == "rnn" else {}
    module = MODULES[kind](x.shape[2], w_hh.shape[1], bias=bias, batch_first=True, **extra)
    weights = {"weight_ih_l0": w_ih, "weight_hh_l0": w_hh}
    if bias:
        weights.update(bias_ih_l0=inputs[3], bias_hh_l0=inputs[4])
    state = None
    if len(inputs) > 5 and inputs[5] is not None:
        h0 = inputs[5].unsqueeze(0)
        state = (h0, inputs[6].unsqueeze(0)) if kind == "lstm" else h0
    elif kind == "lstm":
        zeros = torch.zeros(1, x.shape[0], w_hh.shape[1], dtype=x.dtype)
        state = (zeros, zeros)
    y, last = functional_call(module, weights, (x, state) if state is not None else (x,))
    if kind == "lstm":
        return y, last[0][0], last[1][0]
    return y, last[0]


REFS = {kind: (lambda k: lambda p, i, w, s, o: run_torch(k, p, i))(kind) for kind in MODULES}
