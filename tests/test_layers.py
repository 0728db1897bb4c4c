"""Every built-in layer is gradient-checked as a whole (all its inner ops and parameters
together) in float64, and the CNN and transformer building blocks match PyTorch.

The table below must name every registered layer: a layer added without a case fails
``test_every_registered_layer_has_a_case``.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine.core import registry
from engine.core.compile import compile_document
from engine.core.run import Executor, init_weights
from tests.helpers import doc_of, e, n

# layer -> (input shape, input dtype, id bound for int inputs, layer params)
LAYER_CASES = {
    "Linear": (["B", 5], "float", 0, dict(in_features=5, out_features=4)),
    "MLP": (["B", 5], "float", 0,
            dict(in_features=5, hidden_features=6, out_features=3, activation="gelu")),
    "Conv2d": (["B", 2, 5, 5], "float", 0,
               dict(in_channels=2, out_channels=3, kernel_size=3, padding=1)),
    "MaxPool2d": (["B", 2, 4, 4], "float", 0, dict(kernel_size=2, stride=2)),
    "AvgPool2d": (["B", 2, 4, 4], "float", 0, dict(kernel_size=2, stride=2)),
    "Flatten": (["B", 2, 3, 3], "float", 0, dict()),
    "BatchNorm1d": (["B", 3], "float", 0, dict(num_features=3)),
    "BatchNorm2d": (["B", 2, 3, 3], "float", 0, dict(num_features=2)),
    "Embedding": (["B", "T"], "int", 7, dict(num_embeddings=7, embedding_dim=4)),
    "PositionalEmbedding": (["B", "T", 4], "float", 0, dict(block_size=6, embedding_dim=4)),
    "LayerNorm": (["B", "T", 6], "float", 0, dict(normalized_shape=6)),
    "Dropout": (["B", 6], "float", 0, dict(p=0.3)),
    "MultiHeadSelfAttention": (["B", "T", 8], "float", 0, dict(embed_dim=8, num_heads=2)),
    "TransformerBlock": (["B", "T", 8], "float", 0,
                         dict(embed_dim=8, num_heads=2, mlp_ratio=2)),
    # The encoder–decoder layers without their padding masks (tests/test_seq2seq_layers.py
    # checks them masked against PyTorch).
    "MultiHeadAttention": (["B", "T", 8], "float", 0, dict(embed_dim=8, num_heads=2)),
    "TransformerEncoderBlock": (["B", "T", 8], "float", 0,
                                dict(embed_dim=8, num_heads=2, mlp_ratio=2,
                                     key_padding_mask=False)),
    "TransformerDecoderBlock": (["B", "T", 8], "float", 0,
                                dict(embed_dim=8, num_heads=2, mlp_ratio=2,
                                     key_padding_mask=False)),
    # Stacked recurrent layers (tests/test_recurrent.py checks them against torch.nn.*).
    "RNN": (["B", "T", 3], "float", 0, dict(input_size=3, hidden_size=4, num_layers=2)),
    "LSTM": (["B", "T", 3], "float", 0, dict(input_size=3, hidden_size=4, num_layers=2)),
    "GRU": (["B", "T", 3], "float", 0, dict(input_size=3, hidden_size=4, num_layers=2)),
}
# Further ports of a layer fed by the same x (self-attention: one wire feeds both sides).
ALSO_FED = {"MultiHeadAttention": ["key_value"], "TransformerDecoderBlock": ["memory"]}
SIZES = {"B": 3, "T": 4}
EPS = 1e-6
# |analytic − numeric| ≤ ATOL + RTOL·(|analytic| + |numeric|). ATOL covers the rounding noise
# of central differences (~1e-9 here) where the true gradient is exactly zero, e.g. the key
# bias of attention, which shifts every score of a row equally and so never changes softmax.
RTOL, ATOL = 1e-5, 2e-8
MAX_COORDS = 40


def _layer_doc(name: str) -> dict:
    shape, dtype, high, params = LAYER_CASES[name]
    port = registry.get(name).inputs[0].name
    return doc_of([n("x", "input", shape=shape, dtype=dtype, high=high),
                   n("layer", name, **params)],
                  [e("x:out", f"layer:{p}") for p in [port, *ALSO_FED.get(name, [])]])


def _feed(name: str, rng: np.random.Generator) -> np.ndarray:
    shape, dtype, high, _ = LAYER_CASES[name]
    concrete = [SIZES.get(d, d) for d in shape]
    if dtype == "int":
        return rng.integers(0, high, size=concrete).astype(np.int64)
    return rng.uniform(-1.0, 1.0, size=concrete)


def layer_gradient_errors(name: str, seed: int = 0) -> dict[str, float]:
    """Worst violation ratio per tensor (≤ 1 passes) of backprop vs central differences."""
    program = compile_document(_layer_doc(name), "float64")
    ex = Executor(program, "float64")
    rng = np.random.default_rng(seed)
    weights = init_weights(program.parameters, seed, np.float64)
    for k in weights:  # away from special inits (ones / zeros) so every term matters
        weights[k] = weights[k] + rng.uniform(-0.5, 0.5, weights[k].shape)
    state = init_weights(program.state, seed, np.float64)
    x = _feed(name, rng)
    out = program.node_outputs["layer"][0]

    def forward(xv, ws):
        st = {k: v.copy() for k, v in state.items()}
        return ex.forward({"x": xv}, ws, st, training=True, seed=seed)

    tape = forward(x, weights)
    proj = rng.standard_normal(tape.values[out].shape)

    def objective(xv, ws) -> float:
        return float(np.sum(proj * forward(xv, ws).values[out]))

    wgrads, vgrads = ex.backward(tape, {out: proj})
    targets = [(k, weights[k], wgrads.get(k)) for k in weights]
    if x.dtype.kind == "f":
        targets.append(("x", x, vgrads.get("x:out")))
    errors = {}
    for label, base, analytic in targets:
        analytic = np.zeros_like(base) if analytic is None else np.broadcast_to(analytic,
                                                                                base.shape)
        coords = rng.choice(base.size, size=min(MAX_COORDS, base.size), replace=False)
        worst = 0.0
        for c in coords:
            idx = np.unravel_index(c, base.shape)
            plus, minus = base.copy(), base.copy()
            plus[idx] += EPS
            minus[idx] -= EPS
            if label == "x":
                numeric = (objective(plus, weights) - objective(minus, weights)) / (2 * EPS)
            else:
                numeric = (objective(x, {**weights, label: plus})
                           - objective(x, {**weights, label: minus})) / (2 * EPS)
            a = float(analytic[idx])
            worst = max(worst, abs(a - numeric) / (ATOL + RTOL * (abs(a) + abs(numeric))))
        errors[label] = worst
    return errors


def test_every_registered_layer_has_a_case():
    layers = {s.name for s in registry.all_ops() if s.category == "layer"}
    assert layers - set(LAYER_CASES) == set()
    assert set(LAYER_CASES) - layers == set()


@pytest.mark.parametrize("name", sorted(LAYER_CASES))
def test_layer_gradients_match_central_differences(name):
    errors = layer_gradient_errors(name)
    program = compile_document(_layer_doc(name), "float64")
    assert set(program.parameters) <= set(errors)  # every parameter was checked
    bad = {k: v for k, v in errors.items() if v > 1.0}
    assert bad == {}, f"{name}: gradients disagree with central differences: {bad}"


def test_the_layer_check_catches_a_wrong_inner_backward(monkeypatch):
    spec = registry.get("layer_norm")
    original = spec.backward

    def wrong(ctx, params, g):
        gx, *rest = original(ctx, params, g)
        return (gx * 1.001, *rest)

    monkeypatch.setattr(spec, "backward", wrong)
    errors = layer_gradient_errors("TransformerBlock")
    assert errors["x"] > 1.0
