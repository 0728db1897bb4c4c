"""Edge cases of element-wise and reduction ops the random examples cannot reach: tied
maxima, the variance correction, saturating activations, GELU's float32/float64 paths."""

from __future__ import annotations

import numpy as np
import pytest

from engine.core import registry
from engine.core.params import resolve_params
from engine.core.program import Equation
from engine.core.registry import TensorType
from engine.core.run import Executor


def run(op: str, inputs: list[np.ndarray], grad=None, **given):
    """Forward (and backward with seed *grad*) of one op; returns (out, input grads)."""
    spec = registry.get(op)
    params, problems = resolve_params(spec.params, given)
    assert problems == []
    types = [TensorType(a.shape, "float" if a.dtype.kind == "f" else "int") for a in inputs]
    names = [f"in{i}" for i in range(len(inputs))]
    eq = Equation(op, op, spec, params, names, ["out"], types, spec.infer(types, params))
    dtype = "float32" if inputs[-1].dtype == np.float32 else "float64"
    ex = Executor(None, dtype)
    tape = ex.forward({}, {}, equations=[eq], values=dict(zip(names, inputs)))
    out = tape.values["out"]
    if grad is None:
        return out, None
    _, grads = ex.backward(tape, {"out": np.broadcast_to(grad, out.shape).astype(out.dtype)})
    return out, [grads.get(nm) for nm in names]


def test_max_shares_the_gradient_among_ties_like_torch_amax():
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0], [0.0, -1.0, 5.0]])
    out, (g,) = run("max", [x], grad=1.0, axes=[1])
    np.testing.assert_array_equal(out, [3.0, 2.0, 5.0])
    np.testing.assert_allclose(g, [[0, 0.5, 0.5], [1 / 3] * 3, [0, 0, 1]])


@pytest.mark.parametrize("correction", [0, 1, 2])
def test_var_correction_matches_numpy_ddof(correction):
    x = np.random.default_rng(0).standard_normal((4, 7))
    out, _ = run("var", [x], axes=[1], correction=correction)
    np.testing.assert_allclose(out, np.var(x, axis=1, ddof=correction), rtol=1e-12)


ENDS = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0), "silu": (0.0, 1e30), "gelu": (0.0, 1e30),
        "leaky_relu": (-1e28, 1e30)}  # values at x = -1e30 and x = 1e30


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", sorted(ENDS))
def test_activations_stay_finite_on_huge_inputs(op, dtype):
    x = np.array([-1e30, -1e3, -50.0, 0.0, 50.0, 1e3, 1e30], dtype=dtype)
    out, (g,) = run(op, [x], grad=1.0)
    assert out.dtype == dtype and g.dtype == dtype
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(g))
    np.testing.assert_allclose([out[0], out[-1]], ENDS[op], rtol=1e-6, atol=1e-30)


@pytest.mark.parametrize("form", ["none", "tanh"])
def test_gelu_float32_kernel_path_agrees_with_float64_exact_path(form):
    x = np.linspace(-6, 6, 1001)
    out64, (g64,) = run("gelu", [x], grad=1.0, approximate=form)
    out32, (g32,) = run("gelu", [x.astype(np.float32)], grad=1.0, approximate=form)
    np.testing.assert_allclose(out32, out64, rtol=1.3e-6, atol=1e-6)
    np.testing.assert_allclose(g32, g64, rtol=1.3e-6, atol=1e-6)


def test_where_takes_a_nonzero_mask_and_sends_no_gradient_to_it():
    cond = np.array([[1, 0, 2]])
    a = np.array([[1.0, 2.0, 3.0]])
    b = np.array([[-1.0], [-2.0]])
    out, (gc, ga, gb) = run("where", [cond, a, b], grad=1.0)
    np.testing.assert_array_equal(out, [[1.0, -1.0, 3.0], [1.0, -2.0, 3.0]])
    assert gc is None
    np.testing.assert_array_equal(ga, [[2.0, 0.0, 2.0]])
    np.testing.assert_array_equal(gb, [[1.0], [1.0]])
