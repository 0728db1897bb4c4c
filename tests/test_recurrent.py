"""Recurrent cells: kernels equal their numpy twins; the RNN / LSTM / GRU layers (stacked)
match torch.nn.RNN / LSTM / GRU in float64 — outputs, last states, the input gradient and every
parameter gradient — with PyTorch's parameter names; PyTorch's default initialisation."""

from __future__ import annotations

import numpy as np
import pytest

from engine.core.compile import compile_document
from engine.core.run import Executor, init_weights
from engine.kernels import recurrent as k
from tests.helpers import doc_of, e, n


def _rand(rng, *shape):
    return rng.uniform(-0.8, 0.8, shape)


@pytest.mark.parametrize("act", [k.TANH, k.RELU])
def test_rnn_kernels_equal_their_numpy_twins(act):
    rng = np.random.default_rng(0)
    b, t, h = 3, 5, 4
    xp, wh, h0 = _rand(rng, t, h, b), _rand(rng, h, h), _rand(rng, h, b)
    ours, twin = np.empty((t, h, b)), np.empty((t, h, b))
    k.rnn_fwd(xp, wh, h0, act, ours)
    k.rnn_fwd_np(xp, wh, h0, act, twin)
    np.testing.assert_allclose(ours, twin, rtol=1e-12, atol=1e-14)
    dhs, dh = _rand(rng, t, h, b), _rand(rng, h, b)
    whT = np.ascontiguousarray(wh.T)
    da1, da2 = np.empty_like(ours), np.empty_like(ours)
    np.testing.assert_allclose(k.rnn_bwd(dhs, dh, ours, whT, act, da1),
                               k.rnn_bwd_np(dhs, dh, twin, whT, act, da2), rtol=1e-12)
    np.testing.assert_allclose(da1, da2, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_lstm_kernels_equal_their_numpy_twins(dtype):
    rng = np.random.default_rng(1)
    b, t, h = 2, 6, 3
    xp, wh, h0, c0 = (_rand(rng, t, 4 * h, b).astype(dtype), _rand(rng, 4 * h, h).astype(dtype),
                      _rand(rng, h, b).astype(dtype), _rand(rng, h, b).astype(dtype))
    outs = [[np.empty((t, h, b), dtype), np.empty((t, h, b), dtype),
             np.empty((t, 4 * h, b), dtype), np.empty((t, h, b), dtype)] for _ in range(2)]
    k.lstm_fwd(xp, wh, h0, c0, *outs[0])
    k.lstm_fwd_np(xp, wh, h0, c0, *outs[1])
    tol = 1e-12 if dtype == np.float64 else 1e-5
    for a, c in zip(*outs):
        np.testing.assert_allclose(a, c, rtol=tol, atol=tol)
    hs, cs, gates, tc = outs[0]
    dhs, dh, dc = (_rand(rng, t, h, b).astype(dtype), _rand(rng, h, b).astype(dtype),
                   _rand(rng, h, b).astype(dtype))
    whT = np.ascontiguousarray(wh.T)
    da1, da2 = np.empty_like(gates), np.empty_like(gates)
    got = k.lstm_bwd(dhs, dh, dc, gates, cs, tc, c0, whT, da1)
    want = k.lstm_bwd_np(dhs, dh, dc, gates, cs, tc, c0, whT, da2)
    for a, c in zip(got + (da1,), want + (da2,)):
        np.testing.assert_allclose(a, c, rtol=tol, atol=tol)


def test_gru_kernels_equal_their_numpy_twins():
    rng = np.random.default_rng(2)
    b, t, h = 2, 5, 4
    xp, wh, bh, h0 = _rand(rng, t, 3 * h, b), _rand(rng, 3 * h, h), _rand(rng, 3 * h), \
        _rand(rng, h, b)
    outs = [[np.empty((t, h, b)), np.empty((t, 3 * h, b)), np.empty((t, h, b))]
            for _ in range(2)]
    k.gru_fwd(xp, wh, bh, h0, *outs[0])
    k.gru_fwd_np(xp, wh, bh, h0, *outs[1])
    for a, c in zip(*outs):
        np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-14)
    hs, gates, hn = outs[0]
    dhs, dh = _rand(rng, t, h, b), _rand(rng, h, b)
    whT = np.ascontiguousarray(wh.T)
    grads = [(np.empty_like(gates), np.empty_like(gates)) for _ in range(2)]
    got = k.gru_bwd(dhs, dh, gates, hn, hs, h0, whT, *grads[0])
    want = k.gru_bwd_np(dhs, dh, gates, hn, hs, h0, whT, *grads[1])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    for a, c in zip(grads[0], grads[1]):
        np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-14)


