"""Executing a :class:`~engine.core.program.Program`: forward keeps what backward needs;
backward walks the equations in reverse and accumulates gradients where values fan out.
"""

from __future__ import annotations

import gc
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from engine.base.errors import WiregradError
from engine.core import lent
from engine.core.init import initial_value, param_rng
from engine.core.program import Equation, Program, WeightInfo

FLOAT_DTYPES: dict[str, type[np.floating]] = {"float32": np.float32, "float64": np.float64}


class Context:
    """Per-equation scratch space handed to an op's forward and backward."""

    __slots__ = ("eq", "weights", "weight_grads", "state", "training", "_rng", "_rng_seed",
                 "feed", "saved", "needs_input_grad", "dtype", "wiring")

    def __init__(self, eq: Equation, weights: dict, state: dict, training: bool,
                 rng: np.random.Generator | None, feed=None, dtype=np.float32,
                 rng_seed: list[int] | None = None, wiring: _Wiring | None = None) -> None:
        self.eq = eq
        self.wiring = wiring  # the executor's prepared reading of eq (None: built on demand)
        self.weights = weights  # spec name -> array
        self.weight_grads: dict[str, np.ndarray] = {}
        self.state = state  # spec name -> array (updated in place by e.g. batch norm)
        self.training = training
        self._rng = rng
        self._rng_seed = rng_seed  # seeds a generator on first use (most ops never draw)
        self.feed = feed
        self.saved: tuple = ()
        self.needs_input_grad: tuple = ()
        self.dtype = dtype  # the program's float dtype

    @property
    def rng(self) -> np.random.Generator | None:
        if self._rng is None and self._rng_seed is not None:
            self._rng = np.random.default_rng(self._rng_seed)
        return self._rng

    @rng.setter
    def rng(self, value: np.random.Generator | None) -> None:
        self._rng = value

    def save(self, *arrays) -> None:
        self.saved = arrays


@dataclass
class Tape:
    """What one forward pass produced: every value and each equation's context."""

    values: dict[str, np.ndarray]
    contexts: list[Context] = field(default_factory=list)
    # (value, weight's full name) of each ``weight_value`` equation run (no context of its
    # own): the backward hands the value's gradient to the weight
    weight_values: list[tuple[str, str]] = field(default_factory=list)


class collection_paused:  # noqa: N801  (used like a function: ``with collection_paused():``)
    """A block (a training step) in which Python's cyclic garbage collector does not run.

    A step allocates a few thousand small containers (contexts, their dicts, the tape) that
    live until its backward releases them, so the young generation's threshold trips about
    once per char-GPT step, a ~0.14 ms pass holding the GIL while the other batch part waits;
    by the step's end they are freed by reference counting and the count is back down. Nested
    and concurrent blocks (two trainers' threads) re-enable it only when the last one leaves,
    and only if it was enabled before the first."""

    _lock = threading.Lock()
    _depth = 0
    _was_enabled = False

    def __enter__(self) -> None:
        cls = collection_paused
        with cls._lock:
            if cls._depth == 0:
                cls._was_enabled = gc.isenabled()
                gc.disable()
            cls._depth += 1

    def __exit__(self, *exc) -> None:
        cls = collection_paused
        with cls._lock:
            cls._depth -= 1
            if cls._depth == 0 and cls._was_enabled:
                gc.enable()


def init_weights(infos: dict[str, WeightInfo], seed: int, dtype) -> dict[str, np.ndarray]:
    """Fresh values for every weight (or state tensor), seeded per name; refused before
    allocating when they would not fit in memory (:mod:`engine.core.memory`)."""
    from engine.core.memory import check_weights_memory

    check_weights_memory(infos, np.dtype(dtype).itemsize)
    return {name: initial_value(w.init, w.shape, w.init_params, param_rng(seed, name), dtype)
            for name, w in infos.items()}


