"""Two-core training steps: the rows of a batch split into parts that run forward and backward
at the same time, one thread each, with single-threaded BLAS; their gradients are then summed
with the loss's weights.

A static graph says ahead of time whether this is exact. :func:`analyse` follows the batch axis
from the data sources to the loss through every equation's ``batch_rule``
(:mod:`engine.ops.batch_rules`): each op must keep examples apart along it (row-wise) and the loss
must be a mean over the batch's elements. Then the loss of the whole batch is the count-weighted
mean of the parts' losses, and its gradient the same weighted sum of theirs: the same numbers
up to float rounding. Anything that mixes examples (batch norm, a reduction over the batch)
keeps the graph on the unsplit path, with the reason in :attr:`SplitDecision.reason`.

Why threads over rows instead of BLAS's own threads: the small GEMMs of these models split
poorly, and between two GEMMs OpenBLAS's second thread spins on the other core, which makes
every element-wise kernel, the attention's small products and the executor's Python run on one
core. Each part on its own core runs all of that in parallel (kernels and BLAS release the GIL).
"""

from __future__ import annotations

import contextlib
import math
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

import numpy as np

from engine.core.program import Equation, Program, off_loss_path
from engine.core.registry import TensorType
from engine.ops import batch_rules
from engine.ops.dims import bind_symbols, factor

MAX_WAYS = 4  # measured on 2 cores; with more threads BLAS keeps them (one unsplit step)
MIN_PART_FLOPS = 20e6  # forward FLOPs per part below which the thread hand-off does not pay
# Forward FLOPs per equation and part below which the parts mostly wait for each other's GIL
# (per-op Python work) instead of computing at once. Measured on 2 quiet cores, wall per step,
# split vs whole: seq2seq_dates (0.2 MFLOP per equation and part) 17.0–23.8 vs 12.3–12.9 ms;
# char_lstm (1.9) 31.1–31.3 vs 39.4–41.3 ms; the char GPT (6.0) gains as before.
MIN_EQUATION_FLOPS = 0.5e6

# Python's GIL switch interval while the parts run (default 5 ms). A part that waits for the
# GIL asks the holder to drop it after this long; at 0.1–1 ms the parts' voluntary context
# switches halve (char-GPT split step, 2 quiet cores: 86–102 → 44–59 per step) and the step's
# wall per unit of CPU (wall ÷ half the process CPU) falls from 1.070–1.080 to 1.048–1.071.
SWITCH_INTERVAL = 0.25e-3

# The optimizer's step on a share of the summed gradients, given the squared global norm.
Update = Callable[[float, dict[str, np.ndarray]], None]


@dataclass(frozen=True)
class SplitDecision:
    """Whether a graph's training step can run as independent batch parts."""

    symbol: str | None  # the batch symbol ("B") when it can
    loss_eq: str | None = None  # path of the equation that averages the loss
    reason: str | None = None  # why it cannot
    data: tuple[str, ...] = ()  # the data sources on the loss path (their feeds are split)

    @property
    def ok(self) -> bool:
        return self.reason is None


def _batch_axis(t: TensorType, symbol: str) -> int | None:
    """The axis of *t* whose size has *symbol* as a factor (``B`` or ``B*T``), if exactly one."""
    hits = [i for i, d in enumerate(t.shape) if symbol in factor(d)[1]]
    return hits[0] if len(hits) == 1 else None


def _where(eq: Equation) -> str:
    return f"'{eq.op.name}' at {eq.path}"


