"""A cold start's first steps run the numpy twins of the kernels the helper is compiling.

On a fresh install the cold-start helper (:mod:`engine.kernels.precompile`) compiles a graph's
serial kernels on the idle core. Before this module, the main process compiled them too
(forward first, the helper backward, meeting in the middle), so the first step waited for
about half of them: a cold ``wiregrad train spiral_mlp --steps 1`` spent 1.5 s of its 2.2–2.5
s compiling the cross-entropy kernels, ``char_gpt`` 3 of its 4.0–4.2 s on layer norm,
attention, GELU and cross-entropy. Now an op calls its kernel through :func:`call`: while the
helper this process started has the kernel among its jobs and has not yet saved it, the
kernel's numpy twin (registered beside it with :func:`twin`, same arguments, same outputs in
place, equal within the kernel's rounding) runs instead, and Numba is not touched at all. The
op looks into the kernel cache at most every :data:`LOOK_EVERY` seconds and switches to the
kernel once the helper saved it (loaded there in tens of milliseconds); a kernel the helper
was not given, one it failed to compile (it ended without it) or one still missing after
:data:`PATIENCE` seconds of twins compiles here as before.

Without a helper (one core, ``WIREGRAD_PRECOMPILE=0`` as in the test suite, a busy host, the
editor's niced worker, a warm cache) :func:`call` is the kernel itself after one dictionary
look-up. The twins differ from the kernels by rounding only (float32: a few ulps), so a run
that starts cold and one that starts warm agree to that rounding in their first steps.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

LOOK_EVERY = 0.25  # seconds between looks into the on-disk cache for one kernel
# seconds a kernel may run as its twin before this process compiles it after all: a helper
# starved on a busy host (it runs at a lower priority) must not leave a run on the twins
PATIENCE = 20.0
TWINS: dict[Any, Callable] = {}  # Numba dispatcher → its numpy twin
_READY: dict[Any, bool] = {}  # dispatcher → call the kernel from now on
_LOOKED: dict[Any, float] = {}  # dispatcher → when the cache was last looked into
_FIRST_TWIN: dict[Any, float] = {}  # dispatcher → when its twin first ran
_clock = time.monotonic


def twin(kernel: Any) -> Callable[[Callable], Callable]:
    """Register the decorated numpy function as *kernel*'s twin for cold starts: it takes the
    kernel's arguments, writes the same output arrays and returns what the kernel returns."""
    def register(fn: Callable) -> Callable:
        TWINS[kernel] = fn
        return fn
    return register


def call(kernel: Any, *args: Any) -> Any:
    """``kernel(*args)``, or its twin's result while the cold-start helper compiles it."""
    if _READY.get(kernel):
        return kernel(*args)
    fn = TWINS.get(kernel)
    if fn is None or not _helper_has(kernel):
        _READY[kernel] = True
        return kernel(*args)
    if _saved(kernel, args) or _waited_too_long(kernel):
        _READY[kernel] = True
        return kernel(*args)  # loads what the helper saved (or compiles it here)
    return fn(*args)


def _waited_too_long(kernel: Any) -> bool:
    now = _clock()
    return now - _FIRST_TWIN.setdefault(kernel, now) > PATIENCE


def _helper_has(kernel: Any) -> bool:
    from engine.kernels import precompile

    fn = getattr(kernel, "py_func", kernel)  # a plain function under NUMBA_DISABLE_JIT=1
    return precompile.compiling(fn.__module__, fn.__name__)


def _saved(kernel: Any, args: tuple) -> bool:
    """Whether *kernel* is compiled here for *args* or saved in the cache (looked up at most
    every LOOK_EVERY seconds; between looks: not yet)."""
    now = _clock()
    if now - _LOOKED.get(kernel, -LOOK_EVERY) < LOOK_EVERY:
        return False
    _LOOKED[kernel] = now
    from engine.kernels import precompile

    return precompile.compiled_or_cached(kernel, tuple(kernel.typeof_pyval(a) for a in args))


def forget() -> None:
    """Forget every kernel's readiness (tests)."""
    _READY.clear()
    _LOOKED.clear()
    _FIRST_TWIN.clear()
