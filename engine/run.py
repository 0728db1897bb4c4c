"""Executing a :class:`~engine.program.Program`: forward keeps what backward needs;
backward walks the equations in reverse and accumulates gradients where values fan out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.init import initial_value, param_rng
from engine.program import Equation, Program, WeightInfo

FLOAT_DTYPES = {"float32": np.float32, "float64": np.float64}


class Context:
    """Per-equation scratch space handed to an op's forward and backward."""

    __slots__ = ("eq", "weights", "weight_grads", "state", "training", "rng", "feed", "saved",
                 "needs_input_grad", "dtype")

    def __init__(self, eq: Equation, weights: dict, state: dict, training: bool,
                 rng: np.random.Generator | None, feed=None, dtype=np.float32) -> None:
        self.eq = eq
        self.weights = weights  # spec name -> array
        self.weight_grads: dict[str, np.ndarray] = {}
        self.state = state  # spec name -> array (updated in place by e.g. batch norm)
        self.training = training
        self.rng = rng
        self.feed = feed
        self.saved: tuple = ()
        self.needs_input_grad: tuple = ()
        self.dtype = dtype  # the program's float dtype

    def save(self, *arrays) -> None:
        self.saved = arrays


@dataclass
class Tape:
    """What one forward pass produced: every value and each equation's context."""

    values: dict[str, np.ndarray]
    contexts: list[Context] = field(default_factory=list)


def init_weights(infos: dict[str, WeightInfo], seed: int, dtype) -> dict[str, np.ndarray]:
    """Fresh values for every weight (or state tensor), seeded per name."""
    return {name: initial_value(w.init, w.shape, w.init_params, param_rng(seed, name), dtype)
            for name, w in infos.items()}


class Executor:
    """Runs a program forward and backward on numpy arrays."""

    def __init__(self, program: Program | None, dtype: str | None = None) -> None:
        self.program = program
        self.dtype = np.dtype(FLOAT_DTYPES[dtype or program.dtype])

    def forward(self, feeds: dict[str, np.ndarray], weights: dict[str, np.ndarray],
                state: dict[str, np.ndarray] | None = None, *, training: bool = True,
                seed: int = 0, equations: list[Equation] | None = None,
                values: dict[str, np.ndarray] | None = None) -> Tape:
        """Evaluate *equations* (default: all). *values* pre-seeds values (e.g. sub-programs)."""
        state = state if state is not None else {}
        tape = Tape(dict(values or {}))
        env = tape.values
        for index, eq in enumerate(equations if equations is not None else self.program.equations):
            ins = [env[v] if v is not None else None for v in eq.inputs]
            ctx = Context(
                eq,
                {k: weights[n] for k, n in eq.weights.items()},
                {k: state[n] for k, n in eq.state.items()},
                training,
                np.random.default_rng([seed & 0xFFFFFFFF, index]),
                feeds.get(eq.path) if eq.op.category == "data" else None,
                self.dtype,
            )
            outs = eq.op.forward(ctx, eq.params, *ins)
            if not isinstance(outs, tuple):
                outs = (outs,)
            for name, arr in zip(eq.outputs, outs):
                env[name] = arr
            tape.contexts.append(ctx)
        return tape

    def backward(self, tape: Tape, seeds: dict[str, np.ndarray]) -> tuple[dict, dict]:
        """Reverse-mode pass from *seeds* (value name → gradient).

        Returns ``(weight_grads by full name, value_grads by value name)``.
        """
        grads: dict[str, np.ndarray] = {k: np.asarray(v) for k, v in seeds.items()}
        weight_grads: dict[str, np.ndarray] = {}
        for ctx in reversed(tape.contexts):
            eq = ctx.eq
            gouts = [grads.get(o) for o in eq.outputs]
            if all(g is None for g in gouts):
                continue
            gouts = [g if g is not None else np.zeros_like(tape.values[o])
                     for g, o in zip(gouts, eq.outputs)]
            if eq.op.backward is None:
                continue
            gins = eq.op.backward(ctx, eq.params, *gouts)
            if not isinstance(gins, tuple):
                gins = (gins,)
            for name, g in zip(eq.inputs, gins):
                if name is None or g is None:
                    continue
                _accumulate(grads, name, g)
            for spec_name, g in ctx.weight_grads.items():
                _accumulate(weight_grads, eq.weights[spec_name], g)
        return weight_grads, grads


def _accumulate(store: dict, name: str, g: np.ndarray) -> None:
    if name in store:
        store[name] = store[name] + g
    else:
        store[name] = g
