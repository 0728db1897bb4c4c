"""Reverse-mode autodiff end to end on the spiral MLP: gradients, fan-out, determinism."""

from __future__ import annotations

import numpy as np

from engine.core import registry
from engine.core.compile import compile_document
from engine.core.gradcheck import gradcheck_document
from engine.core.run import Executor, init_weights
from engine.data.examples import example_feeds
from tests.helpers import doc_of, e, input_mlp, n


def _loss_and_grads(program, feeds, weights, dtype="float32", seed=0):
    ex = Executor(program, dtype)
    tape = ex.forward(feeds, weights, training=True, seed=seed)
    loss_value = program.node_outputs["loss"][0]
    wgrads, _ = ex.backward(tape, {loss_value: np.ones((), dtype=ex.dtype)})
    return float(tape.values[loss_value]), wgrads


def test_whole_graph_gradient_matches_finite_differences():
    program = compile_document(input_mlp(), "float64")
    weights = init_weights(program.parameters, 3, np.float64)
    feeds = example_feeds(program, seed=1, sizes={"B": 16})
    loss, grads = _loss_and_grads(program, feeds, weights, "float64")
    w = weights["fc1.weight"]
    for idx in [(0, 0), (5, 1), (63, 0)]:
        plus = {**weights, "fc1.weight": w.copy()}
        plus["fc1.weight"][idx] += 1e-6
        minus = {**weights, "fc1.weight": w.copy()}
        minus["fc1.weight"][idx] -= 1e-6
        numeric = (_loss_and_grads(program, feeds, plus, "float64")[0]
                   - _loss_and_grads(program, feeds, minus, "float64")[0]) / 2e-6
        assert abs(numeric - grads["fc1.weight"][idx]) <= 1e-6 * max(1.0, abs(numeric))


def test_fan_out_gradients_accumulate():
    # out = sum(x * x + x): d/dx = 2x + 1, the value x fans out to three uses.
    nodes = [n("p", "parameter", shape=[5], init="normal", std=1.0), n("sq", "mul"),
             n("plus", "add"), n("loss", "sum")]
    edges = [e("p:out", "sq:a"), e("p:out", "sq:b"), e("sq:out", "plus:a"),
             e("p:out", "plus:b"), e("plus:out", "loss:x")]
    program = compile_document(doc_of(nodes, edges), "float64")
    weights = init_weights(program.parameters, 0, np.float64)
    _, grads = _loss_and_grads(program, {}, weights, "float64")
    np.testing.assert_allclose(grads["p"], 2 * weights["p"] + 1, rtol=1e-12)


def test_gradcheck_every_node_of_the_preset():
    reports = gradcheck_document(input_mlp())
    assert [r.id for r in reports] == ["fc1", "act1", "fc2", "loss"]
    assert all(r.ok and r.checked > 0 for r in reports)


def test_float32_by_default_and_float64_on_request():
    program = compile_document(input_mlp())
    feeds = example_feeds(program, sizes={"B": 8})
    for dtype, expected in (("float32", np.float32), ("float64", np.float64)):
        weights = init_weights(program.parameters, 0, expected)
        tape = Executor(program, dtype).forward(feeds, weights)
        assert tape.values["fc2.add:out"].dtype == expected


def test_seeded_runs_are_bit_identical():
    program = compile_document(input_mlp())
    runs = []
    for _ in range(2):
        weights = init_weights(program.parameters, 7, np.float32)
        feeds = example_feeds(program, seed=7, sizes={"B": 32})
        loss, grads = _loss_and_grads(program, feeds, weights)
        runs.append((loss, {k: v.tobytes() for k, v in grads.items()}))
    assert runs[0] == runs[1]


def test_plain_gradient_descent_lowers_the_loss():
    """End to end on the first MLP: forward, backward and an SGD update learn a fixed batch."""
    program = compile_document(input_mlp())
    weights = init_weights(program.parameters, 0, np.float32)
    rng = np.random.default_rng(0)
    points = rng.normal(size=(64, 2)).astype(np.float32)
    labels = (points[:, 0] > 0).astype(np.int64) + (points[:, 1] > 0).astype(np.int64)
    feeds = {"points": points, "labels": labels}
    first, _ = _loss_and_grads(program, feeds, weights)
    for _ in range(200):
        loss, grads = _loss_and_grads(program, feeds, weights)
        weights = {k: v - 0.5 * grads[k] for k, v in weights.items()}
    assert loss < 0.5 * first


def test_input_shape_mismatch_names_the_input():
    import pytest

    from engine.base.errors import WiregradError

    program = compile_document(input_mlp())
    weights = init_weights(program.parameters, 0, np.float32)
    feeds = {"points": np.zeros((4, 3), np.float32), "labels": np.zeros(4, np.int64)}
    with pytest.raises(WiregradError, match="does not match") as info:
        Executor(program).forward(feeds, weights)
    assert info.value.node == "points"


