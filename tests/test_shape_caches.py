"""Reshape targets and permutations are cached per shape: the same equation run at other
batch sizes (an epoch's short last batch) and other ranks still gets its own answer."""

from __future__ import annotations

import numpy as np

from engine.core.compile import compile_document
from engine.core.run import Executor
from engine.ops import shape
from tests.helpers import doc_of, e, n


def _program():
    nodes = [n("x", "input", shape=["B", 4, 2]), n("r", "reshape", shape=["B", 8]),
             n("p", "permute", axes=[1, 0]), n("loss", "sum")]
    edges = [e("x:out", "r:x"), e("r:out", "p:x"), e("p:out", "loss:x")]
    return compile_document(doc_of(nodes, edges), "float64")


def test_a_reshape_and_permute_follow_each_batch_size():
    program = _program()
    ex = Executor(program)
    out = program.node_outputs["p"][0]
    loss = program.node_outputs["loss"][0]
    for rows in (4, 3, 4, 1):
        x = np.arange(rows * 8, dtype=np.float64).reshape(rows, 4, 2)
        tape = ex.forward({"x": x}, {}, training=True)
        np.testing.assert_array_equal(tape.values[out], x.reshape(rows, 8).T)
        _, grads = ex.backward(tape, {loss: np.ones(())})
        assert grads[program.node_outputs["x"][0]].shape == (rows, 4, 2)


def test_the_cached_inverse_permutation_undoes_the_permutation():
    for perm in [(1, 0), (0, 2, 1, 3), (2, 0, 1), (3, 1, 2, 0)]:
        x = np.arange(np.prod(range(2, 2 + len(perm)))).reshape(range(2, 2 + len(perm)))
        back = np.transpose(np.transpose(x, perm), shape._inverse_permutation(perm))
        np.testing.assert_array_equal(back, x)
