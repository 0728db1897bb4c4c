"""Review of session 11's changes, on models and inputs unlike the presets:

1. parameters without a context of their own (engine.core.run: the executor puts the weight in
   the values and hands the value's summed gradient to the weight): tied parameters at several
   depths and through reshape / transpose / index / slice / embedding, a parameter nothing
   reads, non-release backward, gradcheck, frozen nodes, hot edits, the NaN guard, checkpoints;
2. large 2-D GEMMs on Numba's threads inside ``two_cores.own_threads`` (engine.ops.linalg
   ._product, engine.kernels.gemm): every transpose, both dtypes, non-contiguous and odd
   layouts, degenerate M / N / K, gradients against central differences, broadcast matmuls;
3. large weights' optimizer updates on Numba's threads (engine.kernels.optim *_parallel):
   bit-identical to the serial update, and a whole CNN training run against the same trainer
   with those routes disabled;
4. strided convolutions' stride-phase im2col / col2im (engine.kernels.conv_gemm) against
   PyTorch and numpy references, on both parallel GEMM routes and the serial one;
5. the per-image route's 1 MB column-keeping threshold (engine.ops.conv_by_image.KEEP_BYTES).
"""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from engine.base.errors import NonFiniteError, WiregradError
from engine.core.compile import compile_document
from engine.core.registry import get
from engine.core.run import Executor, init_weights
from engine.data.examples import example_feeds
from engine.kernels import parallel
from engine.ops import two_cores
from tests.helpers import (
    OpCtx,
    assert_close,
    assert_conv_matches_torch,
    doc_of,
    e,
    n,
    record_native_runs,
    run_matmul,
)


@pytest.fixture(scope="module")
def torch():
    # skipped where PyTorch is not installed (README's test command runs without it; on CI,
    # which installs it, a skip fails the run)
    return pytest.importorskip("torch")


_record_native = record_native_runs  # engine.kernels.parallel.run, recording the kernels that ran


# =============================================================== 1. parameters, inline

def _tied_doc() -> dict:
    """W (6×4) read six ways at three depths (matmul, transpose → matmul, a deeper matmul,
    the same row indexed twice, a slice, a reshape fed to both inputs of a mul); E (5×4)
    tied between an embedding and the output projection (xᵀ-style, transpose_b); Z read by
    nothing."""
    nodes = [
        n("x", "input", shape=["B", 6]),
        n("ids", "input", shape=["B"], dtype="int", high=5),
        n("W", "parameter", shape=[6, 4], init="normal", std=0.5),
        n("E", "parameter", shape=[5, 4], init="normal", std=0.5),
        n("Z", "parameter", shape=[3, 3], init="normal", std=1.0),
        n("mm1", "matmul"), n("t1", "tanh"),
        n("Wt", "transpose", dim0=0, dim1=1), n("mm2", "matmul"),
        n("mm3", "matmul"),
        n("row_a", "index", axis=0, index=2), n("row_b", "index", axis=0, index=-4),
        n("scaled", "mul"), n("shifted", "add"), n("s1", "sum"),
        n("Wr", "reshape", shape=[3, 8]), n("sq", "mul"), n("s2", "sum"),
        n("Ws", "slice", axis=1, start=1, stop=4, step=2), n("ts", "tanh"), n("s3", "sum"),
        n("emb", "embedding"), n("proj", "matmul", transpose_b=True), n("tp", "tanh"),
        n("s4", "sum"),
        n("a12", "add"), n("a34", "add"), n("loss", "add"),
    ]
    edges = [
        e("x:out", "mm1:a"), e("W:out", "mm1:b"), e("mm1:out", "t1:x"),
        e("W:out", "Wt:x"), e("t1:out", "mm2:a"), e("Wt:out", "mm2:b"),
        e("mm2:out", "mm3:a"), e("W:out", "mm3:b"),
        e("W:out", "row_a:x"), e("W:out", "row_b:x"),  # index 2 and −4: the same row
        e("mm3:out", "scaled:a"), e("row_a:out", "scaled:b"),
        e("scaled:out", "shifted:a"), e("row_b:out", "shifted:b"), e("shifted:out", "s1:x"),
        e("W:out", "Wr:x"), e("Wr:out", "sq:a"), e("Wr:out", "sq:b"), e("sq:out", "s2:x"),
        e("W:out", "Ws:x"), e("Ws:out", "ts:x"), e("ts:out", "s3:x"),
        e("ids:out", "emb:ids"), e("E:out", "emb:weight"),
        e("emb:out", "proj:a"), e("E:out", "proj:b"), e("proj:out", "tp:x"),
        e("tp:out", "s4:x"),
        e("s1:out", "a12:a"), e("s2:out", "a12:b"), e("s3:out", "a34:a"), e("s4:out", "a34:b"),
        e("a12:out", "loss:a"), e("a34:out", "loss:b"),
    ]
    return doc_of(nodes, edges)


def _numeric_grad(ex, feeds, weights, loss, name, step=1e-6) -> np.ndarray:
    out = np.zeros_like(weights[name])
    for idx in np.ndindex(*weights[name].shape):
        vals = []
        for h in (step, -step):
            moved = {k: v.copy() for k, v in weights.items()}
            moved[name][idx] += h
            vals.append(float(ex.forward(feeds, moved, training=True, seed=0).values[loss]))
        out[idx] = (vals[0] - vals[1]) / (2 * step)
    return out


@pytest.mark.parametrize("release", [False, True])
def test_tied_parameters_through_views_and_embedding_match_central_differences(release):
    program = compile_document(_tied_doc(), "float64")
    weights = init_weights(program.parameters, 5, np.float64)
    feeds = example_feeds(program, seed=2, sizes={"B": 7})
    ex = Executor(program)
    loss = program.node_outputs["loss"][0]
    tape = ex.forward(feeds, weights, training=True, seed=0)
    assert not any(c.eq.op.name == "parameter" for c in tape.contexts)
    assert sorted(f for _, f in tape.weight_values) == ["E", "W", "Z"]
    before = {k: v.copy() for k, v in weights.items()}
    wgrads, vgrads = ex.backward(tape, {loss: np.ones(())}, release=release)
    for k in weights:  # the backward never writes into the weights it read as values
        np.testing.assert_array_equal(weights[k], before[k])
    assert set(wgrads) == {"W", "E"}  # Z: nothing reads it
    for name in ("W", "E"):
        want = _numeric_grad(ex, feeds, weights, loss, name)
        assert wgrads[name].shape == weights[name].shape
        np.testing.assert_allclose(wgrads[name], want, rtol=1e-6, atol=1e-7, err_msg=name)
    values = {full: value for value, full in tape.weight_values}
    if release:
        assert values["W"] not in vgrads and values["E"] not in vgrads
    else:  # inspection sees the value's gradient too, and it is the weight's
        np.testing.assert_array_equal(vgrads[values["W"]], wgrads["W"])
        np.testing.assert_array_equal(vgrads[values["E"]], wgrads["E"])
        # a second, releasing backward of a fresh tape gives the same weight gradients
        again, _ = ex.backward(ex.forward(feeds, weights, training=True, seed=0),
                               {loss: np.ones(())}, release=True)
        for name in ("W", "E"):
            np.testing.assert_array_equal(again[name], wgrads[name])


