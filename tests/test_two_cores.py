"""Ops that split their own batch over two threads (engine.ops.two_cores): the halves give the
unsplit numbers, BLAS gets its thread count back, errors surface, and nothing splits when BLAS
is capped at one thread (the trainer's batch split, the editor's one-thread blocks)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from engine.core import registry
from engine.ops import two_cores
from tests.split_help import force_split, set_split_limits, shapes_cnn_trainer


class _Ctx:
    needs_input_grad: tuple = ()

    def save(self, *arrays) -> None:
        self.saved = arrays


def _conv(x, w, b, params):
    spec, ctx = registry.get("conv2d"), _Ctx()
    y = spec.forward(ctx, params, x, w, b)
    g = np.random.default_rng(5).standard_normal(y.shape)
    return ctx.saved[0], (y, *spec.backward(ctx, params, g))


@pytest.mark.parametrize("shape,wshape,params,route", [
    ((5, 8, 6, 7), (4, 8, 3, 3), {"stride": 1, "padding": 1}, "winograd"),
    ((4, 2, 9, 8), (3, 2, 3, 3), {"stride": 1, "padding": 1}, True),  # per image (C < 8)
    ((3, 1, 11, 11), (4, 1, 5, 5), {"stride": 2, "padding": 2}, True),
    ((7, 3, 6, 5), (2, 3, 2, 3), {"stride": 1, "padding": 1, "dilation": 2}, True),
    # columns too large to keep on the Python-halves route (rebuilt from the padded image)
    ((5, 8, 40, 40), (3, 8, 3, 3), {"stride": 2, "padding": 1}, True),
    # wide input, tiny output: the whole-batch route (blocks of images side by side)
    ((7, 20, 6, 6), (5, 20, 3, 3), {"stride": 2, "padding": 1}, False),
    ((3, 2, 5, 4), (4, 2, 5, 3), {"stride": 1, "padding": 0, "dilation": 1}, False),
])
@pytest.mark.parametrize("native", [True, False], ids=["numba-threads", "python-halves"])
def test_two_halves_give_the_unsplit_numbers(shape, wshape, params, route, native,
                                             monkeypatch):
    params = {"dilation": 1, "groups": 1, **params}
    rng = np.random.default_rng(3)
    x, w, b = rng.standard_normal(shape), rng.standard_normal(wshape), rng.standard_normal(
        wshape[0])
    set_split_limits(monkeypatch, 1e30)
    saved, whole = _conv(x, w, b, params)
    assert saved == route
    calls = force_split(monkeypatch, native=native)
    _, split = _conv(x, w, b, params)
    assert calls == [shape[0], shape[0]]  # forward and backward each split
    for got, want in zip(split, whole):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_blocks_run_with_one_blas_thread_and_restore_it():
    seen: dict[tuple, tuple] = {}

    def fn(lo, hi):
        seen[(lo, hi)] = (threading.current_thread().name, two_cores.blas_threads())
        return hi - lo

    with threadpool_limits(limits=2, user_api="blas"):
        assert two_cores.blas_threads() == 2
        assert two_cores.halves(7, fn) == [1, 2, 2, 2]  # four blocks, results in block order
        assert two_cores.blas_threads() == 2
    assert sorted(seen) == [(0, 1), (1, 3), (3, 5), (5, 7)]
    assert {blas for _, blas in seen.values()} == {1}
    assert {name for name, _ in seen.values()} <= {threading.current_thread().name,
                                                   *[f"wiregrad-half_{i}" for i in range(1)]}
    assert two_cores.halves(3, fn) == [1, 1, 1]  # fewer rows than blocks: one row each


def test_the_calling_thread_does_every_block_when_the_helper_gets_no_core():
    release = threading.Event()
    two_cores._pool().submit(release.wait)  # the helper is busy (not scheduled, in effect)
    names = []

    def fn(lo, hi):
        names.append(threading.current_thread().name)
        return lo

    try:
        with threadpool_limits(limits=2, user_api="blas"):
            assert two_cores.halves(8, fn) == [0, 2, 4, 6]
        assert names == [threading.current_thread().name] * 4  # nothing waited for the helper
    finally:
        release.set()


def test_an_error_in_either_half_is_raised_after_both_stop():
    def fn(lo, hi):
        if lo > 0:
            raise ValueError("second half")
        return 1

    with threadpool_limits(limits=2, user_api="blas"):
        with pytest.raises(ValueError, match="second half"):
            two_cores.halves(4, fn)
        assert two_cores.blas_threads() == 2


def test_nothing_splits_under_a_one_thread_cap_or_for_small_work():
    with threadpool_limits(limits=1, user_api="blas"):
        assert two_cores.ways(64, 1e12) == 1
    with threadpool_limits(limits=2, user_api="blas"):
        assert two_cores.ways(64, 1e12) == 2
        assert two_cores.ways(1, 1e12) == 1  # one image
        assert two_cores.ways(64, two_cores.MIN_FLOPS / 2) == 1


def _numba_threads_against_one(shapes, params, needs, route, patch, monkeypatch):
    """conv2d forward + backward of random (x, w, b, g) of *shapes* on one thread, then on
    Numba's threads with *patch* ``(module, name, value)`` applied: the same numbers, the
    expected route, one split per pass, no image gradient when x is data."""
    params = {"dilation": 1, "groups": 1, **params}
    rng = np.random.default_rng(9)
    x, w, b, g = (rng.standard_normal(shape) for shape in shapes)
    spec = registry.get("conv2d")

    def run():
        ctx = _Ctx()
        ctx.needs_input_grad = needs
        y = spec.forward(ctx, params, x, w, b)
        assert ctx.saved[0] is route
        return (y, *spec.backward(ctx, params, g))

    set_split_limits(monkeypatch, 1e30)
    whole = run()
    monkeypatch.setattr(*patch)
    calls = force_split(monkeypatch)
    split = run()
    assert calls == [x.shape[0], x.shape[0]]
    assert (split[1] is None) == (needs == (False, True, True))
    for got, want in zip(split, whole, strict=True):
        if want is None:
            assert got is None
            continue
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


NEEDS = pytest.mark.parametrize("needs", [(), (False, True, True)], ids=["x-grad", "x-is-data"])


@pytest.mark.parametrize("keep_bytes", [0, 1 << 30], ids=["rebuilt", "kept"])
@NEEDS
def test_the_per_image_route_on_numba_threads_with_and_without_kept_columns(keep_bytes, needs,
                                                                          monkeypatch):
    """Columns kept from the forward for the backward, or (past KEEP_BYTES) rebuilt there."""
    from engine.ops import conv_by_image

    _numba_threads_against_one(((5, 3, 11, 10), (4, 3, 3, 3), (4,), (5, 4, 5, 4)),
                               {"stride": 2, "padding": 1, "dilation": 2}, needs, True,
                               (conv_by_image, "KEEP_BYTES", keep_bytes), monkeypatch)


@NEEDS
def test_the_whole_batch_route_in_one_image_blocks_on_numba_threads(needs, monkeypatch):
    """Wide input, tiny output: blocks of one image each (BLOCK_BYTES 1)."""
    from engine.ops import conv_whole

    _numba_threads_against_one(((5, 20, 6, 6), (3, 20, 3, 3), (3,), (5, 3, 3, 3)),
                               {"stride": 2, "padding": 1}, needs, False,
                               (conv_whole, "BLOCK_BYTES", 1), monkeypatch)


def test_the_whole_batch_route_splits_too(monkeypatch):
    params = {"stride": 2, "padding": 1, "dilation": 1, "groups": 2}
    rng = np.random.default_rng(4)
    x, w = rng.standard_normal((5, 4, 7, 7)), rng.standard_normal((6, 2, 3, 3))
    set_split_limits(monkeypatch, 1e30)
    saved, whole = _conv(x, w, None, params)
    assert saved is False  # groups: the whole-batch route
    force_split(monkeypatch, spy=False)
    _, split = _conv(x, w, None, params)
    assert split[3] is None and whole[3] is None  # no bias
    for got, want in zip(split[:3], whole[:3]):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def _cnn_trainer():
    return shapes_cnn_trainer(200, 64, 3)


def test_an_unsplit_cnn_step_lets_its_convolutions_own_the_threads(monkeypatch):
    seen = []
    real = two_cores.halves

    def spy(rows, fn):
        seen.append(two_cores.blas_threads())  # BLAS is at one thread around the split op
        return real(rows, fn)

    real_native = two_cores.native_threads

    def spy_native(rows, flops, min_flops=None):  # an op running Numba's threads
        threads = real_native(rows, flops, min_flops)
        if threads > 1:
            seen.append(two_cores.blas_threads())
        return threads

    monkeypatch.setattr(two_cores, "halves", spy)
    monkeypatch.setattr(two_cores, "native_threads", spy_native)
    for limit in ("GEMM_MIN_FLOPS", "WINOGRAD_MIN_FLOPS", "NATIVE_MIN_FLOPS"):  # this small
        # CNN's convs split too
        monkeypatch.setattr(two_cores, limit, two_cores.MIN_FLOPS)
    with threadpool_limits(limits=1, user_api="blas"):
        one = _cnn_trainer()
        losses_one = [one.train_step()["loss"] for _ in range(2)]
    assert not seen and "convolutions split" not in one.split_note
    with threadpool_limits(limits=2, user_api="blas"):
        two = _cnn_trainer()
        losses_two = [two.train_step()["loss"] for _ in range(2)]
        assert two_cores.blas_threads() == 2  # restored after the step
    assert "batch_norm" in two.split_note and "convolutions split over 2 threads" in two.split_note
    assert seen and set(seen) == {1}
    np.testing.assert_allclose(losses_two, losses_one, rtol=1e-10)


def _lenet_like_doc(tmp_path):
    """A CNN with no batch norm (its step could split by rows) and an FC head."""
    from engine.bench import cnn_cases

    case = cnn_cases.CnnCase(
        "cnn_lenet_like", (1, 12, 12), 4, 16,
        (("conv", 4, 5, 1, 2), ("relu",), ("max", 2), ("conv", 6, 3, 1, 0), ("relu",),
         ("flatten",), ("fc", 20), ("relu",), ("fc", 4)))
    return cnn_cases.document(case, cnn_cases.write_data(case, tmp_path, n=64))


def test_a_cnn_without_batch_norm_runs_unsplit_on_numba_threads(tmp_path, monkeypatch):
    """Where Numba's threads load, a graph with convolutions is not cut into batch parts on
    Python threads (whose convolutions take the one-thread numpy routes): its ops own the
    threads, and it learns the same as on one thread."""
    from engine.kernels import parallel
    from engine.train.trainer import Trainer

    doc = _lenet_like_doc(tmp_path)
    doc["training"]["dtype"] = "float64"
    monkeypatch.setattr(parallel, "BACKGROUND", False)
    with threadpool_limits(limits=1, user_api="blas"):
        one = Trainer(doc, base_dir=tmp_path, steps=3)
        losses_one = [one.train_step()["loss"] for _ in range(3)]
    with threadpool_limits(limits=2, user_api="blas"):
        monkeypatch.setattr(parallel, "available", lambda: True)
        two = Trainer(doc, base_dir=tmp_path, steps=3)
        losses_two = [two.train_step()["loss"] for _ in range(3)]
        assert two.split_note.startswith("unsplit: convolutions on Numba's threads")
        assert "convolutions split over 2 threads, BLAS on one" in two.split_note
        # without Numba's threads the row-split rule decides, as before: this graph is too
        # small to split, and an unsplit step's convolutions own the threads there too
        monkeypatch.setattr(parallel, "available", lambda: False)
        small = Trainer(doc, base_dir=tmp_path, steps=3)
        losses_small = [small.train_step()["loss"] for _ in range(3)]
        assert small.split_note.startswith("unsplit: 2 BLAS thread(s), 16 rows")
        assert "convolutions split over 2 threads, BLAS on one" in small.split_note
    np.testing.assert_allclose(losses_two, losses_one, rtol=1e-10)
    np.testing.assert_allclose(losses_small, losses_one, rtol=1e-10)


def test_large_convolutions_leave_the_decision_to_the_row_split(tmp_path, monkeypatch):
    from engine.kernels import parallel
    from engine.train import trainer as trainer_module

    monkeypatch.setattr(parallel, "available", lambda: True)
    monkeypatch.setattr(trainer_module, "NUMBA_THREADS_MAX_CONV_FLOPS", 0.0)
    monkeypatch.setattr("engine.train.batch_split.choose_ways", lambda *a, **k: 2)
    with threadpool_limits(limits=2, user_api="blas"):
        trainer = trainer_module.Trainer(_lenet_like_doc(tmp_path), base_dir=tmp_path,
                                         steps=2)
        trainer.train_step()
    assert trainer.split_note == "split into 2 parts of ~8.0 rows"


def test_asking_for_parts_still_splits_a_cnn(tmp_path):
    from engine.train.trainer import Trainer

    with threadpool_limits(limits=2, user_api="blas"):
        trainer = Trainer(_lenet_like_doc(tmp_path), base_dir=tmp_path, steps=2, batch_split=2)
        trainer.train_step()
    assert trainer.split_note.startswith("split into 2 parts")
