"""PyTorch code for the recurrent ops: each runs ``torch.nn.RNN`` / ``LSTM`` / ``GRU``
(batch-first, one layer) with the graph's weights through ``torch.func.functional_call``, so
the exported model uses PyTorch's own fused kernels and the parameters keep their names
(``lstm.weight_ih_l0`` …). :data:`OPS` and :data:`HELPER` are merged into
:data:`engine.export.torch_codegen.TORCH_OPS` / ``HELPERS`` by that module (this one does not
import it).
"""

from __future__ import annotations

HELPER = '''
RECURRENT = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def recurrent(kind: str, x, w_ih, w_hh, b_ih=None, b_hh=None, h0=None, c0=None,
              nonlinearity: str = "tanh") -> tuple:
    """One batch-first layer of torch.nn.RNN / LSTM / GRU run with these weights:
    (y (B, T, H), h_n (B, H)[, c_n (B, H)])."""
    extra = {"nonlinearity": nonlinearity} if kind == "rnn" else {}
    bias = b_ih is not None or b_hh is not None
    module = RECURRENT[kind](w_ih.shape[1], w_hh.shape[1], bias=bias, batch_first=True,
                             device="meta", dtype=x.dtype, **extra)
    weights = {"weight_ih_l0": w_ih, "weight_hh_l0": w_hh}
    if bias:
        weights["bias_ih_l0"] = b_ih if b_ih is not None else torch.zeros_like(b_hh)
        weights["bias_hh_l0"] = b_hh if b_hh is not None else torch.zeros_like(b_ih)
    zeros = x.new_zeros(1, x.shape[0], w_hh.shape[1])
    h = zeros if h0 is None else h0.unsqueeze(0)
    state = (h, zeros if c0 is None else c0.unsqueeze(0)) if kind == "lstm" else h
    y, last = torch.func.functional_call(module, weights, (x, state))
    if kind == "lstm":
        return y, last[0][0], last[1][0]
    return y, last[0]
'''


def _recurrent(s, eq, a) -> str:
    s.use("recurrent")
    args = ", ".join(v if v else "None" for v in a)
    extra = f", nonlinearity={eq.params['nonlinearity']!r}" if eq.op.name == "rnn" else ""
    return f"recurrent({eq.op.name!r}, {args}{extra})"


OPS = {name: _recurrent for name in ("rnn", "lstm", "gru")}