def test_repeated_backward_of_one_tape_does_not_double_the_parameter_gradients():
    """Non-release backward twice on the same tape: inspection does this; the second pass
    must not add onto the first pass's (shared) value gradients."""
    program = compile_document(_tied_doc(), "float64")
    weights = init_weights(program.parameters, 1, np.float64)
    feeds = example_feeds(program, seed=4, sizes={"B": 3})
    ex = Executor(program)
    loss = program.node_outputs["loss"][0]
    tape = ex.forward(feeds, weights, training=True, seed=0)
    first, _ = ex.backward(tape, {loss: np.ones(())})
    first = {k: v.copy() for k, v in first.items()}
    second, _ = ex.backward(tape, {loss: np.ones(())})
    for name in first:
        np.testing.assert_allclose(second[name], first[name], rtol=1e-12, atol=1e-12)
    doubled, _ = ex.backward(tape, {loss: np.full((), 2.0)})
    for name in first:
        np.testing.assert_allclose(doubled[name], 2 * first[name], rtol=1e-12, atol=1e-12)


def test_gradcheck_document_checks_inline_parameters():
    """Node by node, the scalar adds at the end included (``add`` of two 0-d arrays gives a
    numpy scalar, which gradcheck_document perturbs as a 0-d array)."""
    from engine.core.gradcheck import gradcheck_document

    doc = _tied_doc()
    program = compile_document(doc, "float64")
    feeds = example_feeds(program, seed=0, sizes={"B": 4})
    nodes = ["W", "E", "Z", "mm1", "t1", "Wt", "mm2", "mm3", "row_a", "row_b", "scaled",
             "shifted", "s1", "Wr", "sq", "Ws", "emb", "proj", "s4", "a12", "a34", "loss"]
    reports = {}
    for node in nodes:
        (report,) = gradcheck_document(doc, node=node, feeds=feeds)
        reports[node] = report
    bad = {k: (r.max_excess, r.worst) for k, r in reports.items() if not r.ok}
    assert not bad, bad
    for name in ("W", "E", "Z"):  # each parameter node is checked through its weight
        assert f"weight {name}" in reports[name].details, reports[name].details
        assert reports[name].checked > 0
    # a node reading W differentiates W's value as one of its inputs
    assert any(k.startswith("input ") for k in reports["mm3"].details)
    assert len([k for k in reports["sq"].details if k.startswith("input ")]) == 1
    from engine.core.gradcheck import check_op

    spec = get("parameter")
    for example in spec.examples:  # the registry's own check, on an executor without a program
        report = check_op(spec, example)
        assert report.ok and report.checked > 0 and report.details, report


def _param_net(dtype: str = "float64", algorithm: str = "sgd", frozen: tuple = (),
               **opt) -> dict:
    """A two-class classifier of raw parameters: P (2×8) read four times at three depths (once
    through a transpose), Q (8×2) also indexed as a bias, R (8×2), and an ``idle`` parameter
    nothing reads."""
    nodes = [
        n("data", "classification_2d", kind="moons", classes=2, n_samples=240, batch_size=20,
          noise=0.2),
        n("P", "parameter", shape=[2, 8], init="normal", std=0.7),
        n("Q", "parameter", shape=[8, 2], init="normal", std=0.7),
        n("R", "parameter", shape=[8, 2], init="normal", std=0.7),
        n("idle", "parameter", shape=[4, 4], init="normal", std=1.0),
        n("mm1", "matmul"), n("t1", "tanh"), n("mm2", "matmul"), n("mm3", "matmul"),
        n("t2", "tanh"), n("Pt", "transpose", dim0=0, dim1=1), n("mm4", "matmul"),
        n("wide", "matmul"), n("mix", "add"), n("mm5", "matmul"),
        n("qrow", "index", axis=0, index=1),
        n("logits", "add"),
        n("loss", "cross_entropy"),
        n("optimizer", "optimizer", algorithm=algorithm, lr=0.05, schedule="constant", **opt),
    ]
    edges = [
        e("data:points", "mm1:a"), e("P:out", "mm1:b"), e("mm1:out", "t1:x"),
        e("t1:out", "mm2:a"), e("R:out", "mm2:b"),          # (B, 2)
        e("mm2:out", "mm3:a"), e("P:out", "mm3:b"),         # P again, one level deeper
        e("mm3:out", "t2:x"),
        e("P:out", "Pt:x"), e("t1:out", "mm4:a"), e("Pt:out", "mm4:b"),  # (B, 2) via Pᵀ
        e("mm4:out", "wide:a"), e("P:out", "wide:b"),       # and P a fourth time: (B, 8)
        e("t2:out", "mix:a"), e("wide:out", "mix:b"),
        e("mix:out", "mm5:a"), e("Q:out", "mm5:b"),
        e("Q:out", "qrow:x"), e("mm5:out", "logits:a"), e("qrow:out", "logits:b"),
        e("logits:out", "loss:logits"), e("data:labels", "loss:labels"),
        e("loss:loss", "optimizer:loss"),
    ]
    for node in nodes:
        if node["id"] in frozen:
            node["trainable"] = False
    training = {"steps": 100, "eval_every": 0, "eval_batches": 0, "checkpoint_every": 0,
                "seed": 3, "dtype": dtype}
    return doc_of(nodes, edges, training=training)


def test_frozen_tied_parameter_stays_put_and_the_rest_steps_as_if_unfrozen():
    from engine.train.trainer import Trainer

    free = Trainer(_param_net())
    frozen = Trainer(_param_net(frozen=("P",)))
    assert frozen.frozen == {"P"}
    start = {k: v.copy() for k, v in frozen.params.items()}
    for k in start:
        np.testing.assert_array_equal(free.params[k], start[k])
    r_free, r_frozen = free.train_step(), frozen.train_step()
    assert r_free["loss"] == r_frozen["loss"]
    # plain SGD, no clipping: the first step's trainable updates do not depend on freezing P
    for name in ("Q", "R"):
        assert not np.array_equal(frozen.params[name], start[name]), name
        np.testing.assert_array_equal(frozen.params[name], free.params[name], err_msg=name)
    assert not np.array_equal(free.params["P"], start["P"])
    for _ in range(3):
        frozen.train_step()
    np.testing.assert_array_equal(frozen.params["P"], start["P"])
    np.testing.assert_array_equal(frozen.params["idle"], start["idle"])
    np.testing.assert_array_equal(free.params["idle"], start["idle"])
    assert not any(k.startswith(("P.", "idle.")) for k in frozen.optimizer.state)
    assert not any(k.startswith("idle.") for k in free.optimizer.state)