def analyse(program: Program, loss_value: str, skip: frozenset[str] | None = None
            ) -> SplitDecision:
    """Follow the batch axis from the data sources to *loss_value* (see the module doc),
    through every equation a step runs: all but *skip* (default: those off the loss path,
    :func:`engine.core.program.off_loss_path`)."""
    skip = off_loss_path(program, loss_value) if skip is None else skip
    eqs = [eq for eq in program.equations if eq.path not in skip]
    symbol: str | None = None
    axes: dict[str, int] = {}  # value depending on the batch -> its batch axis
    loss_eq: str | None = None
    data: list[str] = []
    for eq in eqs:
        if eq.op.category == "data":
            data.append(eq.path)
            for name, t in zip(eq.outputs, eq.output_types):
                lead = t.shape[0] if t.shape else None
                if not (isinstance(lead, str) and lead.isidentifier()):
                    return SplitDecision(None, reason=f"{_where(eq)} gives {name} without a "
                                                      "batch axis first")
                if symbol not in (None, lead):
                    return SplitDecision(None, reason=f"data sources disagree on the batch "
                                                      f"symbol ({symbol} vs {lead})")
                symbol = lead
                axes[name] = 0
            continue
        in_axes = [axes.get(v) if v is not None else None for v in eq.inputs]
        if all(a is None for a in in_axes):
            continue  # weights, constants: the same in every part
        if symbol is None:
            return SplitDecision(None, reason="no data source feeds the loss")
        if eq.state:
            return SplitDecision(None, reason=f"{_where(eq)} keeps running statistics over "
                                              "the batch")
        out_axes = [_batch_axis(t, symbol) for t in eq.output_types]
        verdict = (eq.op.batch_rule(eq.params, in_axes, out_axes, eq.input_types)
                   if eq.op.batch_rule is not None else None)
        if verdict is None:
            return SplitDecision(None, reason=f"{_where(eq)} mixes the examples of a batch")
        if verdict == batch_rules.MEAN:
            if eq.outputs[0] != loss_value:
                return SplitDecision(None, reason=f"{_where(eq)} averages over the batch "
                                                  "before the loss")
            loss_eq = eq.path
        elif verdict == batch_rules.ROWWISE:
            for name, axis in zip(eq.outputs, out_axes):
                if axis is None:
                    return SplitDecision(None, reason=f"{_where(eq)} loses track of the batch "
                                                      f"axis in {name}")
                axes[name] = axis
        elif verdict != batch_rules.SHAPE_ONLY:
            raise ValueError(f"unknown batch rule verdict {verdict!r} from {eq.op.name}")
    if loss_eq is None:
        return SplitDecision(None, reason="the loss is not a mean over the batch")
    return SplitDecision(symbol, loss_eq, data=tuple(data))


def feed_sizes(program: Program, feeds: dict[str, tuple]) -> dict[str, int]:
    """The symbols' sizes (B, T) in a batch, read off the data sources' arrays."""
    sizes: dict[str, int] = {}
    for eq in program.equations:
        if eq.op.category == "data" and eq.path in feeds:
            for t, arr in zip(eq.output_types, feeds[eq.path]):
                sizes.update(bind_symbols(t.shape, np.shape(arr)))
    return sizes


def step_flops(program: Program, sizes: dict[str, int], only: str | None = None) -> float:
    """Forward FLOPs of one step with the symbols at *sizes* (a symbol not bound counts 1);
    of the ops named *only* when given."""

    def concrete(t: TensorType | None) -> TensorType | None:
        if t is None:
            return None
        dims = []
        for d in t.shape:
            coef, syms = factor(d)
            dims.append(coef * math.prod(sizes.get(s, 1) ** k for s, k in syms.items()))
        return TensorType(tuple(dims), t.dtype)

    total = 0.0
    for eq in program.equations:
        if eq.op.flops is not None and (only is None or eq.op.name == only):
            with contextlib.suppress(Exception):  # a counter that cannot size it adds nothing
                total += float(eq.op.flops([concrete(t) for t in eq.input_types],
                                           [concrete(t) for t in eq.output_types], eq.params))
    return total


def blas_threads() -> int:
    """The BLAS thread count in effect now (1 when no BLAS library is found)."""
    from threadpoolctl import threadpool_info

    counts = [lib.get("num_threads") or 1 for lib in threadpool_info()
              if lib.get("user_api") == "blas"]
    return max(counts, default=1)


