"""The two-core batch split: every op's batch rule holds on its examples, the analysis accepts
and refuses the right graphs, and a split step computes the unsplit step's numbers."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from engine.base.errors import NonFiniteError
from engine.core.compile import compile_document
from engine.core.op_cases import build_case
from engine.core.registry import ShapeError, TensorType, all_ops
from engine.core.run import Executor
from engine.graphs import presets
from engine.ops import batch_rules
from engine.train import batch_split
from engine.train.graph import analyse as training_graph
from engine.train.trainer import Trainer
from tests.helpers import doc_of, e, n
from tests.training_docs import classifier, nan_graph

NO_RULE = {"batch_norm": "normalises with statistics of the whole batch",
           "parameter": "has no inputs", "constant": "has no inputs"}
UNEXERCISED = {"broadcast_to"}  # see test_broadcast_to_keeps_the_batch_rows_apart
RULED = sorted((op for op in all_ops() if op.category in ("op", "loss") and op.batch_rule),
               key=lambda op: op.name)


def test_every_op_says_how_it_treats_the_batch():
    missing = sorted(op.name for op in all_ops() if op.category in ("op", "loss")
                     and op.batch_rule is None and op.name not in NO_RULE)
    assert missing == []
    assert all(op.batch_rule is None for op in all_ops() if op.name in NO_RULE)


def _run(eq, values, weights, g_out=None):
    """Forward (and, given output gradients, backward) of one equation in float64."""
    ex = Executor(None, "float64")
    training = eq.op.name != "dropout"  # its masks are random: compare the identity
    tape = ex.forward({}, weights, {}, training=training, seed=0, equations=[eq],
                      values=values)
    outs = [tape.values[o] for o in eq.outputs]
    if g_out is None:
        return outs, tape, None
    wgrads, vgrads = ex.backward(tape, dict(zip(eq.outputs, g_out)))
    return outs, tape, (wgrads, vgrads)


def _cases(op):
    """(example, batched input indices, in_axes, out_axes, verdict) for every way of treating
    the first or the last axis of some inputs as the batch that the op's inference accepts."""
    for example in op.examples:
        shapes = [tuple(c[0]) for c in example.inputs]
        for last in (False, True):
            def axis_of(shape, last=last):
                return len(shape) - 1 if last else 0

            eligible = [i for i, sh in enumerate(shapes) if sh and sh[axis_of(sh)] >= 2]
            for r in range(1, len(eligible) + 1):
                for subset in itertools.combinations(eligible, r):
                    if len({shapes[i][axis_of(shapes[i])] for i in subset}) != 1:
                        continue
                    if last and all(len(shapes[i]) == 1 for i in subset):
                        continue  # the same case as the first axis
                    types = [TensorType(tuple("B" if i in subset and d == axis_of(sh) else x
                                              for d, x in enumerate(sh)), c[1])
                             for i, (sh, c) in enumerate(zip(shapes, example.inputs))]
                    try:
                        params = build_case(op, example).params
                        out_types = op.infer(types, params)
                    except (ShapeError, ValueError):
                        continue
                    in_axes = [axis_of(shapes[i]) if i in subset else None
                               for i in range(len(types))]
                    out_axes = [batch_split._batch_axis(t, "B") for t in out_types]
                    verdict = op.batch_rule(params, in_axes, out_axes, types)
                    yield example, subset, in_axes, out_axes, verdict


def _cut(value: np.ndarray, axis: int, block: slice) -> np.ndarray:
    return value[(slice(None),) * axis + (block,)]


