"""The executor's backward bookkeeping: first gradients stored without a sum, fan-out sums,
the trainer's releasing pass and tapes whose contexts carry no prepared wiring."""

from __future__ import annotations

import numpy as np

from engine.core.compile import compile_document
from engine.core.run import Executor, init_weights
from engine.data.examples import example_feeds
from tests.helpers import doc_of, e, input_mlp, n


def _fan_out_program():
    # out = sum(x * x + x): d/dx = 2x + 1, the value x fans out to three uses.
    nodes = [n("p", "parameter", shape=[5], init="normal", std=1.0), n("sq", "mul"),
             n("plus", "add"), n("loss", "sum")]
    edges = [e("p:out", "sq:a"), e("p:out", "sq:b"), e("sq:out", "plus:a"),
             e("p:out", "plus:b"), e("plus:out", "loss:x")]
    return compile_document(doc_of(nodes, edges), "float64")


def _grads(ex: Executor, feeds, weights, *, release=False, unwired=False) -> dict:
    tape = ex.forward(feeds, weights, training=True, seed=0)
    if unwired:
        for ctx in tape.contexts:
            ctx.wiring = None
    loss = ex.program.node_outputs["loss"][0]
    return ex.backward(tape, {loss: np.ones((), ex.dtype)}, release=release)[0]


def test_fan_out_sums_in_the_releasing_pass_too():
    program = _fan_out_program()
    weights = init_weights(program.parameters, 0, np.float64)
    ex = Executor(program)
    for release in (False, True):
        grads = _grads(ex, {}, weights, release=release)
        np.testing.assert_allclose(grads["p"], 2 * weights["p"] + 1, rtol=1e-12)


def test_a_gradient_handed_on_is_not_summed_into():
    # add returns its incoming gradient for both inputs: the sum must be a new array,
    # never an in-place add into the array the other input also holds.
    program = _fan_out_program()
    weights = init_weights(program.parameters, 1, np.float64)
    ex = Executor(program)
    first = _grads(ex, {}, weights)["p"].copy()
    np.testing.assert_array_equal(_grads(ex, {}, weights)["p"], first)


def test_contexts_without_wiring_give_the_same_gradients():
    program = compile_document(input_mlp(), "float64")
    weights = init_weights(program.parameters, 3, np.float64)
    feeds = example_feeds(program, seed=1, sizes={"B": 8})
    ex = Executor(program)
    wired = _grads(ex, feeds, weights)
    unwired = _grads(ex, feeds, weights, unwired=True)
    assert wired.keys() == unwired.keys() and wired
    for name, g in wired.items():
        np.testing.assert_array_equal(unwired[name], g)