def choose_ways(threads: int, rows: int, flops: float, equations: int = 1) -> int:
    """Parts for a step: one per thread (2…MAX_WAYS), each with at least one row and enough
    work to pay for the hand-off — in all (*flops* forward) and per equation of the program
    (*equations*) — 1 means unsplit."""
    if not 2 <= threads <= MAX_WAYS:
        return 1
    ways = min(threads, rows)
    while ways > 1 and (flops / ways < MIN_PART_FLOPS
                        or flops / ways / max(equations, 1) < MIN_EQUATION_FLOPS):
        ways -= 1
    return ways


def batch_rows(feeds: dict[str, tuple], nodes: tuple[str, ...]) -> int:
    """Rows of the batch the data sources *nodes* fed (they must agree)."""
    rows = {len(a) for node in nodes for a in feeds.get(node, ())}
    if len(rows) != 1:
        raise ValueError(f"data sources on the loss path disagree on the batch size: "
                         f"{sorted(rows)}")
    return rows.pop()


def split_rows(feeds: dict[str, tuple], ways: int, nodes: tuple[str, ...] | None = None
               ) -> list[dict[str, tuple]]:
    """*feeds* (node -> arrays with the batch first) as *ways* contiguous row blocks; only
    the *nodes* given (default: all) are cut, the others go whole to every part (a source
    off the loss path, which a training step does not run)."""
    nodes = tuple(feeds) if nodes is None else nodes
    bounds = np.linspace(0, batch_rows(feeds, nodes), ways + 1).round().astype(int)
    return [{node: (tuple(a[lo:hi] for a in arrays) if node in nodes else arrays)
             for node, arrays in feeds.items()}
            for lo, hi in zip(bounds[:-1], bounds[1:])]


