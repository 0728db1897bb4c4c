"""The recurrent layers ``RNN``, ``LSTM`` and ``GRU``: up to four stacked cells (the fused ops
of :mod:`engine.ops.recurrent`), with parameter nodes named like PyTorch's (``weight_ih_l0``,
``weight_hh_l0``, ``bias_ih_l0``, ``bias_hh_l0``, … per layer), so ``<node>.weight_ih_l0`` is
``torch.nn.LSTM``'s ``weight_ih_l0`` and weights map 1:1 both ways.

Inside the layer, layer k ≥ 1 is muted unless ``num_layers`` > k (its cell passes y through);
``h_n`` (and ``c_n``) stack each layer's last state like PyTorch: (num_layers, B, H).
"""

from __future__ import annotations

from engine.layers.builtin import X_IN, edge, node, param, register_layer

MAX_LAYERS = 4
GATES = {"RNN": ("rnn", 1), "LSTM": ("lstm", 4), "GRU": ("gru", 3)}

EQUATIONS = {
    "RNN": "h_t = act(x_t W_ihᵀ + b_ih + h_{t−1} W_hhᵀ + b_hh), act = tanh or relu",
    "LSTM": "i = σ(x_t W_iiᵀ + b_ii + h_{t−1} W_hiᵀ + b_hi)\n"
            "f = σ(x_t W_ifᵀ + b_if + h_{t−1} W_hfᵀ + b_hf)\n"
            "g = tanh(x_t W_igᵀ + b_ig + h_{t−1} W_hgᵀ + b_hg)\n"
            "o = σ(x_t W_ioᵀ + b_io + h_{t−1} W_hoᵀ + b_ho)\n"
            "c_t = f ⊙ c_{t−1} + i ⊙ g\n"
            "h_t = o ⊙ tanh(c_t)",
    "GRU": "r = σ(x_t W_irᵀ + b_ir + h_{t−1} W_hrᵀ + b_hr)\n"
           "z = σ(x_t W_izᵀ + b_iz + h_{t−1} W_hzᵀ + b_hz)\n"
           "n = tanh(x_t W_inᵀ + b_in + r ⊙ (h_{t−1} W_hnᵀ + b_hn))\n"
           "h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}",
}


def _enabled(k: int) -> dict:
    """Layer k is on when num_layers > k ("$num_layers//(k+1)" is then ≥ 1)."""
    return {"when": f"$num_layers//{k + 1}"} if k else {}


def _layer_nodes(name: str, k: int) -> tuple[list, list]:
    op, gates = GATES[name]
    rows = f"$hidden_size*{gates}" if gates > 1 else "$hidden_size"
    width = "$input_size" if k == 0 else "$hidden_size"
    init = {"init": "fan_in_uniform", "fan_in": "$hidden_size"}  # PyTorch: U(±1/√hidden)
    on = _enabled(k)
    cell = {**node(f"cell_l{k}", op, **({"nonlinearity": "$nonlinearity"} if op == "rnn"
                                        else {})), **on}
    if k:
        cell["bypass"] = {"y": "x"}
    nodes = [
        {**node(f"weight_ih_l{k}", "parameter", shape=[rows, width], **init), **on},
        {**node(f"weight_hh_l{k}", "parameter", shape=[rows, "$hidden_size"], **init), **on},
        {**node(f"bias_ih_l{k}", "parameter", shape=[rows], decay=False, **init), **on},
        {**node(f"bias_hh_l{k}", "parameter", shape=[rows], decay=False, **init), **on},
        cell,
    ]
    source = "$in:x" if k == 0 else f"cell_l{k - 1}:y"
    edges = [edge(source, f"cell_l{k}:x")] + [
        edge(f"{w}_l{k}:out", f"cell_l{k}:{w}")
        for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    states = ["h_n", "c_n"] if op == "lstm" else ["h_n"]
    for s in states:
        nodes.append({**node(f"{s}_l{k}", "reshape", shape=[1, "B", "$hidden_size"]), **on})
        edges += [edge(f"cell_l{k}:{s}", f"{s}_l{k}:x"),
                  edge(f"{s}_l{k}:out", f"{s}:inputs[{k}]")]
    return nodes, edges


def definition(name: str) -> dict:
    """The layer definition of ``RNN``, ``LSTM`` or ``GRU``."""
    op, _ = GATES[name]
    states = ["h_n", "c_n"] if op == "lstm" else ["h_n"]
    params = [
        param("input_size", "int", 16, "Features of x (B, T, input_size).", min=1),
        param("hidden_size", "int", 32, "Features of each hidden state.", min=1),
        param("num_layers", "int", 1, f"Stacked layers (1–{MAX_LAYERS}); each reads the one "
              f"below's hidden states.", min=1, max=MAX_LAYERS),
    ]
    if op == "rnn":
        params.append(param("nonlinearity", "choice", "tanh", "The activation.",
                            choices=["tanh", "relu"]))
    nodes = [node(s, "concat", axis=0) for s in states]
    edges: list = []
    for k in range(MAX_LAYERS):
        more_nodes, more_edges = _layer_nodes(name, k)
        nodes += more_nodes
        edges += more_edges
    outputs = [{"name": "y", "node": f"cell_l{MAX_LAYERS - 1}", "port": "y"}]
    outputs += [{"name": s, "node": s, "port": "out"} for s in states]
    return {
        "doc": f"{name} over a batch-first sequence x (B, T, input_size), like torch.nn.{name}"
               f"(batch_first=True): y holds every hidden state of the top layer (B, T, "
               f"hidden_size); {' and '.join(states)} the last states of every layer "
               f"(num_layers, B, hidden_size).\n\n"
               f"{EQUATIONS[name]}\n\n"
               f"Each layer is one fused `{op}` op (its time loop runs in a Numba kernel); "
               f"weights keep PyTorch's names and gate layout (weight_ih_l0, weight_hh_l0, "
               f"bias_ih_l0, bias_hh_l0 …), initialised U(±1/√hidden_size) as in PyTorch. "
               f"Initial states are zeros; wire the `{op}` op itself to give h0"
               f"{' / c0' if op == 'lstm' else ''}.",
        "params": params,
        "inputs": X_IN,
        "outputs": outputs,
        "nodes": nodes,
        "edges": edges,
    }


RECURRENT_LAYERS = {name: definition(name) for name in GATES}

for _name, _definition in RECURRENT_LAYERS.items():
    register_layer(_name, _definition)
