"""Inside a step whose ops own both cores (a CNN's unsplit step), a large fully-connected GEMM
runs on Numba's threads and a large weight's update splits its elements over them: the same
numbers as the one-thread routes, for every transpose and layout the matmul op hands over."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from engine.kernels import parallel
from engine.ops import linalg, two_cores
from engine.train.optim import PARALLEL_MIN_ELEMENTS, Optimizer
from tests.helpers import record_native_runs, run_matmul

pytestmark = pytest.mark.skipif(not parallel.available(), reason="needs Numba's OpenMP layer")


_native_calls = record_native_runs  # engine.kernels.parallel.run, recording the kernels that ran


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ta,tb,batched", [c for c in itertools.product((False, True), repeat=3)
                                           if not (c[0] and c[2])])
def test_a_large_matmul_on_numba_threads_matches_one_thread(monkeypatch, dtype, ta, tb, batched):
    rng = np.random.default_rng(7)
    m, k, n = 48, 300, 520  # N > M (the transposed route for a transposed weight) and odd sizes
    a_shape = (3, 16, k) if batched else ((k, m) if ta else (m, k))
    a = rng.standard_normal(a_shape).astype(dtype)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
    g = rng.standard_normal((3, 16, n) if batched else (m, n)).astype(dtype)
    params = {"transpose_a": ta, "transpose_b": tb}
    expected = run_matmul(a, b, params, g)
    ran = _native_calls(monkeypatch)
    with two_cores.own_threads(2):
        got = run_matmul(a, b, params, g)
    assert len(ran) == 3  # forward, dA and dB each ran on Numba's threads
    tol = 1e-4 if dtype == np.float32 else 1e-12
    for x, y in zip(got, expected):
        assert x.shape == y.shape and x.flags.c_contiguous
        np.testing.assert_allclose(x, y, rtol=tol, atol=tol * 10)


def test_small_gemms_and_gemms_outside_owned_threads_stay_on_blas(monkeypatch):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((8, 16)).astype(np.float32)
    b = rng.standard_normal((16, 8)).astype(np.float32)
    big = rng.standard_normal((64, 1024)).astype(np.float32)
    ran = _native_calls(monkeypatch)
    with two_cores.own_threads(2):
        linalg._product(a, b)  # 2 kFLOP: not worth a fork
    linalg._product(big, big.T)  # no owned threads: BLAS keeps its own
    assert ran == []


@pytest.mark.parametrize("kind,extra", [("adamw", {"weight_decay": 0.1}), ("adam", {}),
                                        ("sgd", {"momentum": 0.9, "nesterov": True,
                                                 "weight_decay": 1e-3})])
def test_a_large_weights_update_on_numba_threads_matches_one_thread(monkeypatch, kind, extra):
    rng = np.random.default_rng(3)
    shape = (PARALLEL_MIN_ELEMENTS // 64 + 3, 64)  # just over the threshold, uneven blocks
    start = {"w": rng.standard_normal(shape).astype(np.float32),
             "b": rng.standard_normal(10).astype(np.float32)}
    runs = []
    for owned in (False, True):
        opt = Optimizer(kind=kind, lr=1e-2, decay_names=frozenset({"w"}), **extra)
        params = {k: v.copy() for k, v in start.items()}
        ran = _native_calls(monkeypatch) if owned else []
        for step in range(3):
            grads = {k: np.random.default_rng(step).standard_normal(v.shape).astype(np.float32)
                     for k, v in start.items()}
            if owned:
                with two_cores.own_threads(2):
                    opt.step(params, grads, grad_scale=0.5)
            else:
                opt.step(params, grads, grad_scale=0.5)
        runs.append((params, opt.state))
        if owned:
            assert len(ran) == 3  # the large weight, each step; the bias stays serial
    (p0, s0), (p1, s1) = runs
    for name in p0:
        np.testing.assert_array_equal(p1[name], p0[name])
    for key in s0:
        np.testing.assert_array_equal(s1[key], s0[key])