class BatchSplit:
    """Runs training steps of one executor as *ways* concurrent batch parts."""

    def __init__(self, executor, decision: SplitDecision, loss_value: str, ways: int) -> None:
        from threadpoolctl import ThreadpoolController

        self.executor = executor
        self.loss_value = loss_value
        self.loss_eq = decision.loss_eq
        self.data = decision.data
        self.ways = ways
        self._pool = ThreadPoolExecutor(ways - 1, thread_name_prefix="wiregrad-part")
        self._blas = ThreadpoolController().select(user_api="blas")
        self._sizes = {name: info.size for name, info in executor.program.parameters.items()}
        self._chunks: dict[tuple, list[list[str]]] = {}

    def fits(self, feeds: dict) -> bool:
        """Whether this batch has a row for every part (an epoch's short last batch may not:
        the trainer runs that one unsplit)."""
        return batch_rows(feeds, self.data) >= self.ways

    def close(self) -> None:
        """Stop the part threads (idle ones also end when the splitter is collected)."""
        self._pool.shutdown(wait=True)

    def _spread(self, tasks: list) -> list:
        """Run the zero-argument *tasks* (one per part) at once, the first on this thread.
        Every task is waited for; the first error in part order is raised."""
        futures = [self._pool.submit(task) for task in tasks[1:]]
        results, error = [], None
        for get in [tasks[0]] + [f.result for f in futures]:
            try:
                results.append(get())
            except BaseException as exc:  # re-raised once every part has stopped
                error = error or exc
        if error is not None:
            raise error
        return results

    def run(self, fn: Callable[[list[str]], object], names: list[str]) -> list:
        """``fn(chunk)`` for *names* cut into one chunk per part of about equal parameter
        count, at once (the optimizer's per-parameter work)."""
        return self._spread([partial(fn, chunk) for chunk in self._chunks_of(names)])

    def step(self, feeds: dict, params: dict, state: dict, seed: int,
             skip: frozenset[str], update: Update | None = None
             ) -> tuple[float, dict | None, float, list]:
        """Forward and backward of every part; returns ``(loss, summed weight gradients,
        their squared global norm, tapes)``. The gradients are None when a part's loss is not
        finite (the caller looks for the op in the tapes).

        Each part's thread, once every part has its gradients (a barrier), sums its own share
        of the weights' gradients at once: no second hand-off to the pool for the sum. With
        *update* (the optimizer's step), the parts meet again once every share's squares are
        known and, when the global norm is finite, each calls ``update(squared norm, its
        share)`` and frees its tape (returned empty): the main thread then neither hands the
        optimizer's work to the pool nor frees the tapes alone (~0.24 ms a char-GPT step)."""
        parts = split_rows(feeds, self.ways, self.data)
        joint = _Joint(self.ways)
        with self._blas.limit(limits=1), switch_interval(SWITCH_INTERVAL):
            shares = self._spread([partial(self._part_and_share, joint, parts[i], params, state,
                                           seed, skip, i, update) for i in range(self.ways)])
        outcomes = joint.outcomes
        weights = _weights([o[1] for o in outcomes])
        loss = math.fsum(w * o[0] for w, o in zip(weights, outcomes))
        tapes = [o[3] for o in outcomes]
        if any(o[2] is None for o in outcomes):
            return loss, None, math.nan, tapes
        summed = {k: v for piece, _ in shares for k, v in piece.items()}
        return loss, summed, math.fsum(sq for _, sq in shares), tapes

    def _part_and_share(self, joint: _Joint, feeds: dict, params: dict, state: dict,
                        seed: int, skip: frozenset[str], index: int,
                        update: Update | None = None) -> tuple[dict[str, np.ndarray], float]:
        """Part *index*'s forward and backward, then (after every part's) its share of the
        summed gradients: ``(name -> sum, their sum of squares)``; empty when a part's loss
        is not finite. Then, with *update*, its share of the optimizer step (see
        :meth:`step`). A failing part breaks the barrier, so the others stop too."""
        try:
            joint.outcomes[index] = self._part(feeds, params, state, seed, skip, index)
        except BaseException:
            joint.barrier.abort()
            raise
        try:
            joint.barrier.wait()
        except threading.BrokenBarrierError:  # another part failed: its error is raised
            return {}, 0.0
        outcomes = joint.outcomes
        if any(o[2] is None for o in outcomes):
            return {}, 0.0
        try:
            grads = [o[2] for o in outcomes]
            names = list(dict.fromkeys(n for g in grads for n in g))
            chunk = self._chunks_of(names)[index]
            share = combine(grads, _weights([o[1] for o in outcomes]), self.executor.dtype,
                            chunk)
        except BaseException:
            joint.barrier.abort()
            raise
        if update is not None:
            self._update_share(joint, index, share, update)
        return share

    def _update_share(self, joint: _Joint, index: int, share: tuple[dict, float],
                      update: Update) -> None:
        """Once every part's squares are in (the barrier again), ``update(squared global
        norm, this part's summed gradients)`` when the norm is finite; this part's tape is
        freed then (the caller needs it only to find a non-finite value)."""
        joint.squares[index] = share[1]
        try:
            joint.barrier.wait()
        except threading.BrokenBarrierError:  # another part failed: its error is raised
            return
        squares = math.fsum(joint.squares)  # the same sum, in the same order, as step's
        if not math.isfinite(squares):
            return
        update(squares, share[0])
        tape = joint.outcomes[index][3]
        tape.values.clear()
        tape.contexts.clear()

    def _chunks_of(self, names: list[str]) -> list[list[str]]:
        """*names* cut into one chunk per part of about equal parameter count (cached)."""
        key = tuple(names)
        chunks = self._chunks.get(key)
        if chunks is None:
            chunks = self._chunks[key] = balanced(names, self._sizes, self.ways)
        return chunks

    def _part(self, feeds, params, state, seed, skip, index) -> tuple:
        """``(loss, count, weight gradients or None, tape)`` of one part."""
        ex = self.executor
        tape = ex.forward(feeds, params, state, training=True,
                          seed=(seed + index * 1_000_003) & 0x7FFFFFFF, skip=skip)
        loss = float(tape.values[self.loss_value])
        ctx = next(c for c in reversed(tape.contexts) if c.eq.path == self.loss_eq)
        count = (ctx.eq.op.mean_count(ctx) if ctx.eq.op.mean_count is not None
                 else int(np.size(tape.values[ctx.eq.inputs[0]])))
        if not np.isfinite(loss):
            return loss, count, None, tape
        grads, _ = ex.backward(tape, {self.loss_value: np.ones((), ex.dtype)}, release=True)
        return loss, count, grads, tape


