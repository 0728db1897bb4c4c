"""GELU kernels: equal their numpy twins, stay within float32 tolerance of the exact float64
formulas (on [-10, 10] and on extreme inputs), and run with the JIT disabled."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.kernels import elementwise as K
from engine.ops.elementwise import gelu_exact, gelu_grad_exact

FORMS = ["none", "tanh"]
ROOT = Path(__file__).resolve().parent.parent
EXTREMES = np.array([0.0, -0.0, 1e-30, -1e-30, 1e-40, 5.9, 6.1, -8.48, -8.49, 25.0, -25.0,
                     1e3, -1e3, 1e20, -1e20, 3e38, -3e38])


def f32_tolerance(ours: np.ndarray, exact: np.ndarray) -> None:
    """torch.testing.assert_close's float32 defaults: |a − e| ≤ 1e-5 + 1.3e-6·|e|."""
    np.testing.assert_allclose(ours.astype(np.float64), exact, rtol=1.3e-6, atol=1e-5)


@pytest.mark.parametrize("form", FORMS)
def test_kernels_equal_their_numpy_twins(form):
    x = np.concatenate([np.linspace(-12, 12, 4001), EXTREMES])
    g = np.random.default_rng(0).standard_normal(x.shape)
    np.testing.assert_allclose(K.gelu_forward(x, form), K.gelu_fwd_ref(x, form),
                               rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(K.gelu_backward(x, g, form), K.gelu_bwd_ref(x, g, form),
                               rtol=1e-13, atol=1e-300)


@pytest.mark.parametrize("form", FORMS)
def test_float32_kernels_within_float32_tolerance_of_exact(form):
    x32 = np.linspace(-10, 10, 20001, dtype=np.float32)
    x = x32.astype(np.float64)
    g32 = np.ones_like(x32)
    out = K.gelu_forward(x32, form)
    grad = K.gelu_backward(x32, g32, form)
    assert out.dtype == np.float32 and grad.dtype == np.float32
    f32_tolerance(out, gelu_exact(x, form))
    f32_tolerance(grad, gelu_grad_exact(x, np.ones_like(x), form))
    # Much tighter than float32 needs: the approximation error itself, in float64.
    assert np.max(np.abs(K.gelu_forward(x, form) - gelu_exact(x, form))) < 1e-10
    assert np.max(np.abs(K.gelu_backward(x, np.ones_like(x), form)
                         - gelu_grad_exact(x, np.ones_like(x), form))) < 1e-10


@pytest.mark.parametrize("form", FORMS)
def test_extreme_inputs_stay_finite_and_accurate(form):
    x32 = EXTREMES.astype(np.float32)
    x = x32.astype(np.float64)
    out = K.gelu_forward(x32, form)
    grad = K.gelu_backward(x32, np.ones_like(x32), form)
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(grad))
    f32_tolerance(out, gelu_exact(x, form))
    f32_tolerance(grad, gelu_grad_exact(x, np.ones_like(x), form))
    assert np.isnan(K.gelu_forward(np.array([np.nan], np.float32), form)[0])


def test_non_contiguous_input_and_broadcast_gradient():
    x = np.random.default_rng(1).standard_normal((6, 5)).astype(np.float32).T  # F-ordered
    assert not x.flags.c_contiguous
    np.testing.assert_array_equal(K.gelu_forward(x, "tanh"),
                                  K.gelu_forward(np.ascontiguousarray(x), "tanh"))
    grad = K.gelu_backward(x, np.float32(2.0), "none")
    np.testing.assert_allclose(grad, 2 * K.gelu_bwd_ref(x, 1.0, "none"), rtol=1e-6,
                               atol=4 * 2.0**-23)  # float32 lanes: a few ulps of the slope


def test_exp_helper_matches_numpy():
    y = np.linspace(-36, 0, 10001)
    np.testing.assert_allclose(K._exp_nonpos_ref(y), np.exp(y), rtol=5e-13)


def test_float32_exp_helper_within_two_ulps():
    y = np.linspace(-36, 0, 4001).astype(np.float32)
    ours = np.array([K._exp_nonpos32(v) for v in y])
    exact = np.exp(y.astype(np.float64))
    assert np.max(np.abs(ours - exact) / exact) < 2 * 2.0**-23


def test_float32_exp_in_compiled_lanes_at_every_power_of_two():
    """Inside a compiled loop (the SIMD path the kernels take), 2^-k comes from its exponent
    bits: exact for every k the exponential meets (0 … 52), and e^y within two ulps at and
    between the points where k steps."""
    from numba import njit

    @njit
    def powers(k):  # k: (N,) int32
        out = np.empty(k.size, np.float32)
        for i in range(k.size):
            out[i] = K._f32_from_bits((np.int32(127) - k[i]) << np.int32(23))
        return out

    @njit
    def exps(y):  # y: (N,) float32
        out = np.empty_like(y)
        for i in range(y.size):
            out[i] = K._exp_nonpos32(y[i])
        return out

    k = np.arange(0, 53, dtype=np.int32)
    np.testing.assert_array_equal(powers(k), np.ldexp(np.float32(1), -k))
    assert K._f32_from_bits(np.int32(127 - 3) << 23) == np.float32(0.125)  # the plain function
    steps = -(k[:, None] + np.array([-0.5, -0.499, 0.0, 0.499, 0.5])) * np.log(2.0)
    y = np.clip(steps.ravel(), -36, 0).astype(np.float32)
    exact = np.exp(y.astype(np.float64))
    assert np.max(np.abs(exps(y) - exact) / exact) < 2 * 2.0**-23


@pytest.mark.parametrize("form", FORMS)
def test_float32_lanes_within_a_few_ulps_of_exact(form):
    """The float32 kernels: GELU within 3 ulps of x, the slope within 4 ulps of 1, everywhere;
    and float64 input still takes the float64 kernels (error ~1e-10)."""
    x32 = np.concatenate([np.linspace(-12, 12, 48001), EXTREMES]).astype(np.float32)
    x = x32.astype(np.float64)
    out, d = K.gelu_forward_and_slope(x32, form)
    grad = K.gelu_backward(x32, np.ones_like(x32), form)
    ulp_x = 2.0**-23 * np.maximum(np.abs(x), 2.0**-10)
    assert np.all(np.abs(out - gelu_exact(x, form)) <= 3 * ulp_x)
    slope = gelu_grad_exact(x, np.ones_like(x), form)
    assert np.max(np.abs(d - slope)) <= 4 * 2.0**-23
    assert np.max(np.abs(grad - slope)) <= 4 * 2.0**-23
    assert np.max(np.abs(K.gelu_forward(x[:48001], form) - gelu_exact(x[:48001], form))) < 1e-10


def test_ops_importing_stays_numba_free():
    """`import engine`, the registry and its catalog must not import Numba or the kernels."""
    code = ("import sys, engine, engine.core.registry as r; r.catalog(); "
            "bad = [m for m in ('numba', 'engine.kernels.elementwise') if m in sys.modules]; "
            "assert not bad, bad")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.timeout(900)  # the subprocess's own 600 s limit must be the one that counts
def test_kernels_pass_with_the_jit_disabled():
    """The kernels are plain Python too: a subset of these tests passes with NUMBA_DISABLE_JIT."""
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__,
         "-k", "twins or non_contiguous or extreme"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "5 passed" in result.stdout
