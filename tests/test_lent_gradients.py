"""Gradient buffers an op lends to the executor (engine.core.lent): float32 attention whose
q, k and v are picks of one permuted value writes their gradients into one buffer, which the
picks' scatter adopts as its sum instead of zero-filling one and copying into it. Every graph
here trains or differentiates to the same bits with lending on and off, including the graphs
where the buffer is only partly covered or its views go to different sums."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from engine.core import lent
from engine.core.compile import compile_document
from engine.core.run import Executor, init_weights
from engine.graphs import builders, presets
from engine.train.trainer import Trainer
from tests.helpers import doc_of, e, n

B, T, H, D = 2, 6, 2, 4


@pytest.fixture
def adoptions(monkeypatch):
    """Counts the buffers the executor adopted."""
    count = [0]
    real = lent.adopt

    def counting(buf):
        taken = real(buf)
        count[0] += taken
        return taken

    monkeypatch.setattr(lent, "adopt", counting)
    return count


def _no_lending(monkeypatch) -> None:
    monkeypatch.setattr(lent, "lend", lambda shape, dtype: np.empty(shape, dtype))


def _attention_doc(slots: int = 3, picks=((0, "p"), (1, "p"), (2, "p")), extra_sum=None,
                   second_permute: bool = False) -> dict:
    """x (B, T, slots, H, D) → permute to (slots, B, H, T, D) → picks → causal attention →
    · w → sum; *picks* name each of q, k, v's (slot, permute node); *extra_sum* a slot also
    summed into the loss directly."""
    nodes = [n("x", "parameter", shape=[B, T, slots, H, D], init="normal", std=1.0),
             n("w", "parameter", shape=[B, H, T, D], init="normal", std=1.0),
             n("p", "permute", axes=[2, 0, 3, 1, 4]),
             n("att", "scaled_dot_product_attention", causal=True),
             n("m", "mul"), n("loss", "sum")]
    edges = [e("x:out", "p:x"), e("att:out", "m:a"), e("w:out", "m:b"), e("m:out", "loss:x")]
    if second_permute:
        nodes.append(n("p2", "permute", axes=[2, 0, 3, 1, 4]))
        edges.append(e("x:out", "p2:x"))
    for port, (slot, source) in zip("qkv", picks):
        nodes.append(n(f"i{port}", "index", axis=0, index=slot))
        edges += [e(f"{source}:out", f"i{port}:x"), e(f"i{port}:out", f"att:{port}")]
    if extra_sum is not None:
        nodes += [n("ix", "index", axis=0, index=extra_sum), n("sx", "sum"), n("total", "add")]
        edges = [ed for ed in edges if ed["dst"]["node"] != "loss"]
        edges += [e("p:out", "ix:x"), e("ix:out", "sx:x"), e("m:out", "loss:x"),
                  e("loss:out", "total:a"), e("sx:out", "total:b")]
    return doc_of(nodes, edges)


def _grads(doc: dict, release: bool = True) -> dict[str, np.ndarray]:
    program = compile_document(doc, "float32")
    weights = init_weights(program.parameters, 7, np.float32)
    ex = Executor(program, "float32")
    tape = ex.forward({}, weights, training=True)
    loss_value = program.loss_value if getattr(program, "loss_value", None) else \
        program.equations[-1].outputs[0]
    grads, _ = ex.backward(tape, {loss_value: np.ones((), np.float32)}, release=release)
    return grads


# case -> (graph, buffers adopted): the first scatter into the permuted value's sum adopts the
# buffer when its gradient is a view of it; a slot summed directly is scattered first
# (backward runs in reverse), so that sum is an ordinary zero-filled one
CASES = {
    "q, k, v of one permute": ({}, 1),
    "a fourth slot unused": ({"slots": 4}, 1),
    "a fourth slot summed too": ({"slots": 4, "extra_sum": 3}, 0),
    "k and v from a second permute": ({"picks": ((0, "p"), (1, "p2"), (2, "p2")),
                                       "second_permute": True}, 1),
    "q from a second permute": ({"picks": ((0, "p2"), (1, "p"), (2, "p")),
                                 "second_permute": True}, 1),
    "slots out of order": ({"slots": 4, "picks": ((3, "p"), (1, "p"), (0, "p"))}, 1),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_lent_buffers_give_the_same_gradients(case, adoptions, monkeypatch):
    params, adopted = CASES[case]
    doc = _attention_doc(**params)
    lent_grads = _grads(doc)
    assert adoptions[0] == adopted
    _no_lending(monkeypatch)
    plain = _grads(doc)
    assert adoptions[0] == adopted  # nothing lent, nothing adopted
    assert sorted(lent_grads) == sorted(plain) == ["w", "x"]
    for name in plain:
        assert np.array_equal(lent_grads[name], plain[name]), name
    if params.get("slots") == 4 and "extra_sum" not in params:
        unused = 2 if params.get("picks") else 3
        assert not lent_grads["x"][:, :, unused].any()  # never written: zeros, not garbage


def test_gradients_kept_for_inspection_are_never_adopted(adoptions):
    """Without release (gradient checks, the inspector) every value's gradient is kept, so
    the scatter copies as before: a sum sharing memory with q's kept gradient could change it
    when something else adds into the sum."""
    _grads(_attention_doc(), release=False)
    assert adoptions[0] == 0


def test_overlapping_views_are_not_lent():
    """One view passed as q, k and v (self-attention on one tensor): its three gradients must
    be separate arrays, so no common buffer is lent."""
    x = np.zeros((B, T, 3, H, D), np.float32).transpose(2, 0, 3, 1, 4)
    q, k, v = x[0], x[1], x[2]
    assert lent.common_base(q, k, v) is x.base
    assert lent.common_base(q, q, v) is None
    assert lent.common_base(q, k, np.zeros_like(v)) is None  # not views of one array


def _grads64(doc: dict) -> dict[str, np.ndarray]:
    program = compile_document(doc, "float64")
    weights = init_weights(program.parameters, 7, np.float64)
    ex = Executor(program, "float64")
    tape = ex.forward({}, weights, training=True)
    grads, _ = ex.backward(tape, {program.equations[-1].outputs[0]: np.ones((), np.float64)},
                           release=True)
    return grads


@pytest.mark.parametrize("broadcast", ["k", "kv"])
def test_multi_query_attention_gets_one_gradient_per_head(broadcast):
    """k (and v) one head broadcast to all heads of q (multi-query attention), picked from
    one permuted value with q: a broadcast view repeats its memory along the heads, so a lent
    view of it would take every head's gradient on the same elements (the last head's would
    win). Such views are not lent: the float32 gradients match float64's."""
    heads = 3
    slots = 2 * heads + 1  # q: heads, k: one, v: one (broadcast) or heads
    nodes = [n("x", "parameter", shape=[B, T, slots, D], init="normal", std=1.0),
             n("w", "parameter", shape=[B, heads, T, D], init="normal", std=1.0),
             n("p", "permute", axes=[0, 2, 1, 3]),
             n("sq", "slice", axis=1, start=0, stop=heads),
             n("sk", "slice", axis=1, start=heads, stop=heads + 1),
             n("bk", "broadcast_to", shape=[B, heads, T, D]),
             n("att", "scaled_dot_product_attention", causal=True),
             n("m", "mul"), n("loss", "sum")]
    edges = [e("x:out", "p:x"), e("p:out", "sq:x"), e("p:out", "sk:x"), e("sk:out", "bk:x"),
             e("sq:out", "att:q"), e("bk:out", "att:k"),
             e("att:out", "m:a"), e("w:out", "m:b"), e("m:out", "loss:x")]
    if broadcast == "kv":
        nodes += [n("sv", "slice", axis=1, start=heads + 1, stop=heads + 2),
                  n("bv", "broadcast_to", shape=[B, heads, T, D])]
        edges += [e("p:out", "sv:x"), e("sv:out", "bv:x"), e("bv:out", "att:v")]
    else:
        nodes.append(n("sv", "slice", axis=1, start=heads + 1, stop=slots))
        edges += [e("p:out", "sv:x"), e("sv:out", "att:v")]
    doc = doc_of(nodes, edges)
    g32, g64 = _grads(doc), _grads64(doc)
    np.testing.assert_allclose(g32["x"], g64["x"], rtol=1e-4, atol=1e-5)