class switch_interval:  # noqa: N801  (used like a function: ``with switch_interval(t):``)
    """A block with ``sys.setswitchinterval(seconds)``, restored when the last of nested or
    concurrent blocks (two trainers' threads) leaves."""

    _lock = threading.Lock()
    _depth = 0
    _before = 0.005

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __enter__(self) -> None:
        cls = switch_interval
        with cls._lock:
            if cls._depth == 0:
                cls._before = sys.getswitchinterval()
                sys.setswitchinterval(self.seconds)
            cls._depth += 1

    def __exit__(self, *exc) -> None:
        cls = switch_interval
        with cls._lock:
            cls._depth -= 1
            if cls._depth == 0:
                sys.setswitchinterval(cls._before)


class _Joint:
    """What the parts of one step share: their outcomes and the barrier they meet at."""

    def __init__(self, ways: int) -> None:
        self.outcomes: list = [None] * ways  # per part: (loss, count, grads, tape)
        self.squares: list[float] = [0.0] * ways  # per part: its share's sum of squares
        self.barrier = threading.Barrier(ways)


def _weights(counts: list[int]) -> list[float]:
    """Each part's weight in the whole batch's mean: its share of the loss's count."""
    total = sum(counts)
    return [c / total for c in counts] if total > 0 else [1.0 / len(counts)] * len(counts)


def balanced(names: list[str], sizes: dict[str, int], parts: int) -> list[list[str]]:
    """*names* in *parts* chunks of about equal total size (largest first to the lightest)."""
    chunks: list[list[str]] = [[] for _ in range(parts)]
    loads = [0] * parts
    for name in sorted(names, key=lambda n: -sizes.get(n, 1)):
        i = loads.index(min(loads))
        chunks[i].append(name)
        loads[i] += sizes.get(name, 1)
    return chunks


def combine(grads: list[dict[str, np.ndarray]], weights: list[float], dtype,
            names: list[str] | None = None) -> tuple[dict[str, np.ndarray], float]:
    """Σ wᵢ·gradsᵢ per weight name (all, or *names*), as fresh C-contiguous arrays of *dtype*
    (the optimizer scales and steps them in place), and their float64 sum of squares."""
    from engine.kernels.optim import weighted_sum_into
    from engine.ops.kernel_choice import call_kernel

    def flat(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a, dtype).reshape(-1)

    out: dict[str, np.ndarray] = {}
    squares = 0.0
    for name in names if names is not None else dict.fromkeys(n for g in grads for n in g):
        terms = [(flat(g[name]), w) for g, w in zip(grads, weights) if name in g]
        total = np.empty(np.shape(next(g[name] for g in grads if name in g)), dtype)
        acc = total.reshape(-1)
        if len(terms) == 1:
            (a, wa), (b, wb) = terms[0], (terms[0][0], 0.0)
        else:
            (a, wa), (b, wb) = terms[:2]
        sq = call_kernel(weighted_sum_into, acc, a, dtype.type(wa), b, dtype.type(wb))
        for g, w in terms[2:]:
            sq = call_kernel(weighted_sum_into, acc, acc, dtype.type(1.0), g, dtype.type(w))
        squares += sq
        out[name] = total
    return out, squares