class _Wiring:
    """What the executor's loops read from an equation, prepared once per program: tuples
    instead of lists, weight/state name pairs, whether it is a data source."""

    __slots__ = ("eq", "forward", "inputs", "outputs", "weights", "state", "data", "path",
                 "needs", "backward", "scatter", "weight_names", "weight_value")

    def __init__(self, eq: Equation) -> None:
        if eq.op.forward is None:  # only layers lack one, and compile expands them
            raise WiregradError(f"'{eq.op.name}' has no forward: a layer left unexpanded",
                             node=eq.top)
        self.eq = eq
        self.forward: Callable = eq.op.forward
        self.inputs = tuple(eq.inputs)
        self.outputs = tuple(eq.outputs)
        self.weights = tuple(eq.weights.items())
        self.state = tuple(eq.state.items())
        self.data = eq.op.category == "data"
        self.path = eq.path
        self.needs: tuple = ()  # per input: does it depend on a weight? () = all count
        self.backward: Callable | None = eq.op.backward
        self.scatter: Callable | None = eq.op.scatter_grad
        self.weight_names: dict[str, str] = dict(eq.weights)  # spec name -> full name
        # a ``weight_value`` op (parameter): its weight's full name, read without a context
        self.weight_value: str | None = (next(iter(eq.weights.values()))
                                         if eq.op.weight_value and eq.weights else None)


def _mark_needs(wirings: list[_Wiring]) -> list[_Wiring]:
    """Set each wiring's ``needs``: which inputs depend on a weight, so a backward may skip
    the gradient of data-only inputs (e.g. the first convolution's images)."""
    tainted: set[str] = set()
    for w in wirings:
        w.needs = tuple(v is not None and v in tainted for v in w.inputs)
        if w.weights or any(w.needs):
            tainted.update(w.outputs)
    return wirings


# What an op's numpy code raises when its inputs do not fit it at run time: shapes that
# inference could not pin down (a symbolic batch against a folded B·T), a bad index.
_OP_FAILURES = (ValueError, IndexError, TypeError, ArithmeticError)


def _op_failed(w: _Wiring | None, env: dict, exc: Exception) -> Exception:
    """*exc*, raised inside an op, as a :class:`WiregradError` naming the op, its node and its
    inputs' shapes (a WiregradError is passed on as it is)."""
    if isinstance(exc, WiregradError) or w is None:
        return exc
    shapes = ", ".join(str(list(np.shape(env[v]))) if v in env else "-"
                       for v in w.inputs if v is not None)
    return WiregradError(f"'{w.eq.op.name}' at {w.path} failed on inputs of shapes {shapes}: "
                         f"{exc}", node=w.eq.top)


