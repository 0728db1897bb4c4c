"""Parameters run without a context of their own: the executor puts each weight in the
values and hands its value's summed gradient to the weight."""

from __future__ import annotations

import numpy as np
import pytest

from engine.core.compile import compile_document
from engine.core.run import Executor, init_weights
from engine.data.examples import example_feeds
from tests.helpers import doc_of, e, n


def _tied_program():
    # loss = sum(tanh(x @ W) @ W @ V): W is read twice, at two depths; V once, last.
    nodes = [n("x", "input", shape=["B", 4]), n("W", "parameter", shape=[4, 4], init="normal",
                                                 std=0.5),
             n("V", "parameter", shape=[4, 3], init="normal", std=0.5),
             n("mm1", "matmul"), n("act", "tanh"), n("mm2", "matmul"), n("mm3", "matmul"),
             n("loss", "sum")]
    edges = [e("x:out", "mm1:a"), e("W:out", "mm1:b"), e("mm1:out", "act:x"),
             e("act:out", "mm2:a"), e("W:out", "mm2:b"), e("mm2:out", "mm3:a"),
             e("V:out", "mm3:b"), e("mm3:out", "loss:x")]
    return compile_document(doc_of(nodes, edges), "float64")


@pytest.mark.parametrize("release", [False, True])
def test_parameters_run_without_contexts_and_their_gradients_reach_the_weights(release):
    program = _tied_program()
    weights = init_weights(program.parameters, 2, np.float64)
    feeds = example_feeds(program, seed=3, sizes={"B": 5})
    ex = Executor(program)
    tape = ex.forward(feeds, weights, training=True, seed=0)
    assert all(ctx.eq.op.name != "parameter" for ctx in tape.contexts)
    assert sorted(full for _, full in tape.weight_values) == ["V", "W"]
    for value, full in tape.weight_values:
        assert tape.values[value] is weights[full]  # the weight itself, not a copy
    loss = program.node_outputs["loss"][0]
    grads, _ = ex.backward(tape, {loss: np.ones(())}, release=release)
    # loss = Σ tanh(xW)·W·V: against central differences of the whole graph
    for name in ("W", "V"):
        numeric = np.zeros_like(weights[name])
        for idx in np.ndindex(*weights[name].shape):
            values = []
            for step in (1e-6, -1e-6):
                moved = {k: v.copy() for k, v in weights.items()}
                moved[name][idx] += step
                out = ex.forward(feeds, moved, training=True, seed=0).values[loss]
                values.append(float(out))
            numeric[idx] = (values[0] - values[1]) / 2e-6
        np.testing.assert_allclose(grads[name], numeric, rtol=1e-6, atol=1e-8)


def test_a_parameter_nothing_reads_gets_no_gradient():
    nodes = [n("x", "input", shape=["B", 2]), n("W", "parameter", shape=[2, 2]),
             n("unused", "parameter", shape=[3]), n("mm", "matmul"), n("loss", "sum")]
    edges = [e("x:out", "mm:a"), e("W:out", "mm:b"), e("mm:out", "loss:x")]
    program = compile_document(doc_of(nodes, edges), "float64")
    weights = init_weights(program.parameters, 0, np.float64)
    ex = Executor(program)
    tape = ex.forward(example_feeds(program, seed=0, sizes={"B": 3}), weights, seed=0)
    grads, _ = ex.backward(tape, {program.node_outputs["loss"][0]: np.ones(())}, release=True)
    assert set(grads) == {"W"}


def test_parameter_values_keep_their_gradients_outside_the_releasing_pass():
    program = _tied_program()
    weights = init_weights(program.parameters, 4, np.float64)
    feeds = example_feeds(program, seed=1, sizes={"B": 3})
    ex = Executor(program)
    tape = ex.forward(feeds, weights, training=True, seed=0)
    loss = program.node_outputs["loss"][0]
    wgrads, vgrads = ex.backward(tape, {loss: np.ones(())})
    w_value = next(v for v, full in tape.weight_values if full == "W")
    np.testing.assert_array_equal(vgrads[w_value], wgrads["W"])  # inspection sees both
    _, released = ex.backward(ex.forward(feeds, weights, training=True, seed=0),
                              {loss: np.ones(())}, release=True)
    assert w_value not in released
