"""Kernel warm-up: run each op a graph uses once on a tiny example so Numba compiles (or
loads from its on-disk cache) every kernel before the first training step needs it.

Only the dtype the graph trains in is warmed (float32 unless its training settings say
otherwise): compiling float64 as well doubled the work for kernels no run would call. The
editor warms a graph differently — one throwaway step in its worker
(``engine.worker.Worker.cmd_warm``), which also matches the run's array layouts."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from engine.core import registry
from engine.core.op_cases import Case, build_case
from engine.core.run import Executor


def ops_used(doc: dict | None) -> list[registry.OpSpec]:
    """Primitive specs a document needs after layer expansion (all primitives if None)."""
    if doc is None:
        return [s for s in registry.all_ops() if s.layer is None and s.examples]
    from engine.core.compile import compile_graph

    program = compile_graph(doc)
    names = dict.fromkeys(eq.op.name for eq in program.equations)
    return [registry.get(n) for n in names if registry.get(n).examples]


def warm_up(doc: dict | None = None,
            progress: Callable[[int, int], None] | None = None,
            dtype: str | None = None) -> int:
    """Run forward and backward of every op *doc* uses in its training dtype (*dtype* when
    given; float32 for all ops when *doc* is None); returns the number of ops."""
    from engine.core.document import training_settings

    name = dtype or (training_settings(doc)["dtype"] if doc is not None else "float32")
    np_dtype = np.dtype(name).type
    specs = ops_used(doc)
    for done, spec in enumerate(specs, 1):
        _run_once(build_case(spec, spec.examples[0], np_dtype), np_dtype)
        if progress is not None:
            progress(done, len(specs))
    return len(specs)


def _run_once(case: Case, dtype) -> None:
    ex = Executor(None, np.dtype(dtype).name)
    eq = case.equation
    tape = ex.forward({}, case.weights, case.state, training=True, equations=[eq],
                      values=case.values)
    ex.backward(tape, {o: np.ones(np.shape(tape.values[o]), dtype) for o in eq.outputs})