def test_frozen_parameters_in_batch_parts_match_the_unsplit_run():
    from engine.train.trainer import Trainer

    whole = Trainer(_param_net(frozen=("P", "R"), algorithm="adamw", weight_decay=0.1),
                    batch_split=1)
    parts = Trainer(_param_net(frozen=("P", "R"), algorithm="adamw", weight_decay=0.1),
                    batch_split=2)
    start = {k: v.copy() for k, v in whole.params.items()}
    for _ in range(4):
        a, b = whole.train_step(), parts.train_step()
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-12)
    assert parts._split is not None  # the parts route really ran
    for name in ("P", "R", "idle"):
        np.testing.assert_array_equal(parts.params[name], start[name], err_msg=name)
    np.testing.assert_allclose(parts.params["Q"], whole.params["Q"], rtol=1e-10, atol=1e-12)
    assert not np.array_equal(parts.params["Q"], start["Q"])


@pytest.mark.parametrize("split", [1, 2])
@pytest.mark.parametrize("target,node", [("Q", "Q"), ("P", "P")])
def test_nan_in_a_raw_parameter_is_blamed_on_that_parameter(target, node, split):
    from engine.train.trainer import Trainer

    trainer = Trainer(_param_net(dtype="float32", frozen=("P",) if target == "P" else ()),
                      batch_split=split)
    trainer.train_step()
    trainer.params[target].reshape(-1)[1] = np.nan
    with pytest.raises(NonFiniteError) as info:
        trainer.train_step()
    assert info.value.node == node, str(info.value)
    assert "'parameter' produced NaN or Inf" in str(info.value)
    assert f"(in {target})" in str(info.value)


def test_nan_in_a_parameter_nothing_reads_does_not_stop_training():
    from engine.train.trainer import Trainer

    trainer = Trainer(_param_net(dtype="float32"), anomaly=True)
    trainer.params["idle"][...] = np.nan
    record = trainer.train_step()
    assert np.isfinite(record["loss"]) and np.isfinite(record["grad_norm"])
    assert np.isnan(trainer.params["idle"]).all()  # untouched by the optimizer


@pytest.mark.parametrize("frozen", [False, True])
def test_an_infinite_gradient_of_a_raw_parameter_names_it_unless_it_is_frozen(frozen):
    """√S at S = 0: a finite forward whose gradient for S is infinite. The gradient reaches
    S only through the executor's hand-off at the end of the backward; the guard must name
    S, and a frozen S (no share of the norm) must not stop training."""
    from engine.train.trainer import Trainer

    nodes = [n("data", "classification_2d", kind="moons", classes=2, n_samples=120,
               batch_size=10),
             n("Q", "parameter", shape=[2, 2], init="normal", std=0.5),
             n("S", "parameter", shape=[2], init="zeros"),
             n("mm", "matmul"), n("root", "sqrt"), n("logits", "add"),
             n("loss", "cross_entropy"),
             n("optimizer", "optimizer", algorithm="sgd", lr=0.1)]
    edges = [e("data:points", "mm:a"), e("Q:out", "mm:b"), e("S:out", "root:x"),
             e("mm:out", "logits:a"), e("root:out", "logits:b"),
             e("logits:out", "loss:logits"), e("data:labels", "loss:labels"),
             e("loss:loss", "optimizer:loss")]
    if frozen:
        nodes[2]["trainable"] = False
    training = {"steps": 5, "eval_every": 0, "eval_batches": 0, "checkpoint_every": 0,
                "seed": 0, "dtype": "float64"}
    trainer = Trainer(doc_of(nodes, edges, training=training))
    q = trainer.params["Q"].copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        if frozen:
            record = trainer.train_step()
            assert np.isfinite(record["grad_norm"])
            assert not np.array_equal(trainer.params["Q"], q)
            np.testing.assert_array_equal(trainer.params["S"], 0.0)
        else:
            with pytest.raises(NonFiniteError) as info:
                trainer.train_step()
            assert info.value.node == "S", str(info.value)
            assert "the gradient of 'S'" in str(info.value)


@pytest.mark.parametrize("anomaly", [False, True])
@pytest.mark.parametrize("target,node", [("fc2.weight", "fc2"), ("fc1.weight", "fc1"),
                                         ("bn.weight", "bn"), ("fc2.bias", "fc2")])
def test_nan_in_a_layer_parameter_names_the_layer_not_the_batch_norm_state(target, node,
                                                                           anomaly):
    """fc1's NaN reaches batch norm's running statistics in the same forward: the guard must
    blame fc1 (the forward check comes first), not bn's state."""
    from engine.train.trainer import Trainer
    from tests.training_docs import classifier

    trainer = Trainer(classifier(steps=5, eval_every=0, dtype="float32"), anomaly=anomaly)
    trainer.train_step()
    trainer.params[target].reshape(-1)[0] = np.inf if target == "fc2.bias" else np.nan
    with pytest.raises(NonFiniteError) as info:
        trainer.train_step()
    assert info.value.node == node, str(info.value)
    assert f"(in {target})" in str(info.value)


def test_hot_edits_between_steps_equal_a_graph_built_with_the_new_values():
    """Dropout p and batch norm momentum edited after step 1: step 2 equals a trainer built
    with those values, loaded with step 1's weights and statistics at the same batch; and
    momentum 0 keeps the running statistics where they were."""
    import copy

    from engine.train.trainer import Trainer
    from tests.training_docs import classifier

    doc = classifier(steps=3, eval_every=0, algorithm="sgd", lr=0.1, weight_decay=0.0,
                     schedule="constant", warmup=0)
    edited, plain = Trainer(doc), Trainer(doc)
    records = edited.run()
    first = next(r for r in records if r["kind"] == "train")
    assert first["step"] == 1 and plain.train_step()["loss"] == first["loss"]
    params = {k: v.copy() for k, v in edited.params.items()}
    stats = {k: v.copy() for k, v in edited.state.items()}
    with pytest.raises(WiregradError, match="cannot change 'std'"):
        edited.set_node_params("fc1", {"std": 0.5})  # a layer's parameter init: not hot
    edited.set_node_params("drop", {"p": 0.0})
    edited.set_node_params("bn", {"momentum": 0.0})
    change = next(records)
    assert change["kind"] == "hparams" and change["nodes"] == {"drop": {"p": 0.0},
                                                               "bn": {"momentum": 0.0}}
    second = next(records)
    assert second["kind"] == "train" and second["step"] == 2
    for name, value in edited.state.items():
        np.testing.assert_array_equal(value, stats[name], err_msg=name)
    assert plain.train_step()["loss"] != second["loss"]  # the edit changed the step

    built = copy.deepcopy(doc)
    for node in built["nodes"]:
        if node["id"] == "drop":
            node["params"]["p"] = 0.0
        if node["id"] == "bn":
            node["params"]["momentum"] = 0.0
    twin = Trainer(built)
    twin.load_weights({**params, **stats})
    for batcher in twin.batchers.values():
        batcher.next()  # step 1's batch
    twin.step = 1
    assert twin.train_step()["loss"] == second["loss"]
    for name in params:
        np.testing.assert_array_equal(twin.params[name], edited.params[name], err_msg=name)
    for name in ("fc1.weight", "bn.weight", "fc2.weight", "fc2.bias"):  # (fc1's bias feeds
        assert not np.array_equal(edited.params[name], params[name]), name  # batch norm)