def test_views_that_overlap_themselves_are_not_lent():
    x = np.zeros((B, 1, T, D), np.float32)
    wide = np.broadcast_to(x, (B, H, T, D))  # stride 0 along the heads
    assert lent.common_base(x[:, :, :3], wide) is None
    assert not lent.disjoint_elements(wide)
    assert lent.disjoint_elements(x[:, :, ::2])
    assert lent.disjoint_elements(np.zeros((4, 5)).T[1:, ::2])


def test_a_buffer_is_adopted_once_and_only_by_the_thread_that_lent_it():
    buf = lent.lend((4, 3), np.float32)
    seen = []
    worker = threading.Thread(target=lambda: seen.append(lent.adopt(buf)))
    worker.start()
    worker.join()
    assert seen == [False]
    assert lent.adopt(buf) is True
    assert lent.adopt(buf) is False
    assert lent.adopt(np.empty((4, 3), np.float32)) is False


def test_split_gpt_trains_to_the_same_bits(adoptions, monkeypatch):
    """A GPT unlike the presets (3 heads of 8, block 10), its batch split over two threads:
    the same losses and weights after 3 steps with lending on and off."""
    doc = builders.char_gpt(layers=2, heads=3, width=24, block=10, batch=4)

    def run() -> tuple[list[float], dict[str, np.ndarray]]:
        trainer = Trainer(doc, base_dir=presets.presets_dir(), steps=100, batch_split=2)
        losses = [trainer.train_step()["loss"] for _ in range(3)]
        assert trainer._split is not None
        return losses, {k: v.copy() for k, v in trainer.params.items()}

    losses, weights = run()
    assert adoptions[0] == 3 * 2 * 2  # steps × parts × layers
    _no_lending(monkeypatch)
    plain_losses, plain_weights = run()
    assert losses == plain_losses
    for name, w in plain_weights.items():
        assert np.array_equal(weights[name], w), name
