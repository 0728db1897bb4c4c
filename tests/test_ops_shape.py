"""Shape ops: inference with symbols, errors that name the port, run-time symbol binding."""

from __future__ import annotations

import numpy as np
import pytest

from engine.core import registry
from engine.core.compile import compile_graph
from engine.core.gradcheck import TOLERANCE, GradReport, check_equations
from engine.core.params import resolve_params
from engine.core.program import Equation
from engine.core.registry import ShapeError, TensorType
from engine.core.run import Executor
from tests.helpers import doc_of, e, n


def infer(op: str, shapes: list, **params) -> list[tuple]:
    spec = registry.get(op)
    resolved, problems = resolve_params(spec.params, params)
    assert problems == []
    types = [s if isinstance(s, TensorType) else TensorType(tuple(s)) for s in shapes]
    return [t.shape for t in spec.infer(types, resolved)]


def infer_error(op: str, shapes: list, **params) -> ShapeError:
    with pytest.raises(ShapeError) as info:
        infer(op, shapes, **params)
    return info.value


# ------------------------------------------------------------------ reshape


@pytest.mark.parametrize("shape,target,expected", [
    (("B", "T", 8), ["B", -1], ("B", "T*8")),
    (("B", "T", 8), [-1, 8], ("B*T", 8)),
    (("B", 6), ["B", 2, 3], ("B", 2, 3)),
    (("B", 6), ["B", -1, 2], ("B", 3, 2)),
    ((2, 3, 4), [4, -1], (4, 6)),
    ((6, 4), ["N", 4], ("N", 4)),  # a symbol the input lacks is inferred like -1
    (("B", "T*8"), ["B", "T", 8], ("B", "T", 8)),  # "T" alone is not an input symbol
])
def test_reshape_infers_symbols(shape, target, expected):
    assert infer("reshape", [shape], shape=target) == [expected]


@pytest.mark.parametrize("shape,target", [
    ((2, 3), [4, 2]),
    ((2, 3), [4, -1]),
    (("B", 6), [6]),  # the batch symbol would be lost
    (("B", 6), ["B", -1, "N"]),  # two inferred sizes
])
def test_reshape_to_an_impossible_size_names_the_port(shape, target):
    err = infer_error("reshape", [shape], shape=target)
    assert err.port == "x"
    assert "cannot reshape" in err.message


def test_reshape_param_accepts_one_minus_one_only():
    spec = registry.get("reshape")
    _, ok = resolve_params(spec.params, {"shape": ["B", -1]})
    _, bad = resolve_params(spec.params, {"shape": [-1, -1]})
    _, zero = resolve_params(spec.params, {"shape": [0, 3]})
    assert ok == [] and bad and zero


@pytest.mark.parametrize("batch", [1, 5])
def test_reshape_binds_symbols_at_run_time(batch):
    doc = doc_of([n("x", "input", shape=["B", 3, 4]), n("r", "reshape", shape=["B", -1]),
                  n("f", "reshape", shape=[-1])],
                 [e("x:out", "r:x"), e("r:out", "f:x")])
    program = compile_graph(doc)
    assert program.diagnostics == []
    assert program.values["r:out"].shape == ("B", 12)
    assert program.values["f:out"].shape == ("B*12",)
    x = np.arange(batch * 12, dtype=np.float32).reshape(batch, 3, 4)
    tape = Executor(program).forward({"x": x}, {})
    assert tape.values["r:out"].shape == (batch, 12)
    np.testing.assert_array_equal(tape.values["f:out"], x.reshape(-1))


# ------------------------------------------------------------------ concat


def test_concat_sums_the_axis_and_keeps_symbols():
    assert infer("concat", [("B", 3), ("B", 5)], axis=-1) == [("B", 8)]
    assert infer("concat", [("B", "T", 4), ("B", 2, 4)], axis=1) == [("B", "T+2", 4)]


def test_concat_mismatch_names_the_offending_input():
    err = infer_error("concat", [(2, 3), (2, 5), (4, 5)], axis=-1)
    assert err.port == "inputs[2]"
    assert "axis 0" in err.message
    err = infer_error("concat", [(2, 3), (2, 3, 1)], axis=0)
    assert err.port == "inputs[1]" and "ranks differ" in err.message


def test_concat_mismatch_reaches_the_diagnostics():
    doc = doc_of([n("a", "input", shape=["B", 3]), n("b", "input", shape=["B", 5]),
                  n("c", "concat", axis=0)],
                 [e("a:out", "c:inputs[0]"), e("b:out", "c:inputs[1]")])
    diags = compile_graph(doc).diagnostics
    assert [(d.node, d.port) for d in diags] == [("c", "inputs[1]")]


def test_concat_of_int_and_float_is_an_error():
    err = infer_error("concat", [TensorType((2, 3), "float"), TensorType((2, 3), "int")])
    assert err.port == "inputs[1]"


# ------------------------------------------------------------------ split / slice / index


def test_split_equal_parts_and_sizes():
    assert infer("split", [(4, 6)], parts=3) == [(4, 2), (4, 2), (4, 2), (4, 0)]
    assert infer("split", [("B", 7)], sizes=[2, -1]) == [("B", 2), ("B", 5), ("B", 0),
                                                         ("B", 0)]
    assert infer("split", [("T", 4)], axis=0, sizes=[1, -1]) == [(1, 4), ("T-1", 4),
                                                                 (0, 4), (0, 4)]