def test_checkpoint_round_trip_with_tied_frozen_and_idle_parameters(tmp_path):
    from engine.train.checkpoint import CheckpointManager, restore
    from engine.train.trainer import Trainer

    doc = _param_net(algorithm="adamw", frozen=("R",), weight_decay=0.05, clip_norm=0.5)
    straight = Trainer(doc)
    losses = [straight.train_step()["loss"] for _ in range(6)]
    first = Trainer(doc)
    for _ in range(3):
        first.train_step()
    CheckpointManager(tmp_path).save(first)
    resumed = Trainer(doc)
    restore(resumed, tmp_path / "last.safetensors")
    assert resumed.step == 3
    assert [resumed.train_step()["loss"] for _ in range(3)] == losses[3:]
    for mine, theirs in [(resumed.params, straight.params),
                         (resumed.optimizer.state, straight.optimizer.state)]:
        assert set(mine) == set(theirs)
        for name in mine:
            np.testing.assert_array_equal(mine[name], theirs[name], err_msg=name)


def test_inspection_sees_each_parameters_summed_gradient_on_every_edge_it_feeds():
    """The editor's debugger (non-release backward): every wire out of P carries P's whole
    gradient, which is also P's weight gradient and the trainer's own (release) gradient."""
    from engine.train.trainer import Trainer
    from engine.worker import _RecordingBatcher, inspect_trainer

    doc = _param_net()
    trainer = Trainer(doc)
    trainer.batchers = {k: _RecordingBatcher(b) for k, b in trainer.batchers.items()}
    trainer.train_step()
    out = inspect_trainer(trainer, doc, node="P")
    edges = [x for x in out["edges"] if x["src"] == "P"]
    assert len(edges) == 4
    batches = {k: b.last for k, b in trainer.batchers.items()}
    tape = trainer.executor.forward(trainer._feeds(batches), trainer.params,
                                    {k: v.copy() for k, v in trainer.state.items()},
                                    training=False)
    one = np.ones((), trainer.executor.dtype)
    grads, _ = trainer.executor.backward(tape, {trainer.graph.loss_value: one}, release=True)
    norm = float(np.linalg.norm(grads["P"]))
    assert norm > 0
    for x in edges:
        assert x["grad_norm"] == pytest.approx(norm, rel=1e-12), x
    assert out["detail"]["weights"]["P"]["grad_norm"] == pytest.approx(norm, rel=1e-12)
    assert out["detail"]["activations"]["out"]["shape"] == [2, 8]
    idle = [x for x in out["edges"] if x["src"] == "idle"]
    assert idle == []  # nothing reads it: no wire


# =============================================================== 2. GEMMs on Numba's threads

