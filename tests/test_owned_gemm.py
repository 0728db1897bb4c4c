"""Inside a step whose ops own both cores (a CNN's unsplit step), a large fully-connected GEMM
runs on Numba's threads and a large weight's update splits its elements over them: the same
numbers as the one-thread routes, for every transpose and layout the matmul op hands over."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from engine.core.registry import get
from engine.kernels import parallel
from engine.ops import linalg, two_cores

pytestmark = pytest.mark.skipif(not parallel.available(), reason="needs Numba's OpenMP layer")


class _Ctx:
    def save(self, *arrays) -> None:
        self.saved = arrays


def _native_calls(monkeypatch) -> list:
    """Records each parallel.run that ran its kernel."""
    ran: list = []
    real = parallel.run

    def noting(kernel, *args, **kwargs):
        done = real(kernel, *args, **kwargs)
        if done:
            ran.append(kernel.py_func.__name__)
        return done

    monkeypatch.setattr(parallel, "run", noting)
    return ran


def _matmul(a, b, params, g):
    op = get("matmul")
    ctx = _Ctx()
    out = op.forward(ctx, params, a, b)
    ga, gb = op.backward(ctx, params, g)
    return out, ga, gb


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
    expected = _matmul(a, b, params, g)
    ran = _native_calls(monkeypatch)
    with two_cores.own_threads(2):
        got = _matmul(a, b, params, g)
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
