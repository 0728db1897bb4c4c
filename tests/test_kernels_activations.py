"""One-pass activation kernels: leaky ReLU equals the numpy formula bit for bit (float32 and
float64, NaN included), float32 SiLU and its slope stay within float32 tolerance of the exact
float64 values, extremes included, and the ops agree across dtypes."""

from __future__ import annotations

import numpy as np
import pytest

from engine.core import registry
from engine.kernels import activations as A

EXTREMES = np.array([0.0, -0.0, 1e-30, -1e-30, 35.9, 36.1, -35.9, -36.1, 90.0, -90.0,
                     1e20, -1e20, 3e38, -3e38])


def _x(dtype) -> np.ndarray:
    x = np.concatenate([np.linspace(-12, 12, 4001), EXTREMES, [np.nan]])
    return x.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("slope", [0.01, 0.2, -0.5])
def test_leaky_relu_kernels_equal_their_twins_bit_for_bit(dtype, slope):
    x = _x(dtype).reshape(1, -1)
    g = np.random.default_rng(0).standard_normal(x.shape).astype(dtype)
    out = A.leaky_relu(x, slope)
    assert out.dtype == dtype and out.shape == x.shape
    np.testing.assert_array_equal(out, A.leaky_fwd_ref(x, slope))
    np.testing.assert_array_equal(A.leaky_relu_grad(x, g, slope), A.leaky_bwd_ref(x, g, slope))
    assert np.isnan(out[0, -1])


def test_float32_silu_within_float32_tolerance_of_exact():
    x = _x(np.float32)[:-1]
    out, d = A.silu_and_slope32(x)
    ref_out, ref_d = A.silu_fwd_d_ref(x.astype(np.float64))
    assert out.dtype == np.float32 and d.dtype == np.float32
    assert np.isfinite(out).all() and np.isfinite(d).all()
    np.testing.assert_allclose(out, ref_out, rtol=1.3e-6, atol=1e-5)
    np.testing.assert_allclose(d, ref_d, rtol=1.3e-6, atol=1e-5)


@pytest.mark.parametrize("name", ["leaky_relu", "relu", "silu"])
def test_the_ops_agree_with_their_float64_formulas_in_float32(name):
    spec = registry.get(name)
    params = {"negative_slope": 0.1} if name == "leaky_relu" else {}

    class Ctx:
        training = True

        def save(self, *arrays) -> None:
            self.saved = arrays

    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 8, 5, 5)) * 4
    g = rng.standard_normal(x.shape)
    results = []
    for dtype in (np.float64, np.float32):
        ctx = Ctx()
        y = spec.forward(ctx, params, x.astype(dtype))
        (gx,) = spec.backward(ctx, params, g.astype(dtype))
        assert y.dtype == dtype and gx.dtype == dtype
        results.append((y, gx))
    for a, b in zip(results[0], results[1]):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_kernels_equal_their_twins_bit_for_bit(dtype):
    x = _x(dtype).reshape(1, -1)
    g = np.random.default_rng(1).standard_normal(x.shape).astype(dtype)
    g[0, :3] = np.nan  # a NaN gradient where x <= 0 stays NaN, as in numpy's product
    out = A.relu(x)
    assert out.dtype == dtype and out.shape == x.shape
    np.testing.assert_array_equal(out, A.relu_fwd_ref(x))
    np.testing.assert_array_equal(A.relu_grad(x, g), A.relu_bwd_ref(x, g))
    assert np.isnan(out[0, -1])
    assert (out[x <= 0] == 0).all() and (out[x > 0] == x[x > 0]).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_relu_op_gives_the_same_numbers_on_both_routes(dtype, monkeypatch):
    from engine.ops import elementwise

    spec = registry.get("relu")

    class Ctx:
        training = True

        def save(self, *arrays) -> None:
            self.saved = arrays

    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 4, 6, 6)).astype(dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    calls = []
    monkeypatch.setattr(elementwise, "_act", lambda: calls.append(1) or A)
    routes = []
    for least in (x.size + 1, x.size):  # numpy, then the kernels
        monkeypatch.setattr(elementwise, "RELU_KERNEL_MIN", least)
        ctx = Ctx()
        y = spec.forward(ctx, {}, x)
        routes.append((y, *spec.backward(ctx, {}, g)))
    assert len(calls) == 2  # the kernels ran on the second route only, forward and backward
    for got, want in zip(routes[1], routes[0]):
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, want)