# (M, K, N): one row, two rows with a huge N, K = 1, N = 1, a tall skinny one
SHAPES = [(1, 1500, 1400), (2, 64, 40000), (3000, 1, 700), (1000, 2100, 1), (5, 900, 900)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ta,tb", list(itertools.product((False, True), repeat=2)))
@pytest.mark.parametrize("mkn", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_owned_gemm_degenerate_shapes_match_float64_numpy(monkeypatch, mkn, ta, tb, dtype):
    m, k, nn = mkn
    rng = np.random.default_rng(m + k + nn)
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
    b = rng.standard_normal((nn, k) if tb else (k, nn)).astype(dtype)
    g = rng.standard_normal((m, nn)).astype(dtype)
    params = {"transpose_a": ta, "transpose_b": tb}
    ran = _record_native(monkeypatch)
    with two_cores.own_threads(2):
        out, ga, gb = run_matmul(a, b, params, g)
    assert ran and set(ran) == {"rows_parallel"}  # at least dB = Aᵀg (K·N work) goes native
    a64, b64, g64 = (v.astype(np.float64) for v in (a, b, g))
    ae = a64.T if ta else a64
    be = b64.T if tb else b64
    want_ga = g64 @ be.T
    want_gb = ae.T @ g64
    assert_close(out, ae @ be, dtype, "forward", tol32=1e-4)
    assert_close(ga, want_ga.T if ta else want_ga, dtype, "dA", tol32=1e-4)
    assert_close(gb, want_gb.T if tb else want_gb, dtype, "dB", tol32=1e-4)
    for x in (out, ga, gb):
        assert x.flags.c_contiguous


def _layouts(x: np.ndarray) -> dict[str, np.ndarray]:
    """The same values of a 2-D array in other memory layouts."""
    big = np.zeros((x.shape[0] * 2, x.shape[1] * 3), x.dtype)
    big[::2, ::3] = x
    return {"C": x, "F": np.asfortranarray(x), "strided": big[::2, ::3],
            "transposed_view": np.ascontiguousarray(x.T).T,
            "readonly": np.lib.stride_tricks.as_strided(x.copy(), writeable=False),
            "negative_stride": np.ascontiguousarray(x[::-1])[::-1]}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_product_on_any_layout_is_c_contiguous_and_matches_numpy(monkeypatch, dtype):
    from engine.ops import linalg

    rng = np.random.default_rng(17)
    x = rng.standard_normal((37, 301)).astype(dtype)
    y = rng.standard_normal((301, 413)).astype(dtype)  # N > M: the transposed route for F y
    want = x.astype(np.float64) @ y.astype(np.float64)
    ran = _record_native(monkeypatch)
    for (nx, xv), (ny, yv) in itertools.product(_layouts(x).items(), _layouts(y).items()):
        np.testing.assert_array_equal(xv, x)
        np.testing.assert_array_equal(yv, y)
        with two_cores.own_threads(2):
            got = linalg._product(xv, yv)
        assert got.flags.c_contiguous, (nx, ny)
        assert_close(got, want, dtype, f"x {nx}, y {ny}", tol32=1e-4)
    assert len(ran) == 36  # every pair ran on Numba's threads


def test_product_with_mixed_dtypes_promotes_like_numpy(monkeypatch):
    from engine.ops import linalg

    rng = np.random.default_rng(3)
    x = rng.standard_normal((40, 500)).astype(np.float32)
    y = rng.standard_normal((500, 300))  # float64
    ran = _record_native(monkeypatch)
    for xv, yv in [(x, y), (x.astype(np.float64), y.astype(np.float32)),
                   (x, np.asfortranarray(y)), (x, y.T.copy().T)]:
        with two_cores.own_threads(2):
            got = linalg._product(xv, yv)
        want = xv @ yv
        assert got.dtype == want.dtype == np.float64
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    assert len(ran) == 4


@pytest.mark.parametrize("ta,tb", list(itertools.product((False, True), repeat=2)))
def test_owned_matmul_gradients_match_central_differences(monkeypatch, ta, tb):
    """float64; the loss Σ R·(A·B) is bilinear, so central differences are exact but for
    rounding: a few coordinates of each input, every evaluation on Numba's threads."""
    rng = np.random.default_rng(int(ta) * 2 + int(tb))
    m, k, nn = 24, 400, 450
    a = rng.standard_normal((k, m) if ta else (m, k))
    b = rng.standard_normal((nn, k) if tb else (k, nn))
    r = rng.standard_normal((m, nn))
    params = {"transpose_a": ta, "transpose_b": tb}
    op = get("matmul")
    ran = _record_native(monkeypatch)

    def loss(av, bv) -> float:
        with two_cores.own_threads(2):
            return float(np.sum(r * op.forward(OpCtx(), params, av, bv)))

    with two_cores.own_threads(2):
        _, ga, gb = run_matmul(a, b, params, r)
    assert len(ran) == 3
    h = 1e-3
    for which, base, grad in (("a", a, ga), ("b", b, gb)):
        for flat in rng.choice(base.size, 6, replace=False):
            idx = np.unravel_index(flat, base.shape)
            up, down = base.copy(), base.copy()
            up[idx] += h
            down[idx] -= h
            if which == "a":
                num = (loss(up, b) - loss(down, b)) / (2 * h)
            else:
                num = (loss(a, up) - loss(a, down)) / (2 * h)
            assert grad[idx] == pytest.approx(num, rel=1e-7, abs=1e-7), (which, idx)


@pytest.mark.parametrize("case", [
    ((2, 1, 40, 300), (3, 300, 250), False, False),   # broadcast leading axes
    ((3, 300, 40), (3, 250, 300), True, True),        # batched, both transposed
    ((4, 300, 50), (300, 260), True, False),          # batched aᵀ against a 2-D b
    ((4, 50, 300), (260, 300), False, True),          # folded a, transposed 2-D b
    ((60, 300), (2, 300, 250), False, False),         # 2-D a against a batched b
])
def test_batched_and_broadcast_matmuls_inside_owned_threads(torch, case):
    a_shape, b_shape, ta, tb = case
    rng = np.random.default_rng(len(a_shape) * 7 + len(b_shape))
    a = rng.standard_normal(a_shape).astype(np.float32)
    b = rng.standard_normal(b_shape).astype(np.float32)
    params = {"transpose_a": ta, "transpose_b": tb}
    at = torch.tensor(a.astype(np.float64), requires_grad=True)
    bt = torch.tensor(b.astype(np.float64), requires_grad=True)
    yt = (at.transpose(-1, -2) if ta else at) @ (bt.transpose(-1, -2) if tb else bt)
    g = rng.standard_normal(tuple(yt.shape)).astype(np.float32)
    yt.backward(torch.tensor(g.astype(np.float64)))
    with two_cores.own_threads(2):
        out, ga, gb = run_matmul(a, b, params, g)
    assert_close(out, yt.detach().numpy(), np.float32, "forward", tol32=1e-4)
    assert_close(ga, at.grad.numpy(), np.float32, "dA", tol32=1e-4)
    assert_close(gb, bt.grad.numpy(), np.float32, "dB", tol32=1e-4)


# =============================================================== 3. optimizer updates

OPT_CASES = [
    ("adam", {"weight_decay": 0.05}),
    ("adamw", {"weight_decay": 0.1, "betas": (0.8, 0.95), "eps": 1e-6}),
    ("sgd", {}),
    ("sgd", {"momentum": 0.9, "dampening": 0.3}),
    ("sgd", {"momentum": 0.8, "nesterov": True, "weight_decay": 0.01}),
]


def _opt_run(kind, extra, start, grads_per_step, scales, owned):
    from engine.train.optim import Optimizer

    opt = Optimizer(kind=kind, lr=0.01, decay_names=frozenset({"w", "odd"}), **extra)
    params = {k: v.copy() for k, v in start.items()}
    for grads, scale in zip(grads_per_step, scales):
        grads = {k: g.copy() if g.flags.c_contiguous else _noncontig(g) for k, g in grads.items()}
        kept = {k: g.copy() for k, g in grads.items()}
        if owned:
            with two_cores.own_threads(2):
                opt.step(params, grads, grad_scale=scale)
        else:
            opt.step(params, grads, grad_scale=scale)
        if kind != "sgd" and kind != "rmsprop":  # Adam reads the gradients, never writes
            for k in grads:
                np.testing.assert_array_equal(grads[k], kept[k])
    return params, opt.state


def _noncontig(g: np.ndarray) -> np.ndarray:
    """A copy of *g* (never a view of it) in a non-contiguous layout."""
    if g.ndim >= 2:
        out = np.array(np.swapaxes(g, 0, 1), order="C").swapaxes(0, 1)
    else:
        big = np.zeros(g.size * 2, g.dtype)
        big[::2] = g
        out = big[::2]
    assert not out.flags.c_contiguous
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind,extra", OPT_CASES, ids=[f"{k}-{i}" for i, (k, _) in
                                                        enumerate(OPT_CASES)])
def test_parallel_updates_are_bit_identical_to_serial(monkeypatch, kind, extra, dtype):
    from engine.train.optim import PARALLEL_MIN_ELEMENTS

    rng = np.random.default_rng(5)
    shapes = {"w": (512, 256),                      # exactly 2**17: splits
              "odd": (7, 3, 6247),                  # 131 187, uneven blocks
              "flat": (3 * PARALLEL_MIN_ELEMENTS + 5,),
              "small": (PARALLEL_MIN_ELEMENTS - 1,)}  # one short: stays serial
    assert np.prod(shapes["w"]) == PARALLEL_MIN_ELEMENTS
    start = {k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()}
    steps = []
    for i in range(3):
        grads = {k: (rng.standard_normal(s) * 3).astype(dtype) for k, s in shapes.items()}
        if i == 1:  # non-contiguous gradients
            grads = {k: _noncontig(g) for k, g in grads.items()}
        steps.append(grads)
    scales = [1.0, 0.37, 1.0]  # clipping on the second step
    serial = _opt_run(kind, extra, start, steps, scales, owned=False)
    ran = _record_native(monkeypatch)
    split = _opt_run(kind, extra, start, steps, scales, owned=True)
    name = "adam_update_parallel" if kind.startswith("adam") else "sgd_update_parallel"
    assert ran == [name] * 9  # w, odd and flat, each step; small stays serial
    for mine, theirs in zip(split, serial):
        assert set(mine) == set(theirs)
        for k in mine:
            np.testing.assert_array_equal(mine[k], theirs[k], err_msg=k)
    for k in start:
        assert not np.array_equal(split[0][k], start[k]), k