class Executor:
    """Runs a program forward and backward on numpy arrays."""

    def __init__(self, program: Program | None, dtype: str | None = None) -> None:
        self.program = program
        if dtype is None:
            if program is None:
                raise ValueError("an executor without a program needs a dtype")
            dtype = program.dtype
        self.dtype = np.dtype(FLOAT_DTYPES[dtype])
        self._wiring: tuple[list, list[_Wiring]] | None = None  # (equations, their wiring)

    def _wired(self, equations: list[Equation] | None) -> list[_Wiring]:
        if equations is not None:
            return [_Wiring(eq) for eq in equations]
        if self.program is None:
            raise ValueError("this executor has no program: pass the equations to run")
        eqs = self.program.equations
        if self._wiring is None or self._wiring[0] is not eqs or len(self._wiring[1]) != len(eqs):
            self._wiring = (eqs, _mark_needs([_Wiring(eq) for eq in eqs]))
        return self._wiring[1]

    def forward(self, feeds: dict[str, np.ndarray], weights: dict[str, np.ndarray],
                state: dict[str, np.ndarray] | None = None, *, training: bool = True,
                seed: int = 0, equations: list[Equation] | None = None,
                values: dict[str, np.ndarray] | None = None,
                skip: frozenset[str] = frozenset()) -> Tape:
        """Evaluate *equations* (default: all). *values* pre-seeds values (e.g. sub-programs).
        Equations whose path is in *skip* are not run (each keeps its random stream)."""
        state = state if state is not None else {}
        tape = Tape(dict(values or {}))
        env = tape.values
        contexts = tape.contexts
        dtype, seed32 = self.dtype, seed & 0xFFFFFFFF
        weight_values = tape.weight_values
        w: _Wiring | None = None
        try:
            for index, w in enumerate(self._wired(equations)):
                if skip and w.path in skip:
                    continue
                if w.weight_value is not None:  # a parameter: the weight is the value
                    env[w.outputs[0]] = weights[w.weight_value]
                    weight_values.append((w.outputs[0], w.weight_value))
                    continue
                eq = w.eq
                ctx = Context(
                    eq,
                    {k: weights[n] for k, n in w.weights} if w.weights else {},
                    {k: state[n] for k, n in w.state} if w.state else {},
                    training,
                    None,
                    feeds.get(w.path) if w.data else None,
                    dtype,
                    [seed32, index],
                    w,
                )
                outs = w.forward(ctx, eq.params, *[env[v] if v is not None else None
                                                   for v in w.inputs])
                if isinstance(outs, tuple):
                    for name, arr in zip(w.outputs, outs):
                        env[name] = arr
                else:
                    env[w.outputs[0]] = outs
                ctx.needs_input_grad = w.needs
                contexts.append(ctx)
        except _OP_FAILURES as exc:
            raise _op_failed(w, env, exc) from exc
        return tape

    def backward(self, tape: Tape, seeds: dict[str, np.ndarray], *,
                 release: bool = False) -> tuple[dict, dict]:
        """Reverse-mode pass from *seeds* (value name → gradient).

        Returns ``(weight_grads by full name, value_grads by value name)``. With *release*
        (the trainer's step) each equation's saved arrays and its outputs' gradients are
        dropped as soon as its backward ran, which lowers the peak memory; the tape cannot
        be differentiated again and value_grads then holds only the graph's inputs.
        """
        grads: dict[str, np.ndarray] = {k: np.asarray(v) for k, v in seeds.items()}
        weight_grads: dict[str, np.ndarray] = {}
        owned: set[int] = set()  # ids of sums this pass allocated (safe to add into)
        producers: dict[str, Context] | None = None  # value -> its context, on first scatter
        fresh: dict[str, _Fresh] = {}  # scatter sums written only at disjoint positions
        for ctx in reversed(tape.contexts):
            w = ctx.wiring if ctx.wiring is not None else _Wiring(ctx.eq)
            outputs = w.outputs
            if fresh:
                for o in outputs:
                    _settle(grads, o, fresh, owned)
            if len(outputs) == 1:  # the common case, without list building
                g = grads.get(outputs[0])
                if g is None:
                    continue
                owned.discard(id(g))  # handed to an op, which may pass it on: not ours alone
                gouts = [g]
            else:
                maybe = [grads.get(o) for o in outputs]
                if all(g is None for g in maybe):
                    continue
                for g in maybe:
                    owned.discard(id(g))
                gouts = [g if g is not None else np.zeros_like(tape.values[o])
                         for g, o in zip(maybe, outputs)]
            if w.backward is None:
                continue
            scatter = w.scatter(ctx) if w.scatter is not None else None
            if scatter is not None and w.inputs[0] is not None:
                if producers is None:
                    producers = {o: c for c in tape.contexts for o in c.eq.outputs}
                _accumulate_at(grads, w.inputs[0], scatter, gouts[0], owned,
                               producers.get(w.inputs[0]), fresh, adopt=release)
                if release:
                    ctx.saved = ()
                    grads.pop(outputs[0], None)
                continue
            if not release:  # inspection and gradient checks want every input's gradient
                ctx.needs_input_grad = ()
            gins = w.backward(ctx, w.eq.params, *gouts)
            if not isinstance(gins, tuple):
                gins = (gins,)
            if release:
                del gouts
                ctx.saved = ()
                for o in outputs:
                    grads.pop(o, None)
            for name, g in zip(w.inputs, gins):
                if name is None or g is None:
                    continue
                if name in grads:
                    _accumulate(grads, name, g, owned, fresh)
                else:  # the first gradient (the common case): no sum yet, as _accumulate
                    grads[name] = g
                    owned.discard(id(g))  # a dead sum's id may have been reused by this array
                    if fresh:
                        fresh.pop(name, None)
            if ctx.weight_grads:
                names = w.weight_names
                for spec_name, g in ctx.weight_grads.items():
                    full = names[spec_name]
                    if full in weight_grads:  # a weight shared by several equations
                        _accumulate(weight_grads, full, g, owned)
                    else:
                        weight_grads[full] = g
                        owned.discard(id(g))
        for name in list(fresh):  # every sum read from here on: no lent one left unsettled
            _settle(grads, name, fresh, owned)
        for value, full in tape.weight_values:  # parameters: their values' summed gradients
            g = grads.pop(value, None) if release else grads.get(value)
            if g is None:
                continue
            if full in weight_grads:
                _accumulate(weight_grads, full, g, owned)
            else:
                weight_grads[full] = g
                owned.discard(id(g))
        return weight_grads, grads