def test_extreme_inputs_stay_finite():
    b, t, h = 2, 4, 3
    xp = np.full((t, 4 * h, b), 1e3)
    xp[:, :, 0] = -1e3
    hs, cs, gates = np.empty((t, h, b)), np.empty((t, h, b)), np.empty((t, 4 * h, b))
    k.lstm_fwd(xp, np.zeros((4 * h, h)), np.zeros((h, b)), np.zeros((h, b)), hs, cs, gates,
               np.empty((t, h, b)))
    assert np.isfinite(hs).all() and np.isfinite(cs).all()
    assert np.abs(gates).max() <= 1.0


def _layer_doc(kind: str, layers: int, features: int, hidden: int, **extra) -> dict:
    return doc_of([n("x", "input", shape=["B", "T", features]),
                   n("rnn", kind, input_size=features, hidden_size=hidden, num_layers=layers,
                     **extra)],
                  [e("x:out", "rnn:x")])


@pytest.mark.parametrize("kind,layers", [("LSTM", 1), ("LSTM", 3), ("GRU", 2), ("RNN", 2)])
def test_layers_use_pytorch_parameter_names_and_initialisation(kind, layers):
    program = compile_document(_layer_doc(kind, layers, 3, 8), "float64")
    gates = {"RNN": 1, "LSTM": 4, "GRU": 3}[kind]
    expected = {f"rnn.{w}_l{i}" for i in range(layers)
                for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    assert set(program.parameters) == expected
    weights = init_weights(program.parameters, 0, np.float64)
    assert weights["rnn.weight_ih_l0"].shape == (gates * 8, 3)
    if layers > 1:
        assert weights["rnn.weight_ih_l1"].shape == (gates * 8, 8)
    bound = 1 / np.sqrt(8)
    for w in weights.values():
        assert np.abs(w).max() <= bound and np.abs(w).max() > 0.5 * bound


@pytest.mark.torch
@pytest.mark.parametrize("kind,layers,extra", [
    ("LSTM", 2, {}), ("GRU", 2, {}), ("RNN", 2, {"nonlinearity": "tanh"}),
    ("RNN", 1, {"nonlinearity": "relu"}), ("LSTM", 1, {})])
def test_layers_match_torch_outputs_and_every_gradient(kind, layers, extra):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    features, hidden, b, t = 3, 6, 4, 7
    program = compile_document(_layer_doc(kind, layers, features, hidden, **extra), "float64")
    ex = Executor(program, "float64")
    weights = {name: rng.uniform(-0.5, 0.5, info.shape)
               for name, info in program.parameters.items()}
    x = rng.standard_normal((b, t, features))
    tape = ex.forward({"x": x}, weights, {}, training=True, seed=0)
    outs = program.node_outputs["rnn"]
    projections = {o: rng.standard_normal(tape.values[o].shape) for o in outs}
    wgrads, vgrads = ex.backward(tape, projections)

    module = getattr(torch.nn, kind)(features, hidden, num_layers=layers, batch_first=True,
                                     dtype=torch.float64, **extra)
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(torch.from_numpy(weights[f"rnn.{name}"]))
    tx = torch.tensor(x, requires_grad=True)
    y, last = module(tx)
    theirs = [y, *last] if kind == "LSTM" else [y, last]
    total = sum((a * torch.from_numpy(projections[o])).sum() for a, o in zip(theirs, outs))
    total.backward()
    for o, a in zip(outs, theirs):
        np.testing.assert_allclose(tape.values[o], a.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(vgrads["x:out"], tx.grad.numpy(), rtol=1e-9, atol=1e-11)
    for name, p in module.named_parameters():
        np.testing.assert_allclose(wgrads[f"rnn.{name}"], p.grad.numpy(), rtol=1e-9,
                                   atol=1e-11, err_msg=name)