def test_float64_params_with_float32_grads_and_rmsprop_stay_correct(monkeypatch):
    rng = np.random.default_rng(9)
    start = {"w": rng.standard_normal((600, 300))}
    steps = [{"w": rng.standard_normal((600, 300)).astype(np.float32)} for _ in range(2)]
    ran = _record_native(monkeypatch)
    for kind, extra in [("adamw", {"weight_decay": 0.2}), ("rmsprop", {"momentum": 0.5}),
                        ("rmsprop", {})]:
        ran.clear()
        owned = _opt_run(kind, extra, start, steps, [1.0, 0.5], owned=True)
        plain = _opt_run(kind, extra, start, steps, [1.0, 0.5], owned=False)
        assert ran == (["adam_update_parallel"] * 2 if kind == "adamw" else []), kind
        assert owned[0]["w"].dtype == np.float64
        np.testing.assert_array_equal(owned[0]["w"], plain[0]["w"])
        for key in owned[1]:
            np.testing.assert_array_equal(owned[1][key], plain[1][key])


def test_the_native_threads_opt_out_also_keeps_gemms_and_updates_serial(monkeypatch):
    """docs/training.md: ``WIREGRAD_NATIVE_THREADS=0`` turns Numba's parallel kernels off,
    also where the OpenMP layer cannot load or another threading layer is named; every such
    case reaches the ops as ``parallel.available()`` being false (the convolutions check it
    in ``two_cores.native_threads``). Inside own_threads the new GEMM and update routes must
    then keep to their serial kernels too."""
    from engine.ops import linalg
    from engine.train.optim import Optimizer

    monkeypatch.setattr(parallel, "available", lambda: False)
    ran = _record_native(monkeypatch)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 1000)).astype(np.float32)
    y = rng.standard_normal((1000, 500)).astype(np.float32)
    with two_cores.own_threads(2):
        assert two_cores.native_threads(64, 1e9) == 1  # the convolutions: off
        got = linalg._product(x, y)
        for kind in ("adamw", "sgd"):
            opt = Optimizer(kind=kind, lr=0.01)
            opt.step({"w": np.zeros(1 << 18, np.float32)}, {"w": np.ones(1 << 18, np.float32)})
    np.testing.assert_allclose(got, x @ y, rtol=1e-4, atol=1e-3)
    assert ran == []