@dataclass
class _Fresh:
    """A scatter sum (by id: holding it would keep it past its release) still zero outside
    the positions written so far along one axis, or, when *lent* (a buffer an op lent,
    :mod:`engine.core.lent`), not yet written there at all: :func:`_settle` zeroes those
    positions before anything reads the sum."""

    ident: int
    axis: int
    written: set[int]
    lent: bool = False


def _settle(store: dict, name: str, fresh: dict, owned: set[int]) -> None:
    """Make a lent scatter sum (see :class:`_Fresh`) an ordinary one before it is read or
    added into: when a position was left unwritten, the written ones move into a fresh
    zero-filled sum of the same layout (the lent buffer is left as it is: its other
    positions may be gradients of other values, still on their way). Nothing for any other
    name."""
    state = fresh.get(name)
    if state is None or not state.lent:
        return
    state.lent = False
    total = store.get(name)
    if total is None or id(total) != state.ident or \
            len(state.written) == total.shape[state.axis]:
        return
    settled = np.zeros_like(total)  # order "K": the same layout
    lead = (slice(None),) * state.axis
    for i in state.written:
        settled[lead + (i,)] = total[lead + (i,)]
    store[name] = settled
    owned.discard(id(total))
    owned.add(id(settled))
    state.ident = id(settled)


