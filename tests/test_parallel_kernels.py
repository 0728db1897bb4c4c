"""Both cores inside one Numba call (engine.kernels.parallel): when the parallel kernels are
used, that a fresh install does not wait for them to compile, and that their workers' BLAS
stays on one thread."""

from __future__ import annotations

import json

import numpy as np
import pytest
from numba import njit, prange

from engine.kernels import parallel


@njit(parallel=True)
def _row_sums(x, out):
    for i in prange(x.shape[0]):
        out[i] = x[i].sum()


def test_bounds_cut_rows_into_nearly_equal_parts():
    assert parallel.bounds(7, 2).tolist() == [0, 3, 7]
    assert parallel.bounds(3, 4).tolist() == [0, 1, 2, 3]  # never an empty part
    assert parallel.bounds(5, 1).tolist() == [0, 5]


def _fresh(monkeypatch, background: bool) -> None:
    monkeypatch.setattr(parallel, "BACKGROUND", background)
    for name in ("_READY", "_CHECKED", "_HELPERS"):
        monkeypatch.setattr(parallel, name, {})


def test_a_kernel_compiles_at_once_when_asked(monkeypatch):
    _fresh(monkeypatch, background=False)
    x, out = np.ones((4, 3), np.float32), np.zeros(4, np.float32)
    assert parallel.ready(_row_sums, (x, out), x.dtype)
    _row_sums(x, out)
    np.testing.assert_array_equal(out, [3, 3, 3, 3])


def test_a_fresh_install_runs_serial_while_a_helper_process_compiles(monkeypatch):
    """The first ask starts one helper process with the kernel's signature and answers no;
    asks within LOOK_EVERY do not look again; once the cache has the kernel, yes."""
    from engine.kernels import conv_gemm, precompile

    _fresh(monkeypatch, background=True)
    jobs: list = []
    flushed: list = []  # jobs written when stdin was flushed (the helper waits for the line)

    class _Proc:
        def __init__(self) -> None:
            self.stdin = self

        def write(self, data: bytes) -> None:
            jobs.append(json.loads(data))

        def flush(self) -> None:
            flushed.append(len(jobs))

    monkeypatch.setattr(precompile, "_spawn", _Proc)
    kernel = conv_gemm.forward_parallel
    xp, wmat = np.ones((2, 1, 5, 5), np.float32), np.ones((3, 4), np.float32)
    args = (xp, wmat, np.empty(0, np.float32), 2, 2, 1, 1, 4, 4,
            np.empty((2, 3, 16), np.float32), np.empty((0, 4, 16), np.float32),
            parallel.bounds(2, 2))
    sig = tuple(kernel.typeof_pyval(a) for a in args)
    monkeypatch.setattr(kernel, "overloads", {})
    cached: set = set()
    monkeypatch.setattr(precompile, "cached_signatures", lambda disp: cached)
    clock = [100.0]
    monkeypatch.setattr(parallel.time, "monotonic", lambda: clock[0])
    assert not parallel.ready(kernel, args, np.float32)
    assert len(jobs) == 1 and jobs[0][0][:2] == ["engine.kernels.conv_gemm",
                                                 "forward_parallel"]
    assert tuple(precompile.rebuild(a) for a in jobs[0][0][2]) == sig
    assert flushed == [1]  # the job line reached the helper, not a buffer
    cached.add(sig)  # the helper has saved it
    assert not parallel.ready(kernel, args, np.float32)  # not looked at again yet
    clock[0] += parallel.LOOK_EVERY
    assert parallel.ready(kernel, args, np.float32)
    assert len(jobs) == 1  # one helper per kernel and dtype


def test_opting_out_turns_the_parallel_kernels_off(monkeypatch):
    parallel.available.cache_clear()
    try:
        monkeypatch.setenv(parallel.OPT_OUT, "0")
        assert not parallel.available()
    finally:
        parallel.available.cache_clear()


def test_without_the_kernels_gemm_library_the_parallel_kernels_are_off(monkeypatch):
    """scipy-openblas64 missing or broken: the ops keep their one-thread routes (a
    convolution still trains) instead of failing on the kernels' import."""
    import sys

    import engine.kernels

    parallel.available.cache_clear()
    monkeypatch.delitem(sys.modules, "engine.kernels.blas", raising=False)
    monkeypatch.delattr(engine.kernels, "blas", raising=False)
    monkeypatch.setitem(sys.modules, "scipy_openblas64", None)  # import fails
    try:
        assert not parallel.available()
    finally:
        parallel.available.cache_clear()
        monkeypatch.undo()
    assert parallel.available() == (parallel.os.environ.get(parallel.OPT_OUT, "1") != "0")


def test_the_blas_numba_calls_runs_on_one_thread_inside_a_launch():
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=2, user_api="blas"):
        with parallel.launch():
            pinned = parallel._PINNED
            assert pinned is not None
            assert all(lib.num_threads == 1 for lib in pinned)
            assert not parallel.LOCK.acquire(blocking=False)  # held during the launch


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_numba_threads_and_one_thread_give_the_same_cnn_step(dtype, monkeypatch, tmp_path):
    """A CNN unlike the presets (3 input channels, a 5×5 Winograd layer, a strided per-image
    layer, no bias on one layer) trained two steps on two cores with the parallel kernels
    forced on, against the same steps on one thread."""
    from engine.bench import cnn_cases
    from tests.split_help import cnn_losses_one_thread_and_split

    case = cnn_cases.CnnCase(
        "cnn_test_native", (3, 14, 14), 4, 6,
        (("conv", 16, 3, 2, 1), ("bn2",), ("relu",),
         ("conv", 16, 5, 1, 2), ("bn2",), ("silu",), ("avg", 2),
         ("conv", 8, 3, 1, 1), ("relu",), ("flatten",), ("fc", 4)))
    one, two, calls = cnn_losses_one_thread_and_split(case, 24, dtype, tmp_path, monkeypatch)
    assert len(calls) >= 3 * 3 * 2  # three convolutions, forward and backward, every step
    tol = 1e-5 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(two, one, rtol=tol)
