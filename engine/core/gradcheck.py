"""Gradient checking: backprop against float64 central differences.

On up to 32 seeded coordinates per tensor, the analytic gradient *a* is compared with the
numeric one *n*. Two errors are reported: absolute |a − n| and relative
|a − n| / max(1e-8, |a| + |n|). A graph node passes when every coordinate satisfies
|a − n| ≤ ATOL + RTOL·|n| (as ``torch.autograd.gradcheck``), which handles true zeros (e.g.
attention's key bias, whose gradient vanishes since softmax is shift-invariant). The per-op
registry checks hold the relative error to ≤ :data:`TOLERANCE`. Integer inputs (labels,
token ids) are not differentiated. The scalar being differentiated is Σ Rₒ·outₒ with fixed
random Rₒ, so every output element contributes.

Data sources are outside the core: :func:`gradcheck_document` takes their example batches as
*feeds* (``engine.data.examples.example_feeds`` builds them from the datasets). Repeated
values in a node's float inputs are moved apart first (:func:`untie`): a max is not
differentiable at a tie, e.g. ReLU's zeros entering a max-pool.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from engine.base.errors import WiregradError
from engine.core.compile import compile_document
from engine.core.op_cases import build_case, example_value
from engine.core.program import Equation, Program
from engine.core.registry import Example, OpSpec
from engine.core.run import Executor, init_weights

EPS = 1e-6
TOLERANCE = 1e-5  # relative error allowed in the per-op registry checks
ATOL, RTOL = 1e-5, 1e-3  # graph-level check: |a - n| <= ATOL + RTOL * |n|
MAX_COORDS = 32
TIE_SPREAD = 0.1  # ties in a node's inputs are broken by offsets up to this × its scale

Feeds = dict | Callable[[Program], dict]


@dataclass
class GradReport:
    """Result for one node or op case."""

    id: str
    max_rel_err: float = 0.0
    max_abs_err: float = 0.0
    max_excess: float = 0.0  # max |a - n| / (ATOL + RTOL·|n|): passes at ≤ 1
    checked: int = 0  # number of coordinates compared
    worst: str = ""  # which tensor had the worst error (by max_excess)
    details: dict[str, float] = field(default_factory=dict)  # tensor -> max relative error

    @property
    def ok(self) -> bool:
        """Every coordinate within ATOL + RTOL·|numeric| (``torch.autograd.gradcheck``)."""
        return self.max_excess <= 1.0

    def to_json(self) -> dict:
        return {"id": self.id, "max_rel_err": self.max_rel_err,
                "max_abs_err": self.max_abs_err, "ok": self.ok, "checked": self.checked,
                "worst": self.worst, "atol": ATOL, "rtol": RTOL}


def rel_err(a: np.ndarray | float, n: np.ndarray | float) -> np.ndarray:
    """|a − n| / max(1e-8, |a| + |n|)."""
    return np.abs(a - n) / np.maximum(1e-8, np.abs(a) + np.abs(n))


def excess(a: np.ndarray | float, n: np.ndarray | float) -> np.ndarray:
    """|a − n| / (ATOL + RTOL·|n|): at most 1 where analytic *a* matches numeric *n*."""
    return np.abs(a - n) / (ATOL + RTOL * np.abs(n))


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
        coords: list[int] = (rng.choice(base.size, size=count, replace=False).tolist()
                             if base.size else [])
        errs = [_coordinate_errors(objective, store, key, values, weights, analytic, c)
                for c in coords]
        _record(report, label, errs)
    return report


def _coordinate_errors(objective: Callable, store: dict, key: str, values: dict,
                       weights: dict, analytic: np.ndarray, c: int) -> tuple[float, ...]:
    """(relative, absolute, excess) error of one coordinate *c* of ``store[key]``."""
    base = store[key]
    idx = np.unravel_index(c, base.shape)
    fs = []
    for step in (EPS, -EPS):
        moved = np.array(base)  # a copy that is an array even where *base* is a numpy scalar
        moved[idx] += step
        fs.append(objective({**values, key: moved} if store is values else values,
                            {**weights, key: moved} if store is weights else weights))
    numeric = (fs[0] - fs[1]) / (2 * EPS)
    a = float(analytic[idx])
    return float(rel_err(a, numeric)), abs(a - numeric), float(excess(a, numeric))


def _record(report: GradReport, label: str, errs: list[tuple[float, ...]]) -> None:
    """Fold one tensor's coordinate errors into *report*."""
    rel = max((e[0] for e in errs), default=0.0)
    report.details[label] = rel
    report.checked += len(errs)
    report.max_rel_err = max(report.max_rel_err, rel)
    report.max_abs_err = max(report.max_abs_err, max((e[1] for e in errs), default=0.0))
    worst = max((e[2] for e in errs), default=0.0)
    if worst >= report.max_excess:
        report.max_excess, report.worst = worst, label


