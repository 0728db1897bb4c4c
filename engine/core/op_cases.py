"""Concrete test cases built from an op's registry :class:`~engine.core.registry.Example`s.

Shared by the gradient checker, the kernel warm-up and the PyTorch parity tests, so all
three exercise an op on exactly the same equation, inputs, weights and state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.core.compile import concrete_shape
from engine.core.params import resolve_params
from engine.core.program import Equation
from engine.core.registry import Example, OpSpec, TensorType

SYMBOL_SIZES = {"B": 3, "T": 4}


@dataclass
class Case:
    """One op applied to concrete arrays, ready for :class:`engine.core.run.Executor`."""

    params: dict
    equation: Equation
    values: dict[str, np.ndarray]  # input value name -> array
    weights: dict[str, np.ndarray]  # full weight name -> array
    state: dict[str, np.ndarray]


def example_value(t: TensorType, rng: np.random.Generator, high: int = 0,
                  low_f: float = -1.0, high_f: float = 1.0, sizes: dict | None = None,
                  dtype=np.float64) -> np.ndarray:
    """Random data of type *t*: integers in [0, high), floats uniform in [low_f, high_f)."""
    shape = concrete_shape(t.shape, {**SYMBOL_SIZES, **(sizes or {})})
    if t.dtype == "int":
        return rng.integers(0, max(1, high), size=shape).astype(np.int64)
    return rng.uniform(low_f, high_f, size=shape).astype(dtype)


def build_case(spec: OpSpec, example: Example, dtype=np.float64, seed: int = 0) -> Case:
    """The equation, inputs, weights (uniform in [-1, 1)) and state (zeros/ones) of a case."""
    rng = np.random.default_rng(seed)
    params, problems = resolve_params(spec.params, example.params)
    if problems:
        raise ValueError(f"{spec.name}: bad example params {problems}")
    types, values = [], {}
    for i, case in enumerate(example.inputs):
        t = TensorType(tuple(case[0]), case[1])
        high = case[2] if len(case) > 2 else 0
        values[f"in{i}"] = example_value(t, rng, high, example.low, example.high, dtype=dtype)
        types.append(t)
    out_types = list(spec.infer(types, params)) if spec.infer else []
    eq = Equation(spec.name, spec.name, spec, params, list(values),
                  [f"out:{p.name}" for p in spec.outputs], list[TensorType | None](types),
                  out_types,
                  {w.name: f"w:{w.name}" for w in spec.weights},
                  {s.name: f"s:{s.name}" for s in spec.state})
    weights = {f"w:{w.name}": rng.uniform(-1, 1, tuple(w.shape(params, types))).astype(dtype)
               for w in spec.weights}
    state = {}
    for s in spec.state:
        shape = tuple(s.shape(params, types))
        state[f"s:{s.name}"] = (np.ones(shape) if s.init == "ones" else np.zeros(shape)).astype(
            dtype)
    return Case(params, eq, values, weights, state)