@pytest.mark.parametrize("op", RULED, ids=lambda op: op.name)
def test_the_batch_rule_holds_on_the_ops_examples(op):
    """Where an op's rule says row-wise, running it on two blocks of the batch axis gives the
    blocks of the whole (outputs and input gradients; weight gradients add up); shape-only
    outputs are the same for every block; a mean loss is the count-weighted mean of the
    blocks', and so is its gradient."""
    claims = 0
    for example, subset, in_axes, out_axes, verdict in _cases(op):
        if verdict is None:
            continue
        claims += 1
        case = build_case(op, example, np.float64, seed=3)
        eq, names = case.equation, case.equation.inputs
        size = case.values[names[subset[0]]].shape[in_axes[subset[0]]]
        blocks = [slice(0, size // 2), slice(size // 2, size)]
        part_values = [{k: (_cut(v, in_axes[names.index(k)], b) if names.index(k) in subset
                            else v) for k, v in case.values.items()} for b in blocks]
        full_outs, _, _ = _run(eq, case.values, case.weights)
        where = f"{op.name} {example.note or example.inputs} batched {subset} on {in_axes}"
        if verdict == batch_rules.SHAPE_ONLY:
            for vals in part_values:
                for got, full in zip(_run(eq, vals, case.weights)[0], full_outs):
                    np.testing.assert_array_equal(got, full, err_msg=where)
            continue
        if verdict == batch_rules.ROWWISE:
            rng = np.random.default_rng(0)
            g_full = [rng.standard_normal(np.shape(o)) for o in full_outs]
            g_parts = [[_cut(g, a, b) for g, a in zip(g_full, out_axes)] for b in blocks]
        else:
            assert verdict == batch_rules.MEAN, where
            g_full = [np.asarray(1.0)]
            ctxs = [_run(eq, vals, case.weights)[1].contexts[0] for vals in part_values]
            counts = [op.mean_count(c) if op.mean_count else np.size(vals[names[0]])
                      for c, vals in zip(ctxs, part_values)]
            shares = np.array(counts, float) / max(1, sum(counts))
            g_parts = [[np.asarray(w)] for w in shares]
        _, _, (w_full, v_full) = _run(eq, case.values, case.weights, g_full)
        parts = [_run(eq, vals, case.weights, gp) for vals, gp in zip(part_values, g_parts)]
        if verdict == batch_rules.ROWWISE:
            for k, (full, axis) in enumerate(zip(full_outs, out_axes)):
                joined = np.concatenate([p[0][k] for p in parts], axis=axis)
                np.testing.assert_allclose(joined, full, rtol=1e-12, atol=1e-12, err_msg=where)
        else:
            mean = sum(w * float(p[0][0]) for w, p in zip(shares, parts))
            assert mean == pytest.approx(float(full_outs[0]), rel=1e-12, abs=1e-12), where
        for i in subset:
            if names[i] in v_full and np.asarray(case.values[names[i]]).dtype.kind == "f":
                joined = np.concatenate([p[2][1][names[i]] for p in parts], axis=in_axes[i])
                np.testing.assert_allclose(joined, v_full[names[i]], rtol=1e-10, atol=1e-12,
                                           err_msg=where)
        for w, g in w_full.items():
            summed = sum(p[2][0][w] for p in parts)
            np.testing.assert_allclose(summed, g, rtol=1e-10, atol=1e-12, err_msg=where)
    if op.name in UNEXERCISED:
        assert claims == 0, f"{op.name}'s examples now exercise its rule: drop the exception"
    else:
        assert claims > 0, f"no example of {op.name} exercises its batch rule"


def test_broadcast_to_keeps_the_batch_rows_apart():
    """broadcast_to's batched case needs a symbolic target, which no concrete example names."""
    from engine.core.program import Equation

    op = next(o for o in all_ops() if o.name == "broadcast_to")
    params = {"shape": ["B", 3, 4]}
    t = TensorType(("B", 1, 4))
    (out_t,) = op.infer([t], params)
    axis = batch_split._batch_axis(out_t, "B")
    assert op.batch_rule(params, [0], [axis], [t]) == batch_rules.ROWWISE
    eq = Equation("b", "b", op, params, ["x"], ["out"], [t], [out_t])
    x = np.random.default_rng(0).standard_normal((5, 1, 4))
    full = _run(eq, {"x": x}, {})[0][0]
    parts = [_run(eq, {"x": x[s]}, {})[0][0] for s in (slice(0, 2), slice(2, 5))]
    np.testing.assert_array_equal(np.concatenate(parts), full)
    assert full.shape == (5, 3, 4)


def test_rules_refuse_what_mixes_examples():
    spec = {op.name: op for op in all_ops()}
    t = TensorType(("B", 4))
    assert spec["sum"].batch_rule({"axes": [0], "keepdims": False}, [0], [None], [t]) is None
    assert spec["softmax"].batch_rule({"axis": 0}, [0], [0], [t]) is None
    assert spec["matmul"].batch_rule({"transpose_a": True, "transpose_b": False},
                                     [0, 0], [None], [t, t]) is None  # xᵀ·x over examples
    assert spec["layer_norm"].batch_rule({"eps": 1e-5}, [1], [1],
                                         [TensorType((4, "B"))]) is None
    assert spec["positions"].batch_rule({"axis": 0, "limit": 0, "offset": 0}, [0], [None],
                                        [t]) is None


# ------------------------------------------------------------------ the analysis


def _decision(doc):
    program = compile_document(doc, "float32")
    graph = training_graph(doc, program, None)
    return batch_split.analyse(program, graph.loss_value)


def test_the_char_gpt_preset_splits_along_its_batch():
    d = _decision(presets.load("char_gpt")[0])
    assert d.ok and d.symbol == "B" and d.loss_eq == "loss"


def test_batch_norm_keeps_a_graph_unsplit_and_says_where():
    d = _decision(presets.load("shapes_cnn")[0])
    assert not d.ok and "batch_norm" in d.reason and "running statistics" in d.reason


def _regression(middle: list[dict], wires: list[dict], batch: int = 8) -> dict:
    nodes = [n("data", "regression_1d", n_samples=64, batch_size=batch),
             n("fc", "Linear", in_features=1, out_features=4), *middle,
             n("loss", "mse"), n("optimizer", "optimizer", algorithm="sgd", lr=0.1)]
    edges = [e("data:x", "fc:x"), *wires, e("data:y", "loss:target"),
             e("loss:loss", "optimizer:loss")]
    return doc_of(nodes, edges, training={"steps": 2, "eval_every": 0, "dtype": "float64"})


def test_a_reduction_over_the_batch_is_refused_with_its_node():
    doc = _regression([n("pool", "mean", axes=[0], keepdims=True),
                       n("head", "Linear", in_features=4, out_features=1)],
                      [e("fc:y", "pool:x"), e("pool:out", "head:x"), e("head:y", "loss:pred")])
    d = _decision(doc)
    assert not d.ok and "'mean' at pool" in d.reason


def test_only_a_mean_as_the_loss_itself_splits():
    doc = _regression([n("head", "Linear", in_features=4, out_features=1),
                       n("square", "mul")],
                      [e("fc:y", "head:x"), e("head:y", "loss:pred"),
                       e("loss:loss", "square:a"), e("loss:loss", "square:b")])
    program = compile_document(doc, "float32")
    assert batch_split.analyse(program, "loss:loss").ok  # the plain regression splits
    squared = batch_split.analyse(program, "square:out")  # (mean)²: not the parts' mean
    assert not squared.ok and "'mse' at loss averages over the batch before" in squared.reason
    per_example = batch_split.analyse(program, "head:y")
    assert not per_example.ok and "not a mean over the batch" in per_example.reason


def test_ways_follow_the_threads_rows_and_work():
    big = 10 * batch_split.MIN_PART_FLOPS
    assert batch_split.choose_ways(2, 12, big) == 2
    assert batch_split.choose_ways(1, 12, big) == 1
    assert batch_split.choose_ways(3, 2, big) == 2  # never more parts than rows
    assert batch_split.choose_ways(2, 12, batch_split.MIN_PART_FLOPS) == 1  # too little work
    assert batch_split.choose_ways(batch_split.MAX_WAYS + 1, 12, big) == 1  # BLAS keeps them


def test_many_small_ops_stay_unsplit_few_large_ones_split():
    """The parts share the GIL between ops: a step of many small equations (a width-32
    encoder-decoder: ~91 MFLOP over 232 equations) runs slower split than whole, a step of
    large ones (the char GPT: ~1.25 GFLOP over 105) or of fused recurrent kernels gains."""
    assert batch_split.choose_ways(2, 32, 91e6, equations=232) == 1
    assert batch_split.choose_ways(2, 12, 1254e6, equations=105) == 2
    assert batch_split.choose_ways(2, 16, 97e6, equations=26) == 2
    small = 2 * batch_split.MIN_PART_FLOPS
    per_part_op = batch_split.MIN_EQUATION_FLOPS
    assert batch_split.choose_ways(2, 12, small, equations=int(small / 2 / per_part_op)) == 2
    assert batch_split.choose_ways(2, 12, small, equations=int(small / per_part_op)) == 1


def test_a_loss_must_pair_each_example_with_its_own_target():
    rule = next(op for op in all_ops() if op.name == "mse").batch_rule
    column, row = TensorType(("B", 1)), TensorType((1, "B"))
    assert rule({}, [0, 0], [None], [column, column]) == batch_rules.MEAN
    assert rule({}, [0, 1], [None], [column, row]) is None  # broadcasts to B×B pairs


def test_rows_split_into_contiguous_blocks():
    feeds = {"d": (np.arange(13), np.arange(13) * 10)}
    parts = batch_split.split_rows(feeds, 2)
    assert [len(p["d"][0]) for p in parts] == [6, 7]
    np.testing.assert_array_equal(np.concatenate([p["d"][1] for p in parts]), feeds["d"][1])


# ------------------------------------------------------------------ split steps


def _pair(doc, **kw):
    return Trainer(doc, batch_split=1, **kw), Trainer(doc, batch_split=2, **kw)


def _same_training(a: Trainer, b: Trainer, steps: int, rtol: float) -> None:
    for _ in range(steps):
        ra, rb = a.train_step(), b.train_step()
        assert rb["loss"] == pytest.approx(ra["loss"], rel=rtol)
        assert rb["grad_norm"] == pytest.approx(ra["grad_norm"], rel=rtol)
    for name in a.params:
        np.testing.assert_allclose(b.params[name], a.params[name], rtol=rtol, atol=rtol,
                                   err_msg=name)


def test_a_split_char_gpt_step_matches_the_unsplit_step_in_float64():
    doc = presets.load("char_gpt")[0]
    a, b = _pair(doc, dtype="float64")
    _same_training(a, b, 3, 1e-10)
    assert a.split_note.startswith("unsplit") and b.split_note.startswith("split into 2")


def _ignoring_classifier(batch: int) -> dict:
    """13 rows split 6 + 7, and class-0 labels left out of the mean: the parts average over
    different counts, so only count-weighted sums give the whole batch's gradient."""
    nodes = [n("data", "classification_2d", kind="spirals", classes=3, n_samples=300,
               batch_size=batch),
             n("fc1", "Linear", in_features=2, out_features=16), n("act", "gelu"),
             n("fc2", "Linear", in_features=16, out_features=3),
             n("loss", "cross_entropy", ignore_index=0),
             n("optimizer", "optimizer", algorithm="adamw", lr=0.01)]
    edges = [e("data:points", "fc1:x"), e("fc1:y", "act:x"), e("act:out", "fc2:x"),
             e("fc2:y", "loss:logits"), e("data:labels", "loss:labels"),
             e("loss:loss", "optimizer:loss")]
    return doc_of(nodes, edges, training={"steps": 5, "eval_every": 0, "dtype": "float64"})


def test_uneven_parts_and_ignored_labels_weigh_in_by_their_counts():
    a, b = _pair(_ignoring_classifier(13))
    _same_training(a, b, 5, 1e-10)
    assert b.split_note == "split into 2 parts of ~6.5 rows"


def test_a_graph_with_batch_norm_trains_unsplit_and_says_why():
    trainer = Trainer(classifier(steps=3), batch_split=2)
    list(trainer.run())
    assert trainer.split_note.startswith("unsplit:") and "batch_norm" in trainer.split_note


def test_an_epochs_short_last_batch_runs_unsplit():
    """58 training rows in batches of 3: every 20th batch has one row, too few for two parts;
    that step runs unsplit and training goes on like the unsplit run."""
    doc = _regression([n("head", "Linear", in_features=4, out_features=1)],
                      [e("fc:y", "head:x"), e("head:y", "loss:pred")], batch=3)
    a, b = _pair(doc)
    assert b.batchers["data"].n % 3 == 1  # a one-row batch ends each epoch
    _same_training(a, b, 25, 1e-10)  # an empty part gave a NaN mean here
    assert b.split_note.startswith("split into 2 parts")


def test_a_data_source_off_the_loss_path_is_not_cut():
    nodes = [n("data", "classification_2d", kind="spirals", classes=3, n_samples=300,
               batch_size=16),
             n("other", "regression_1d", n_samples=64, batch_size=5),
             n("fc1", "Linear", in_features=2, out_features=3), n("loss", "cross_entropy"),
             n("optimizer", "optimizer", algorithm="sgd", lr=0.1),
             n("ofc", "Linear", in_features=1, out_features=1), n("mae", "mean_absolute_error")]
    edges = [e("data:points", "fc1:x"), e("fc1:y", "loss:logits"),
             e("data:labels", "loss:labels"), e("loss:loss", "optimizer:loss"),
             e("other:x", "ofc:x"), e("ofc:y", "mae:pred"), e("other:y", "mae:target")]
    doc = doc_of(nodes, edges, training={"steps": 5, "eval_every": 0, "dtype": "float64"})
    a, b = _pair(doc)
    _same_training(a, b, 3, 1e-10)
    assert b.split_note == "split into 2 parts of ~8.0 rows"


@pytest.mark.parametrize("failing", [0, 1])
def test_the_first_failing_part_s_error_is_raised_after_all_parts_stop(failing):
    trainer = Trainer(_ignoring_classifier(8), batch_split=2)
    trainer.train_step()
    finished = []

    def fails():
        raise ValueError(f"part {failing} failed")

    def works():
        finished.append(True)
        return 1

    def other_fails():
        raise KeyError("a later part failed too")

    tasks = [fails, other_fails] if failing == 0 else [works, fails]
    with pytest.raises(ValueError, match=f"part {failing} failed"):
        trainer._split._spread(tasks)
    assert finished == ([] if failing == 0 else [True])


@pytest.mark.parametrize("failing", [0, 1])
def test_a_part_failing_in_a_step_stops_the_other_at_the_barrier(failing, monkeypatch):
    """The parts meet at a barrier before summing their gradients: a part that fails breaks
    it, so the other part returns instead of waiting for ever, and the error is raised."""
    import threading

    trainer = Trainer(_ignoring_classifier(8), batch_split=2)
    trainer.train_step()
    split = trainer._split
    real = split._part

    def part(*args):
        if args[-1] == failing:
            raise ValueError(f"part {failing} failed")
        return real(*args)

    monkeypatch.setattr(split, "_part", part)
    raised: list = []

    def step() -> None:
        try:
            trainer.train_step()
        except ValueError as exc:
            raised.append(str(exc))

    runner = threading.Thread(target=step, daemon=True)
    runner.start()
    runner.join(timeout=60)
    assert not runner.is_alive() and raised == [f"part {failing} failed"]
    monkeypatch.setattr(split, "_part", real)
    assert np.isfinite(trainer.train_step()["loss"])  # the next step runs as before


def _side_batch_norm() -> dict:
    """A classifier whose hidden layer also feeds a BatchNorm1d that only a metric reads: the
    batch norm still runs each step (its running statistics move, as in PyTorch)."""
    nodes = [n("data", "classification_2d", kind="spirals", classes=3, n_samples=300,
               batch_size=16),
             n("fc1", "Linear", in_features=2, out_features=3), n("loss", "cross_entropy"),
             n("optimizer", "optimizer", algorithm="sgd", lr=0.1),
             n("side", "BatchNorm1d", num_features=3), n("acc", "accuracy")]
    edges = [e("data:points", "fc1:x"), e("fc1:y", "loss:logits"),
             e("data:labels", "loss:labels"), e("loss:loss", "optimizer:loss"),
             e("fc1:y", "side:x"), e("side:y", "acc:logits"), e("data:labels", "acc:labels")]
    return doc_of(nodes, edges, training={"steps": 5, "eval_every": 0, "dtype": "float64"})


def test_a_batch_norm_off_the_loss_path_trains_and_keeps_the_step_unsplit():
    trainer = Trainer(_side_batch_norm(), batch_split=2)
    before = {k: v.copy() for k, v in trainer.state.items()}
    trainer.train_step()  # its weight equations used to be skipped: KeyError 'side.weight:out'
    assert any(not np.array_equal(before[k], trainer.state[k]) for k in before)
    assert trainer.split_note.startswith("unsplit:") and "batch_norm" in trainer.split_note


def test_split_steps_are_deterministic():
    doc = _ignoring_classifier(16)
    first, second = Trainer(doc, batch_split=2), Trainer(doc, batch_split=2)
    for _ in range(4):
        assert first.train_step()["loss"] == second.train_step()["loss"]
    for name in first.params:
        np.testing.assert_array_equal(first.params[name], second.params[name])


def test_a_nan_in_a_split_step_still_names_the_op():
    trainer = Trainer(nan_graph(), batch_split=2)
    with pytest.raises(NonFiniteError) as info:
        list(trainer.run())
    assert trainer.split_note.startswith("split into 2")
    assert info.value.node == "bad_log" and "'log' produced NaN or Inf" in str(info.value)


@pytest.mark.parametrize("preset", ["char_gpt", "spiral_mlp"])
def test_the_parts_update_their_share_of_the_weights_as_one_optimizer_step(preset):
    # BatchSplit.step's update: each part steps its chunk of the weights after the second
    # barrier; the same numbers (bits) as the trainer's own optimizer step after the parts.
    doc = presets.load(preset)[0]
    folded, unfolded = Trainer(doc, batch_split=2), Trainer(doc, batch_split=2)
    unfolded._update_share = None  # the trainer then passes no update: it steps itself
    for _ in range(3):
        assert folded.train_step()["loss"] == unfolded.train_step()["loss"]
        assert folded._folded and not unfolded._folded
    assert folded.optimizer.step_count == unfolded.optimizer.step_count == 3
    for name in folded.params:
        np.testing.assert_array_equal(folded.params[name], unfolded.params[name])
    assert folded.optimizer.state.keys() == unfolded.optimizer.state.keys()
    for key, value in folded.optimizer.state.items():
        np.testing.assert_array_equal(value, unfolded.optimizer.state[key])


def test_the_parts_run_with_a_short_gil_switch_interval_and_restore_it():
    import sys

    trainer = Trainer(_ignoring_classifier(16), batch_split=2)
    trainer.train_step()
    seen: list[float] = []
    part = trainer._split._part

    def noting(*args):
        seen.append(sys.getswitchinterval())
        return part(*args)

    trainer._split._part = noting
    before = sys.getswitchinterval()
    trainer.train_step()
    assert seen and all(abs(s - batch_split.SWITCH_INTERVAL) < 1e-9 for s in seen)
    assert sys.getswitchinterval() == before
    with batch_split.switch_interval(1e-3):
        with batch_split.switch_interval(2e-3):  # nested: the outer one's setting holds
            assert abs(sys.getswitchinterval() - 1e-3) < 1e-9
        assert abs(sys.getswitchinterval() - 1e-3) < 1e-9
    assert sys.getswitchinterval() == before
