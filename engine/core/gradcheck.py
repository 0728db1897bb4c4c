"""Gradient checking: backprop against float64 central differences.

error = |analytic − numeric| / max(1e-8, |analytic| + |numeric|), on up to 32 seeded
coordinates per tensor; a node passes at ≤ 1e-5. Integer inputs (labels, token ids) are
not differentiated. The scalar being differentiated is Σ Rₒ·outₒ with fixed random Rₒ,
so every output element contributes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.core.compile import compile_document
from engine.core.op_cases import build_case, example_value
from engine.core.program import Equation, Program
from engine.core.registry import Example, OpSpec
from engine.core.run import Executor, init_weights

EPS = 1e-6
TOLERANCE = 1e-5
MAX_COORDS = 32


@dataclass
class GradReport:
    """Result for one node or op case."""

    id: str
    max_rel_err: float = 0.0
    checked: int = 0  # number of coordinates compared
    worst: str = ""  # which tensor had the worst error
    details: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.max_rel_err <= TOLERANCE

    def to_json(self) -> dict:
        return {"id": self.id, "max_rel_err": self.max_rel_err, "ok": self.ok,
                "checked": self.checked, "worst": self.worst}


def rel_err(a: np.ndarray, n: np.ndarray) -> np.ndarray:
    return np.abs(a - n) / np.maximum(1e-8, np.abs(a) + np.abs(n))


def check_equations(equations: list[Equation], values: dict[str, np.ndarray],
                    weights: dict[str, np.ndarray], state: dict[str, np.ndarray],
                    outputs: list[str], report: GradReport, seed: int = 0) -> GradReport:
    """Compare backprop with central differences for *equations* evaluated on *values*."""
    ex = Executor(None, "float64")
    rng = np.random.default_rng(seed)
    produced = {o for eq in equations for o in eq.outputs}
    free = [v for eq in equations for v in eq.inputs if v is not None and v not in produced]
    free = [v for v in dict.fromkeys(free) if values[v].dtype.kind == "f"]
    wnames = list(dict.fromkeys(n for eq in equations for n in eq.weights.values()))

    def run(vals: dict, ws: dict):
        st = {k: v.copy() for k, v in state.items()}
        return ex.forward({}, ws, st, training=True, seed=seed, equations=equations, values=vals)

    tape = run(values, weights)
    proj = {o: rng.standard_normal(np.shape(tape.values[o])) for o in outputs}

    def objective(vals: dict, ws: dict) -> float:
        t = run(vals, ws)
        return float(sum(np.sum(proj[o] * t.values[o]) for o in outputs))

    wgrads, vgrads = ex.backward(tape, {o: proj[o] for o in outputs})
    targets = [(f"input {v}", values, v, vgrads.get(v)) for v in free]
    targets += [(f"weight {w}", weights, w, wgrads.get(w)) for w in wnames]
    for label, store, key, analytic in targets:
        base = store[key]
        if analytic is None:
            analytic = np.zeros_like(base)
        analytic = np.broadcast_to(analytic, base.shape)
        count = min(MAX_COORDS, base.size)
        coords = rng.choice(base.size, size=count, replace=False) if base.size else []
        worst = 0.0
        for c in coords:
            idx = np.unravel_index(c, base.shape)
            plus, minus = base.copy(), base.copy()
            plus[idx] += EPS
            minus[idx] -= EPS
            fp = objective({**store, key: plus} if store is values else values,
                           {**store, key: plus} if store is weights else weights)
            fm = objective({**store, key: minus} if store is values else values,
                           {**store, key: minus} if store is weights else weights)
            numeric = (fp - fm) / (2 * EPS)
            worst = max(worst, float(rel_err(float(analytic[idx]), numeric)))
        report.details[label] = worst
        report.checked += count
        if worst >= report.max_rel_err:
            report.max_rel_err, report.worst = worst, label
    return report


def check_op(spec: OpSpec, example: Example, seed: int = 0) -> GradReport:
    """Gradient-check one registry op on one example case."""
    case = build_case(spec, example, np.float64, seed)
    label = f"{spec.name}" + (f" ({example.note})" if example.note else "")
    return check_equations([case.equation], case.values, case.weights, case.state,
                           case.equation.outputs, GradReport(label), seed)


def example_feeds(program: Program, seed: int = 0, sizes: dict | None = None,
                  base_dir=None, examples: int = 8) -> dict:
    """Data for every input and data-source node of *program*.

    Input nodes get random data (labels within their ``high``); data sources contribute
    their first *examples* training examples, so labels and ids are realistic.
    """
    from engine.data.datasets import load_dataset

    rng = np.random.default_rng(seed)
    feeds = {}
    for eq in program.equations:
        if eq.op.name == "input":
            feeds[eq.path] = example_value(eq.output_types[0], rng, eq.params.get("high", 0),
                                           sizes=sizes)
        elif eq.op.category == "data":
            ds = load_dataset(eq.op.name, eq.params, base_dir, node=eq.path)
            feeds[eq.path] = tuple(ds.train[p.name][:examples] for p in eq.op.outputs)
    return feeds


def gradcheck_document(doc: dict, node: str | None = None, seed: int = 0,
                       base_dir=None) -> list[GradReport]:
    """Check every node (or just *node*) of a document in float64.

    Data and input nodes are skipped (nothing to differentiate), as are nodes without float
    inputs or weights (metrics on labels still count: their gradient must be right too).
    """
    program = compile_document(doc, "float64")
    ex = Executor(program, "float64")
    weights = init_weights(program.parameters, seed, np.float64)
    state = init_weights(program.state, seed, np.float64)
    feeds = example_feeds(program, seed, base_dir=base_dir)
    tape = ex.forward(feeds, weights, {k: v.copy() for k, v in state.items()}, training=True,
                      seed=seed)
    reports = []
    for nid in program.nodes:
        if node is not None and nid != node:
            continue
        eqs = [e for e in program.equations
               if e.top == nid and e.op.category not in ("data", "optimizer")]
        if not eqs:
            continue
        produced = {o for e in eqs for o in e.outputs}
        needed = {v for e in eqs for v in e.inputs if v is not None and v not in produced}
        vals = {v: tape.values[v] for v in needed}
        report = GradReport(nid)
        check_equations(eqs, vals, weights, state, program.node_outputs[nid], report, seed)
        reports.append(report)
    return reports