@pytest.mark.parametrize("params", [{"parts": 4}, {"sizes": [2, 2]}, {"sizes": [-1, 9]}])
def test_split_errors_name_the_port(params):
    err = infer_error("split", [(3, 6)], axis=0, **params)
    assert err.port == "x"


def test_split_forward_returns_views_and_empty_unused_outputs():
    spec = registry.get("split")
    x = np.arange(12.0).reshape(2, 6)
    ex = Executor(None, "float64")
    params, _ = resolve_params(spec.params, {"sizes": [1, 5]})
    eq = Equation("s", "s", spec, params, ["x"], [f"o{k}" for k in range(4)],
                  [TensorType((2, 6))], spec.infer([TensorType((2, 6))], params))
    tape = ex.forward({}, {}, equations=[eq], values={"x": x})
    outs = [tape.values[f"o{k}"] for k in range(4)]
    assert [o.shape for o in outs] == [(2, 1), (2, 5), (2, 0), (2, 0)]
    assert np.shares_memory(outs[1], x)
    _, grads = ex.backward(tape, {"o1": np.ones((2, 5))})
    np.testing.assert_array_equal(grads["x"], [[0, 1, 1, 1, 1, 1]] * 2)


def test_slice_infers_lengths_like_python():
    assert infer("slice", [(10, 3)], start=-4, step=2) == [(2, 3)]
    assert infer("slice", [("T", 3)], start=1) == [("T-1", 3)]
    assert infer("slice", [("T", 3)], start=-2) == [(2, 3)]
    assert infer("slice", [("T", 3)], start=0, stop=4) == [(4, 3)]
    assert infer("slice", [(5,)], start=4, stop=1) == [(0,)]


def test_index_drops_the_axis_and_checks_range():
    assert infer("index", [("B", 3, 4)], axis=1, index=-1) == [("B", 4)]
    err = infer_error("index", [(2, 3)], axis=1, index=3)
    assert err.port == "x" and "out of range" in err.message


# ------------------------------------------------------------------ permute / broadcast


def test_permute_needs_a_permutation():
    assert infer("permute", [("B", "T", 4)], axes=[1, 0, 2]) == [("T", "B", 4)]
    assert infer_error("permute", [(2, 3, 4)], axes=[0, 0, 1]).port == "x"
    assert infer_error("permute", [(2, 3)], axes=[0, 1, 2]).port == "x"


def test_broadcast_to_symbols_come_from_the_input():
    assert infer("broadcast_to", [("B", 1, 4)], shape=["B", 3, 4]) == [("B", 3, 4)]
    assert infer_error("broadcast_to", [(1, 4)], shape=["B", 4]).port == "x"
    assert infer_error("broadcast_to", [(2, 4)], shape=[3, 4]).port == "x"


def test_broadcast_to_binds_the_batch_at_run_time():
    doc = doc_of([n("x", "input", shape=["B", 1, 4]), n("b", "broadcast_to", shape=["B", 3, 4])],
                 [e("x:out", "b:x")])
    program = compile_graph(doc)
    x = np.random.default_rng(0).standard_normal((2, 1, 4)).astype(np.float32)
    out = Executor(program).forward({"x": x}, {}).values["b:out"]
    np.testing.assert_array_equal(out, np.broadcast_to(x, (2, 3, 4)))


def test_shape_ops_pass_integer_values_without_gradients():
    assert registry.get("reshape").infer([TensorType(("B", "T"), "int")],
                                         {"shape": [-1]}) == [TensorType(("B*T",), "int")]


def test_gradients_through_non_contiguous_views():
    """permute → reshape → slice → concat chain, checked in float64 by central differences."""
    names = ["permute", "reshape", "slice", "concat"]
    specs = [registry.get(s) for s in names]
    given = [{"axes": [2, 0, 1]}, {"shape": [4, -1]}, {"axis": 1, "start": 1, "step": 2},
             {"axis": 1}]
    params = [resolve_params(s.params, p)[0] for s, p in zip(specs, given)]
    t0 = TensorType((2, 3, 4))
    t1 = specs[0].infer([t0], params[0])[0]
    t2 = specs[1].infer([t1], params[1])[0]
    t3 = specs[2].infer([t2], params[2])[0]
    t4 = specs[3].infer([t3, t2], params[3])[0]
    assert t4.shape == (4, 9)
    eqs = [Equation("p", "p", specs[0], params[0], ["x"], ["a"], [t0], [t1]),
           Equation("r", "r", specs[1], params[1], ["a"], ["b"], [t1], [t2]),
           Equation("s", "s", specs[2], params[2], ["b"], ["c"], [t2], [t3]),
           Equation("c", "c", specs[3], params[3], ["c", "b"], ["d"], [t3, t2], [t4])]
    x = np.random.default_rng(1).standard_normal((2, 3, 4))
    report = check_equations(eqs, {"x": x}, {}, {}, ["d"], GradReport("chain"))
    assert report.checked > 0
    assert report.max_rel_err <= TOLERANCE
