"""The float32 GELU forward that keeps its slope: the slope equals the backward kernel, and a
training-mode op backward (g · slope) equals the inference-mode one (the kernel's second pass)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.kernels import elementwise as K
from tests.test_kernels_nn import run_op


@pytest.mark.parametrize("form", ["none", "tanh"])
def test_slope_equals_the_backward_kernel(form):
    x = (np.random.default_rng(5).standard_normal(3001) * 4).astype(np.float32)
    x[:4] = [0.0, -30.0, 30.0, 1e-30]
    out, d = K.gelu_forward_and_slope(x, form)
    assert out.dtype == d.dtype == np.float32
    np.testing.assert_array_equal(out, K.gelu_forward(x, form))
    np.testing.assert_allclose(d, K.gelu_backward(x, np.ones_like(x), form), rtol=1e-7,
                               atol=1e-12)


@pytest.mark.parametrize("form", ["none", "tanh"])
def test_training_backward_uses_the_slope(form):
    rng = np.random.default_rng(6)
    x = (rng.standard_normal((4, 7)) * 3).astype(np.float32)
    g = rng.standard_normal((4, 7)).astype(np.float32)
    out_t, (gx_t,) = run_op("gelu", [x], {"approximate": form}, grad=g, training=True)
    out_e, (gx_e,) = run_op("gelu", [x], {"approximate": form}, grad=g, training=False)
    np.testing.assert_array_equal(out_t, out_e)
    np.testing.assert_allclose(gx_t, gx_e, rtol=2e-7, atol=1e-9)
    assert gx_t.dtype == np.float32


@pytest.mark.parametrize("name,params", [("gelu", {"approximate": "none"}),
                                         ("gelu", {"approximate": "tanh"}), ("silu", {})])
def test_training_backward_writes_into_the_slope_and_a_second_backward_agrees(name, params):
    """The float32 training backward multiplies into the slope array the forward kept (no
    fresh array) and drops it from the context; a second backward of the same context
    recomputes the slope with the same kernel: the same gradient, bit for bit."""
    from engine.core import registry

    class Ctx:
        training = True

        def save(self, *arrays) -> None:
            self.saved = arrays

    rng = np.random.default_rng(7)
    x = (rng.standard_normal((5, 9)) * 3).astype(np.float32)
    g = rng.standard_normal((5, 9)).astype(np.float32)
    spec, ctx = registry.get(name), Ctx()
    spec.forward(ctx, params, x)
    slope = ctx.saved[2]
    expected = np.multiply(g, slope, dtype=np.float32)
    (first,) = spec.backward(ctx, params, g)
    assert np.shares_memory(first, slope) and ctx.saved[2] is None
    np.testing.assert_array_equal(first, expected)
    (second,) = spec.backward(ctx, params, g)
    assert second.dtype == np.float32
    np.testing.assert_array_equal(second, expected)