def _same_place(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether *a* and *b* are the same elements of memory (shape, strides and address)."""
    return (a.shape == b.shape and a.strides == b.strides and a.dtype == b.dtype
            and lent.address(a) == lent.address(b))


def _adopt(g: np.ndarray, key, shape: tuple, dtype, producer: Context | None):
    """``(sum, (axis, positions))`` when *g* is a view into a buffer an op lent
    (:mod:`engine.core.lent`) that, laid out as :func:`_zeros_in_layout` would lay out the
    scatter's sum, holds *g* at *key* already: the buffer becomes the sum. Else None."""
    base = g.base
    if not isinstance(base, np.ndarray) or base.dtype != dtype or not base.flags.c_contiguous:
        return None
    if base.size != math.prod(shape):
        return None
    total = _in_layout(base, shape, producer)
    picks = _one_axis(key, total.shape)
    if picks is None or not _same_place(total[key], g) or not lent.adopt(base):
        return None
    return total, picks


def _one_axis(key, shape: tuple) -> tuple[int, set[int]] | None:
    """``(axis, positions)`` of an index / slice key that picks along one axis only (the
    ``index`` and ``slice`` ops' keys), else None."""
    if not isinstance(key, tuple) or not key or len(key) > len(shape):
        return None
    *lead, last = key
    if any(k != slice(None) for k in lead):
        return None
    n = shape[len(lead)]
    if isinstance(last, (int, np.integer)) and -n <= last < n:
        return len(lead), {int(last) % n}
    if isinstance(last, slice):
        return len(lead), set(range(*last.indices(n)))
    return None


def _accumulate(store: dict, name: str, g: np.ndarray, owned: set[int],
                fresh: dict | None = None) -> None:
    """Add *g* into ``store[name]``. A gradient an op handed back may be shared (``add``
    returns the same array for both inputs), so the first sum allocates; later ones add in
    place into that sum when shapes and dtypes agree."""
    if fresh:
        _settle(store, name, fresh, owned)
        fresh.pop(name, None)  # the sum gets written everywhere: no longer zero anywhere
    old = store.get(name)
    if old is None:
        store[name] = g
        owned.discard(id(g))  # a dead sum's id may have been reused by this array
    elif id(old) in owned and old.shape == np.shape(g) and old.dtype == np.result_type(old, g):
        np.add(old, g, out=old)
    else:
        total = old + g
        store[name] = total
        owned.add(id(total))


def _accumulate_at(store: dict, name: str, scatter: tuple, g: np.ndarray,
                   owned: set[int], producer: Context | None = None,
                   fresh: dict | None = None, adopt: bool = False) -> None:
    """Add *g* into ``store[name][key]`` (the input gradient of index / slice), in place when
    the sum is ours; otherwise a fresh zero-filled (or copied) sum is allocated first.

    When *name* came out of a ``permute`` (the attention's head split), the sum is laid out
    like the permute's input, so the permute's backward is a contiguous view and a reshape
    after it costs no copy. With *fresh*, writes into a zero-filled sum at positions no
    earlier write touched (q, k and v of one qkv tensor) copy instead of adding: a strided
    ``+=`` reads the zeros back (char-GPT qkv, 3 × 12·4·64·32 floats: 0.21 → 0.09 ms).

    With *adopt* (a releasing pass: no value's gradient is kept for inspection), a first
    gradient that is a view into a buffer an op lent (:mod:`engine.core.lent`), already at
    *key* in the sum's layout, makes that buffer the sum, and later ones found in place are
    only marked written: float32 attention's q, k and v of one qkv projection then cost no
    zeros and no copies (char-GPT split step: the scatter's 0.52 ms of CPU per part gone;
    the step's wall −2 % in the in-process A/B ``bench/step_ab.py lent-gradients``)."""
    key, shape = scatter
    old = store.get(name)
    dtype = g.dtype if old is None else np.result_type(old, g)
    if old is None and fresh is not None and adopt:
        adopted = _adopt(g, key, tuple(shape), dtype, producer)
        if adopted is not None:  # g is in place in a lent buffer: that is the sum
            total, (axis, picks) = adopted
            store[name] = total
            owned.add(id(total))
            fresh[name] = _Fresh(id(total), axis, set(picks), lent=True)
            return
    state = fresh.get(name) if fresh else None
    if fresh and state is not None and state.lent and old is not None \
            and state.ident == id(old):
        picks = _one_axis(key, old.shape)
        if picks is not None and picks[0] == state.axis and not picks[1] & state.written \
                and _same_place(old[key], g):
            state.written |= picks[1]  # written by the op that lent the buffer
            return
        _settle(store, name, fresh, owned)
        old = store.get(name)
    if old is None or id(old) not in owned or old.shape != tuple(shape) or old.dtype != dtype:
        total = _zeros_in_layout(shape, dtype, producer) if old is None else np.array(
            np.broadcast_to(old, shape), dtype=dtype)
        store[name] = total
        owned.add(id(total))
        if fresh is not None:
            fresh.pop(name, None)
            if old is None:
                state = _Fresh(id(total), -1, set())
                fresh[name] = state
        old = total
    picks = _one_axis(key, old.shape) if state is not None and state.ident == id(old) else None
    if picks is not None and state is not None and state.axis in (picks[0], -1) \
            and not picks[1] & state.written:
        old[key] = g  # zeros there: a copy is the sum
        state.axis = picks[0]
        state.written |= picks[1]
        return
    if fresh:
        fresh.pop(name, None)
    old[key] += g


def _in_layout(flat: np.ndarray, shape: tuple, producer: Context | None) -> np.ndarray:
    """The C-ordered *flat* (of *shape*'s size) as an array of *shape* in the layout of a
    scatter's sum: for a permute's output, a transposed view in the permute's input order
    (the permute's backward is then a contiguous view)."""
    if producer is not None and producer.eq.op.name == "permute" and producer.saved:
        perm = producer.saved[0]  # out axis i = input axis perm[i]
        order = [0] * len(perm)
        for i, axis in enumerate(perm):
            order[axis] = shape[i]
        return flat.reshape(order).transpose(perm)
    return flat.reshape(shape)


def _zeros_in_layout(shape: tuple, dtype, producer: Context | None) -> np.ndarray:
    """Zeros of *shape* in the layout of a scatter's sum (:func:`_in_layout`)."""
    return _in_layout(np.zeros(math.prod(shape), dtype), shape, producer)
