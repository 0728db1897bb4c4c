"""The executor's backward bookkeeping: first gradients stored without a sum, fan-out sums,
the trainer's releasing pass and tapes whose contexts carry no prepared wiring."""

from __future__ import annotations

import gc

import numpy as np

from engine.core.compile import compile_document
from engine.core.run import Executor, collection_paused, init_weights
from engine.data.examples import example_feeds
from tests.helpers import doc_of, e, input_mlp, n, spiral


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


def test_collection_paused_nests_and_restores_the_collector():
    assert gc.isenabled()
    outer, inner = collection_paused(), collection_paused()
    with outer:
        assert not gc.isenabled()
        with inner:
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer block is still inside
    assert gc.isenabled()
    gc.disable()
    try:
        with collection_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # off before the first block: stays off
    finally:
        gc.enable()


def test_a_training_step_runs_without_collections_and_leaves_the_collector_on():
    from engine.train.trainer import Trainer

    trainer = Trainer(spiral())
    trainer.train_step()
    inside = [False]
    inside_collections: list[int] = []
    outside_collections: list[int] = []
    forward_backward = trainer._forward_backward

    def marked(*args, **kwargs):
        inside[0] = True
        try:
            return forward_backward(*args, **kwargs)
        finally:
            inside[0] = False

    def note(phase: str, info: dict) -> None:
        if phase == "start":
            (inside_collections if inside[0] else outside_collections).append(1)

    trainer._forward_backward = marked
    threshold = gc.get_threshold()
    gc.set_threshold(1)  # any allocation trips a collection where one is allowed
    gc.callbacks.append(note)
    try:
        for _ in range(3):
            trainer.train_step()
            assert gc.isenabled()
            _ = [[] for _ in range(10)]  # outside the step: collections happen again
    finally:
        gc.callbacks.remove(note)
        gc.set_threshold(*threshold)
    assert not inside_collections
    assert outside_collections