def test_index_and_slice_fan_out_scatter_into_one_gradient():
    """q/k/v-style fan-out: index and slice gradients are added in place into the input's
    gradient (no zero-filled array per consumer); the result equals the dense formula."""
    nodes = [n("p", "parameter", shape=[3, 4], init="normal", std=1.0),
             n("i0", "index", axis=0, index=0), n("i1", "index", axis=0, index=1),
             n("i2", "index", axis=0, index=-1), n("tail", "slice", axis=1, start=2),
             n("m", "mul"), n("sq", "mul"), n("s1", "sum"), n("s2", "sum"), n("s3", "sum"),
             n("s4", "sum"), n("a", "add"), n("b", "add"), n("loss", "add")]
    edges = [e("p:out", "i0:x"), e("p:out", "i1:x"), e("p:out", "i2:x"), e("p:out", "tail:x"),
             e("i1:out", "m:a"), e("i2:out", "m:b"), e("m:out", "s1:x"), e("i0:out", "s2:x"),
             e("tail:out", "sq:a"), e("tail:out", "sq:b"), e("sq:out", "s3:x"),
             e("p:out", "s4:x"),  # a dense consumer of p as well
             e("s1:out", "a:a"), e("s2:out", "a:b"), e("s3:out", "b:a"), e("s4:out", "b:b"),
             e("a:out", "loss:a"), e("b:out", "loss:b")]
    program = compile_document(doc_of(nodes, edges), "float64")
    weights = init_weights(program.parameters, 0, np.float64)
    _, grads = _loss_and_grads(program, {}, weights, "float64")
    p = weights["p"]
    expected = np.ones_like(p)  # s4
    expected[0] += 1.0  # s2
    expected[1] += p[2]  # s1 = Σ p1·p2
    expected[2] += p[1]
    expected[:, 2:] += 2 * p[:, 2:]  # s3 = Σ tail²
    np.testing.assert_allclose(grads["p"], expected, rtol=1e-12)
    assert registry.get("index").scatter_grad is not None
    assert registry.get("slice").scatter_grad is not None


def test_overlapping_index_and_slice_gradients_add_up():
    """Scatter writes into a fresh sum copy only where no earlier write landed: the same row
    picked twice (index 0 and -3), overlapping slices and picks along another axis add."""
    nodes = [n("p", "parameter", shape=[3, 4], init="normal", std=1.0),
             n("i0", "index", axis=0, index=0), n("i0b", "index", axis=0, index=-3),
             n("sa", "slice", axis=1, start=0, stop=3), n("sb", "slice", axis=1, start=2),
             n("ic", "index", axis=1, index=1), n("m0", "mul"), n("mb", "mul"),
             n("s1", "sum"), n("s2", "sum"), n("s3", "sum"), n("s4", "sum"), n("s5", "sum"),
             n("a", "add"), n("b", "add"), n("c", "add"), n("loss", "add")]
    edges = [e("p:out", "i0:x"), e("p:out", "i0b:x"), e("p:out", "sa:x"), e("p:out", "sb:x"),
             e("p:out", "ic:x"), e("i0:out", "m0:a"), e("i0:out", "m0:b"),
             e("sb:out", "mb:a"), e("sb:out", "mb:b"), e("m0:out", "s1:x"),
             e("i0b:out", "s2:x"), e("sa:out", "s3:x"), e("mb:out", "s4:x"),
             e("ic:out", "s5:x"), e("s1:out", "a:a"), e("s2:out", "a:b"), e("s3:out", "b:a"),
             e("s4:out", "b:b"), e("a:out", "c:a"), e("b:out", "c:b"), e("c:out", "loss:a"),
             e("s5:out", "loss:b")]
    program = compile_document(doc_of(nodes, edges), "float64")
    weights = init_weights(program.parameters, 0, np.float64)
    _, grads = _loss_and_grads(program, {}, weights, "float64")
    p = weights["p"]
    expected = np.zeros_like(p)
    expected[0] += 2 * p[0] + 1.0  # i0², i0b
    expected[:, :3] += 1.0  # sa
    expected[:, 2:] += 2 * p[:, 2:]  # sb²
    expected[:, 1] += 1.0  # ic
    np.testing.assert_allclose(grads["p"], expected, rtol=1e-12)


def test_index_of_a_permute_sums_its_gradient_in_the_permute_input_layout():
    """q/k/v split after a head permute: the summed gradient is a transposed view of a
    C-ordered buffer, so the permute's backward hands back a contiguous array (no copy)."""
    nodes = [n("p", "parameter", shape=[2, 3, 4], init="normal", std=1.0),
             n("perm", "permute", axes=[1, 0, 2]),
             n("i0", "index", axis=0, index=0), n("i2", "index", axis=0, index=2),
             n("m", "mul"), n("loss", "sum")]
    edges = [e("p:out", "perm:x"), e("perm:out", "i0:x"), e("perm:out", "i2:x"),
             e("i0:out", "m:a"), e("i2:out", "m:b"), e("m:out", "loss:x")]
    program = compile_document(doc_of(nodes, edges), "float64")
    weights = init_weights(program.parameters, 0, np.float64)
    ex = Executor(program, "float64")
    tape = ex.forward({}, weights, training=True)
    loss_value = program.node_outputs["loss"][0]
    wgrads, vgrads = ex.backward(tape, {loss_value: np.ones(())})
    p = weights["p"]
    expected = np.zeros_like(p)
    expected[:, 0] = p[:, 2]
    expected[:, 2] = p[:, 0]
    np.testing.assert_allclose(wgrads["p"], expected, rtol=1e-12)
    permuted = vgrads[program.node_outputs["perm"][0]]
    assert permuted.shape == (3, 2, 4) and not permuted.flags.c_contiguous
    assert np.transpose(permuted, (1, 0, 2)).flags.c_contiguous