def test_parallel_update_matches_the_numpy_twin_of_torch_adamw():
    """Not only equal to the serial kernel: both equal the reference arithmetic (within
    fastmath's rounding) on the first and a clipped step."""
    from engine.kernels.optim import adam_update_ref
    from engine.train.optim import Optimizer

    rng = np.random.default_rng(21)
    p0 = rng.standard_normal(400_003).astype(np.float32)
    g1, g2 = (rng.standard_normal(400_003).astype(np.float32) for _ in range(2))
    opt = Optimizer(kind="adamw", lr=0.003, weight_decay=0.1, decay_names=frozenset({"w"}))
    params = {"w": p0.copy()}
    with two_cores.own_threads(2):
        opt.step(params, {"w": g1.copy()})
        opt.step(params, {"w": g2.copy()}, grad_scale=0.25)
    p, m, v = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
    adam_update_ref(p, g1, m, v, 0.003, 0.9, 0.999, 1e-8, 0.1, True, 1)
    adam_update_ref(p, g2, m, v, 0.003, 0.9, 0.999, 1e-8, 0.1, True, 2, grad_scale=0.25)
    np.testing.assert_allclose(params["w"], p, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(opt.state["w.exp_avg"], m, rtol=1e-5, atol=1e-6)


def _fc_cnn_doc(tmp_path):
    """2×23×21 images → 3×3 conv (6) → 5×5 stride-2 conv (12, k = 150: per image, stride
    phases, input gradient needed) → FC 1584 → 160 → 900 → 9; batch 24, AdamW + clipping."""
    from engine.bench import cnn_cases

    case = cnn_cases.CnnCase(
        "review_fc_cnn", (2, 23, 21), 9, 24,
        (("conv", 6, 3, 1, 1), ("relu",), ("conv", 12, 5, 2, 2), ("silu",), ("flatten",),
         ("fc", 160), ("relu",), ("fc", 900), ("leaky",), ("fc", 9)),
        optimizer={"algorithm": "adamw", "lr": 0.003, "weight_decay": 0.02, "clip_norm": 1.0})
    return cnn_cases.document(case, cnn_cases.write_data(case, tmp_path, n=24 * 8))


def test_cnn_training_with_parallel_fc_and_updates_matches_it_without(tmp_path, monkeypatch):
    from engine.ops import linalg
    from engine.train import optim
    from engine.train.trainer import Trainer

    doc = _fc_cnn_doc(tmp_path)
    ran = _record_native(monkeypatch)

    def run() -> tuple[list[float], dict, str]:
        trainer = Trainer(doc, base_dir=tmp_path, steps=5)
        losses = [trainer.train_step()["loss"] for _ in range(5)]
        return losses, trainer.params, trainer.split_note

    fast, fast_params, note = run()
    assert "BLAS on one" in note, note  # the step's ops owned both cores
    assert ran.count("rows_parallel") >= 5 * 4  # FC forward and backward GEMMs, every step
    assert ran.count("adam_update_parallel") == 5 * 2  # the 1584×160 and 160×900 weights
    assert {"forward_parallel", "backward_parallel"} <= set(ran)  # the convolutions
    ran.clear()
    monkeypatch.setattr(linalg, "SPLIT_MIN_FLOPS", float("inf"))
    monkeypatch.setattr(optim, "PARALLEL_MIN_ELEMENTS", float("inf"))
    slow, slow_params, note = run()
    assert "rows_parallel" not in ran and "adam_update_parallel" not in ran
    assert "BLAS on one" in note
    np.testing.assert_allclose(fast, slow, rtol=2e-5)
    assert fast[-1] != fast[0]
    for name in fast_params:
        np.testing.assert_allclose(fast_params[name], slow_params[name], rtol=1e-3, atol=2e-5,
                                   err_msg=name)


# =============================================================== 4. strided convolutions

def _conv_check(torch, x, w, b, s, p, d, needs, owned=True):
    """conv2d through the registry (inside own_threads when *owned*) against PyTorch."""
    spec, ctx = get("conv2d"), OpCtx(needs)
    params = {"stride": s, "padding": p, "dilation": d, "groups": 1}
    args = (x, w) if b is None else (x, w, b)
    if owned:
        with two_cores.own_threads(2):
            y = spec.forward(ctx, params, *args)
            g = np.random.default_rng(99).standard_normal(y.shape).astype(x.dtype)
            grads = spec.backward(ctx, params, g)
    else:
        y = spec.forward(ctx, params, *args)
        g = np.random.default_rng(99).standard_normal(y.shape).astype(x.dtype)
        grads = spec.backward(ctx, params, g)
    assert_conv_matches_torch(torch, x, w, b, g, s, p, d, needs, y, grads)
    return ctx, grads


def _strided_cases() -> list[tuple]:
    """(n, cin, h, w, cout, kh, kw, s, p, bias, need_x): strides 2–5 × kernel heights 1–7,
    kernel widths drawn (mostly non-square), paddings 0–3, odd image sizes, odd batches; per
    (stride, height) a small image (mostly the whole-batch route) and a larger one with at
    most 160 taps (the per-image route)."""
    rng = random.Random(2024)
    cases = []
    for s, kh in itertools.product((2, 3, 4, 5), range(1, 8)):
        for large in (False, True):
            kw = rng.randrange(1, 8)
            p = rng.randrange(0, 4)
            grow = 4 * s + 4 if large else 0
            h = max(kh - 2 * p, 1) + rng.randrange(0, 12) + grow
            w = max(kw - 2 * p, 1) + rng.randrange(0, 12) + grow
            cin = rng.randrange(1, max(2, min(6, 160 // (kh * kw) + 1))) if large \
                else rng.randrange(1, 6)
            cases.append((rng.choice([2, 3, 5]), cin, h | 1, w | 1, rng.randrange(1, 5),
                          kh, kw, s, p, rng.random() < 0.7, rng.random() < 0.6))
    return cases


STRIDED = _strided_cases()


def _case_id(c) -> str:
    nb, cin, h, w, cout, kh, kw, s, p, bias, need_x = c
    return (f"n{nb}c{cin}-{h}x{w}-o{cout}-k{kh}x{kw}-s{s}p{p}"
            f"{'-b' if bias else ''}{'' if need_x else '-nox'}")


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", STRIDED, ids=_case_id)
def test_strided_conv_on_numba_threads_matches_torch(torch, monkeypatch, case, dtype):
    from engine.ops import conv, conv_direct

    nb, cin, h, w, cout, kh, kw, s, p, bias, need_x = case
    monkeypatch.setattr(two_cores, "NATIVE_MIN_FLOPS", 0.0)  # tiny convs take the route too
    ran = _record_native(monkeypatch)
    rng = np.random.default_rng(hash(case) & 0xFFFF)
    x = rng.standard_normal((nb, cin, h, w)).astype(dtype)
    wt = rng.standard_normal((cout, cin, kh, kw)).astype(dtype)
    b = rng.standard_normal(cout).astype(dtype) if bias else None
    _conv_check(torch, x, wt, b, s, p, 1, (need_x, True, True))
    ho, wo = (h + 2 * p - kh) // s + 1, (w + 2 * p - kw) // s + 1
    if conv.by_image(1, cin * kh * kw, ho, wo):
        expected = ["forward_parallel", "backward_parallel"]
    else:
        expected = ["block_forward_parallel", "block_backward_parallel"]
    one, w_shape = {"groups": 1}, (cout, cin, kh, kw)  # (the direct kernels' names are the
    if conv_direct.takes_forward(one, w_shape, dtype, ho * wo):  # per-image route's)
        expected[0] = "forward_parallel"
        if conv_direct.takes_backward(one, w_shape, dtype, ho * wo):
            expected[1] = "backward_parallel"
    assert ran == expected


@pytest.mark.torch
@pytest.mark.parametrize("case", [
    (1, 3, 15, 13, 4, 7, 3, 2, 3, 1),     # batch 1: the numpy route
    (1, 1, 9, 11, 2, 2, 5, 5, 2, 1),
    (1, 5, 19, 17, 3, 4, 4, 3, 0, 1),
    (3, 2, 17, 15, 3, 3, 2, 2, 1, 2),     # stride 2 with dilation 2 (not the phases)
    (2, 4, 21, 19, 2, 3, 3, 3, 2, 3),     # stride 3, dilation 3
    (4, 3, 25, 23, 5, 7, 7, 4, 3, 1),     # 7×7 stride 4 pad 3, batch 4
])
def test_batch_one_and_dilated_strided_convs_match_torch(torch, monkeypatch, case):
    nb, cin, h, w, cout, kh, kw, s, p, d = case
    monkeypatch.setattr(two_cores, "NATIVE_MIN_FLOPS", 0.0)
    ran = _record_native(monkeypatch)
    rng = np.random.default_rng(sum(case))
    for dtype in (np.float32, np.float64):
        x = rng.standard_normal((nb, cin, h, w)).astype(dtype)
        wt = rng.standard_normal((cout, cin, kh, kw)).astype(dtype)
        b = rng.standard_normal(cout).astype(dtype)
        _conv_check(torch, x, wt, b, s, p, d, (True, True, True))
        _conv_check(torch, x, wt, b, s, p, d, (True, True, True), owned=False)
    assert bool(ran) == (nb > 1)  # batch 1 never runs a parallel kernel


def _im2col_ref(xp, b, kh, kw, s, d, ho, wo) -> np.ndarray:
    c = xp.shape[1]
    out = np.empty((c * kh * kw, ho * wo), xp.dtype)
    for ch, i, j in itertools.product(range(c), range(kh), range(kw)):
        patch = xp[b, ch, i * d:i * d + (ho - 1) * s + 1:s, j * d:j * d + (wo - 1) * s + 1:s]
        out[(ch * kh + i) * kw + j] = patch.reshape(-1)
    return out


@pytest.mark.parametrize("s,d", [(1, 1), (2, 1), (3, 1), (4, 1), (5, 1), (6, 1), (2, 2),
                                 (3, 2)])
def test_columns_and_scatter_kernels_against_numpy(s, d):
    """The Numba im2col / col2im directly, with an offset into wider columns (the
    whole-batch route's blocks): columns outside the window stay untouched, col2im adds onto
    what the gradient held, image sizes past the last window and kernels narrower than the
    stride included."""
    from engine.kernels import conv_gemm

    rng = np.random.default_rng(s * 10 + d)
    for kh, kw, hp, wp in [(1, 1, 9, 7), (2, 5, 11, 13), (7, 3, 17, 10), (3, 7, 8, 19),
                           (s, s, 3 * s + 2, 2 * s + 1), (1, 4, 5, 23)]:
        span_h, span_w = d * (kh - 1) + 1, d * (kw - 1) + 1
        if span_h > hp or span_w > wp:
            continue
        ho, wo = (hp - span_h) // s + 1, (wp - span_w) // s + 1
        for dtype in (np.float32, np.float64):
            xp = rng.standard_normal((3, 2, hp, wp)).astype(dtype)
            want = _im2col_ref(xp, 1, kh, kw, s, d, ho, wo)
            off = 5
            cols = np.full((2 * kh * kw, off + ho * wo + 4), np.inf, dtype)
            conv_gemm._columns(xp, 1, kh, kw, s, d, ho, wo, cols, off)
            np.testing.assert_array_equal(cols[:, off:off + ho * wo], want)
            assert np.isinf(cols[:, :off]).all() and np.isinf(cols[:, off + ho * wo:]).all()
            gcols = np.zeros_like(cols)
            gcols[:, off:off + ho * wo] = rng.standard_normal((2 * kh * kw, ho * wo))
            gcols[:, :off] = np.nan  # never read
            gcols[:, off + ho * wo:] = np.nan
            gxp = rng.standard_normal((3, 2, hp, wp)).astype(dtype)
            want_g = gxp.astype(np.float64)
            for ch, i, j in itertools.product(range(2), range(kh), range(kw)):
                line = gcols[(ch * kh + i) * kw + j, off:off + ho * wo].reshape(ho, wo)
                want_g[1, ch, i * d:i * d + (ho - 1) * s + 1:s,
                       j * d:j * d + (wo - 1) * s + 1:s] += line
            before = gxp.copy()
            conv_gemm._scatter(gcols, 1, kh, kw, s, d, ho, wo, gxp, off)
            tol = 1e-5 if dtype == np.float32 else 1e-13
            np.testing.assert_allclose(gxp[1], want_g[1], rtol=tol, atol=tol)
            np.testing.assert_array_equal(gxp[[0, 2]], before[[0, 2]])  # other images


@pytest.mark.torch
def test_resnet_like_stem_in_float32_on_numba_threads(torch, monkeypatch):
    """A bigger strided stem (7×7 stride 2 pad 3 on 3×49×47, odd batch) with its natural
    thresholds: the per-image route on Numba's threads, columns over 1 MB rebuilt."""
    ran = _record_native(monkeypatch)
    rng = np.random.default_rng(48)
    x = rng.standard_normal((5, 3, 49, 47)).astype(np.float32)
    w = (rng.standard_normal((16, 3, 7, 7)) * 0.1).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    ctx, _ = _conv_check(torch, x, w, b, 2, 3, 1, (True, True, True))
    assert ran == ["forward_parallel", "backward_parallel"]
    assert ctx.saved[1].ndim == 4  # 5·147·25·24·4 B > 1 MB: the padded image, not columns


@pytest.mark.torch
@pytest.mark.parametrize("late", ["forward_parallel", "backward_parallel",
                                  "block_forward_parallel", "block_backward_parallel"])
@pytest.mark.parametrize("big", [False, True])
def test_one_pass_parallel_the_other_still_compiling(torch, monkeypatch, late, big):
    """On a fresh install each parallel kernel switches on when its own compile is done, so
    a forward on Numba's threads may meet a numpy backward and the other way round: what one
    saved (kept columns or the padded image) must serve the other."""
    monkeypatch.setattr(two_cores, "NATIVE_MIN_FLOPS", 0.0)
    real = parallel.run
    ran: list[str] = []

    def run(kernel, *args, **kwargs):
        name = kernel.py_func.__name__
        if name == late:
            return False  # "still compiling"
        done = real(kernel, *args, **kwargs)
        if done:
            ran.append(name)
        return done

    monkeypatch.setattr(parallel, "run", run)
    rng = np.random.default_rng(len(late) + big)
    whole = late.startswith("block")
    cin, k = (7, 5) if whole else (2, 3)  # 175 taps: whole batch; 18 taps: per image
    h = 41 if big else 15
    x = rng.standard_normal((3, cin, h, h - 2))
    w = rng.standard_normal((4, cin, k, k + 1))
    b = rng.standard_normal(4)
    for needs in ((True, True, True), (False, True, True)):
        _conv_check(torch, x, w, b, 3, 2, 1, needs)
    other = {"forward_parallel": "backward_parallel", "backward_parallel": "forward_parallel",
             "block_forward_parallel": "block_backward_parallel",
             "block_backward_parallel": "block_forward_parallel"}[late]
    if late == "block_forward_parallel":
        assert ran == []  # the whole-batch backward follows the forward's numpy route
    else:
        assert ran == [other, other]


# =============================================================== 5. KEEP_BYTES

@pytest.mark.torch
@pytest.mark.parametrize("wide,kept", [(41, True), (43, False)])
def test_columns_kept_or_rebuilt_across_the_one_megabyte_line(torch, monkeypatch, wide, kept):
    """4 × 3·5·5 × 21·wo float64 columns (16 output channels: over the parallel route's
    2 MFLOP): wo 20 → 1 008 000 B (kept), 21 → 1 058 400 B (rebuilt); both against PyTorch,
    and bit-identical to the other choice forced."""
    from engine.ops import conv_by_image

    assert conv_by_image.KEEP_BYTES == 1024 * 1024
    rng = np.random.default_rng(wide)
    x = rng.standard_normal((4, 3, 43, wide))
    w = rng.standard_normal((16, 3, 5, 5))
    b = rng.standard_normal(16)
    ran = _record_native(monkeypatch)
    results = {}
    for label, limit in [("natural", None), ("keep", 10**12), ("rebuild", 0)]:
        if limit is not None:
            monkeypatch.setattr(conv_by_image, "KEEP_BYTES", limit)
        for needs in ((True, True, True), (False, True, True)):
            ctx, grads = _conv_check(torch, x, w, b, 2, 1, 1, needs)
            saved_cols = ctx.saved[1].ndim == 3
            expect = kept if label == "natural" else label == "keep"
            assert saved_cols == expect, (label, ctx.saved[1].shape)
            results[label, needs[0]] = grads
    assert ran == ["forward_parallel", "backward_parallel"] * 6
    for need_x in (True, False):
        ref = results["natural", need_x]
        for label in ("keep", "rebuild"):
            for got, want in zip(results[label, need_x], ref):
                if want is None:
                    assert got is None
                else:
                    np.testing.assert_array_equal(got, want)