def check_op(spec: OpSpec, example: Example, seed: int = 0) -> GradReport:
    """Gradient-check one registry op on one example case."""
    case = build_case(spec, example, np.float64, seed)
    label = f"{spec.name}" + (f" ({example.note})" if example.note else "")
    return check_equations([case.equation], case.values, case.weights, case.state,
                           case.equation.outputs, GradReport(label), seed)


def input_feeds(program: Program, seed: int = 0, sizes: dict | None = None) -> dict:
    """Random data for every ``input`` node of *program* (labels within their ``high``)."""
    rng = np.random.default_rng(seed)
    return {eq.path: example_value(eq.output_types[0], rng, eq.params.get("high", 0),
                                   sizes=sizes)
            for eq in program.equations if eq.op.name == "input"}


def _resolve_feeds(program: Program, seed: int, feeds: Feeds | None) -> dict:
    """*feeds* (or what the callable gives for *program*); every data source must be fed."""
    if callable(feeds):
        feeds = feeds(program)
    feeds = dict(feeds) if feeds is not None else input_feeds(program, seed)
    for eq in program.equations:
        if eq.op.category == "data" and eq.path not in feeds:
            raise WiregradError("gradcheck needs example data for this data source (pass "
                                "feeds, e.g. engine.data.examples.example_feeds)", node=eq.path)
    return feeds


def gradcheck_document(doc: dict, node: str | None = None, seed: int = 0,
                       feeds: Feeds | None = None) -> list[GradReport]:
    """Check every node (or just *node*) of a document in float64.

    *feeds* maps each data-source and input node to its example batch, or is a callable
    taking the compiled program and returning that mapping; when None, input nodes get
    random data and a graph with data sources is refused. Data and input nodes are skipped
    (nothing to differentiate), as are nodes without float inputs or weights (metrics on
    labels still count: their gradient must be right too).
    """
    if node is not None and node not in {n.get("id") for n in doc.get("nodes", [])}:
        raise WiregradError("no such node in the graph", node=node)
    program = compile_document(doc, "float64")
    ex = Executor(program, "float64")
    weights = init_weights(program.parameters, seed, np.float64)
    state = init_weights(program.state, seed, np.float64)
    feeds = _resolve_feeds(program, seed, feeds)
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
        # np.asarray: an op on 0-d arrays (``add`` of two sums) may give a numpy scalar
        vals = {v: untie(np.asarray(tape.values[v]), np.random.default_rng([seed, i]))
                for i, v in enumerate(sorted(needed))}
        report = GradReport(nid)
        check_equations(eqs, vals, weights, state, program.node_outputs[nid], report, seed)
        reports.append(report)
    return reports


def untie(a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """*a* with repeated float values moved apart by positive offsets (up to TIE_SPREAD of
    its largest magnitude): a max or a sort is not differentiable where values tie (ReLU's
    zeros into a max-pool), so the check is made at a nearby point where it is."""
    if a.dtype.kind != "f" or a.size < 2:
        return a
    _, inverse, counts = np.unique(a, return_inverse=True, return_counts=True)
    tied = counts[inverse.reshape(a.shape)] > 1
    if not tied.any():
        return a
    scale = float(np.max(np.abs(a[np.isfinite(a)]), initial=0.0)) or 1.0
    out = a.copy()
    out[tied] += rng.uniform(0.0, TIE_SPREAD * scale, int(tied.sum()))
    return out


def summarize(reports: list[GradReport]) -> dict:
    """``{"ok", "nodes": [report JSON, ...], "atol", "rtol"}`` for the API and the worker."""
    return {"ok": all(r.ok for r in reports), "nodes": [r.to_json() for r in reports],
            "atol": ATOL, "rtol": RTOL}
