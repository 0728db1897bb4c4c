"""Both cores inside one Numba call: Numba's OpenMP threading layer, and when to use it.

A CNN step cannot be split into batch parts (batch norm mixes the examples), and splitting an
op over two *Python* threads (:func:`engine.ops.two_cores.halves`) pays only for large ops on
this kind of host: every hand-off between the threads is a futex wake-up on the other vCPU
(a ``threading.Event`` round trip: 46 µs on the 2-vCPU KVM host) and every numpy call
between kernels passes the GIL back and forth. A Numba ``parallel=True`` kernel forks and
joins inside native code instead: GNU OpenMP's workers spin for a while after each region, so
the next region starts on a warm thread (an empty ``prange`` region: 2 µs warm, 8–10 µs after
1 ms idle; Numba's own *workqueue* layer: 83–96 µs, so it is never used).

:func:`available` is true only where Numba's ``omp`` layer loads (it needs the system's
``libgomp.so.1``); elsewhere the ops run their serial kernels or the Python-thread halves.
A parallel kernel is launched inside :func:`launch`, so two Python threads never start one at
once (the trainer's batch parts and the evaluation threads never do: they cap BLAS at one
thread, and the ops ask for two cores only when BLAS has them, see
:func:`engine.ops.two_cores.ways`).

Parallel kernels are written as a serial ``*_part(lo, hi)`` over rows ``lo … hi-1`` and a
``parallel=True`` driver that runs one part per thread; the serial path calls the part for all
rows, so both paths share every line that computes.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from functools import cache

import numpy as np

LOCK = threading.Lock()  # one parallel launch at a time per process
_PINNED: list | None = None  # the BLAS libraries Numba's np.dot calls, once found
OPT_OUT = "WIREGRAD_NATIVE_THREADS"  # "0": never use Numba's threads (the Python halves instead)
# How long an idle OpenMP worker spins before it sleeps (GOMP_SPINCOUNT; ours only: PyTorch's
# own libgomp in the same process reads the environment as it was). libgomp's 300 000 keeps
# the worker spinning through a whole CNN step; 20 000 (well under a millisecond) still
# catches the step's next region. cnn_cpu --scaling, two threads, Wiregrad ms (one noisy
# window, 15:15 UTC session 9): 300 000 → 11.7 / 10.4, 20 000 → 8.1 / 8.5, 0 → 8.1 / 9.6
# (cnn_issue24 / cnn_stride20).
SPIN = "20000"
# compile a parallel kernel in a helper process; "1" in WIREGRAD_COMPILE_AT_ONCE: before its
# first use instead (the test suite: which route a test takes must not depend on timing)
BACKGROUND = os.environ.get("WIREGRAD_COMPILE_AT_ONCE", "0") != "1"
LOOK_EVERY = 1.0  # seconds between looks into the cache for a kernel not ready yet
_READY: dict[tuple, bool] = {}  # (kernel, dtype) → compiled or in the on-disk cache
_CHECKED: dict[tuple, float] = {}  # (kernel, dtype) → when its readiness was last looked up
_HELPERS: dict[tuple, object] = {}  # (kernel, dtype) → its compiling helper process (or None)


@cache
def available() -> bool:
    """Whether Numba's OpenMP layer can run this process's parallel kernels (selects it), and
    the GEMM library they call loads (:mod:`engine.kernels.blas`)."""
    if os.environ.get(OPT_OUT, "1") == "0":
        return False
    try:
        from engine.kernels import blas  # noqa: F401
    except (ImportError, OSError, AttributeError):
        return False  # the ops keep their one-thread routes
    import numba

    layer = numba.config.THREADING_LAYER  # type: ignore[attr-defined]
    if layer not in ("default", "omp", "threadsafe", "safe"):
        return False  # the user asked for another layer (workqueue is too slow to pay)
    spin = os.environ.get("GOMP_SPINCOUNT")
    os.environ["GOMP_SPINCOUNT"] = spin or SPIN  # read once, when libgomp loads
    try:
        from numba.np.ufunc import omppool  # type: ignore[attr-defined]  # noqa: F401  (needs libgomp)
    except ImportError:
        return False
    finally:
        if spin is None:
            del os.environ["GOMP_SPINCOUNT"]
        else:
            os.environ["GOMP_SPINCOUNT"] = spin
    numba.config.THREADING_LAYER = "omp"  # type: ignore[attr-defined]
    return numba.config.NUMBA_NUM_THREADS >= 2  # type: ignore[attr-defined]


@contextlib.contextmanager
def launch() -> Iterator[None]:
    """Around a parallel kernel's call: one launch at a time (:data:`LOCK`), and the BLAS its
    workers call on one thread each (:func:`pin_blas`)."""
    with LOCK:
        pin_blas()
        yield


def bounds(rows: int, parts: int) -> np.ndarray:
    """``parts + 1`` int64 row bounds cutting *rows* into *parts* nearly equal blocks."""
    parts = max(1, min(parts, rows))
    return np.array([rows * i // parts for i in range(parts + 1)], np.int64)


def pin_blas() -> None:
    """Run the BLAS that Numba's ``np.dot`` calls (scipy's, through ``scipy.linalg.cython_blas``
    — a library of its own, which thread limits set before it loaded never reached) on one
    thread: inside a parallel kernel each worker's GEMM must stay on its own core (left at two
    threads, a CNN step ran 2× slower than on one), and the recurrent kernels' per-step
    products are small (e.g. 768×192 by 192×16): a second thread costs more than it brings,
    and on a loaded machine a thread waiting for a busy core made a step 20× slower. A library
    numpy shares is left alone. Cheap after the first call (one query per library)."""
    global _PINNED
    if _PINNED is None:
        import scipy.linalg.cython_blas  # noqa: F401  (loads the library Numba calls)
        from threadpoolctl import ThreadpoolController

        libs = ThreadpoolController().select(user_api="blas").lib_controllers
        _PINNED = [lib for lib in libs
                   if "scipy" in lib.filepath.replace("\\", "/").rsplit("/", 2)[-2].lower()
                   and "numpy" not in lib.filepath.lower()]
    for lib in _PINNED:
        if lib.num_threads != 1:
            lib.set_num_threads(1)
    ours = sys.modules.get("engine.kernels.blas")  # the kernels' own GEMM library, once
    if ours is not None:  # loaded (it loads on one thread; the recurrent ops never load it)
        ours.one_thread()


def ready(kernel, args: tuple, dtype, variant: str = "") -> bool:
    """Whether the parallel *kernel* (a Numba dispatcher) can run on *args* now: compiled in
    this process or in the on-disk cache (loaded on the call, tens of ms). A parallel kernel
    compiles for 10–25 s, so a fresh install does not wait for it: the first time an op asks,
    a helper process (``python -m engine.kernels.precompile``, low priority) starts compiling
    it into the cache and the op runs its serial route until the cache has it (looked up at
    most once a second). In this process the compile would hold Numba's compiler lock, and
    the GIL, against the run's own kernels. Where the cache cannot be written it never runs.
    Keyed by (kernel, dtype, *variant*): the ops pass C-contiguous arrays, so the dtype fixes
    the signature; a kernel that takes another layout too names it in *variant*."""
    key = (kernel, np.dtype(dtype).str, variant)
    if _READY.get(key):
        return True
    now = time.monotonic()
    if now - _CHECKED.get(key, -LOOK_EVERY) < LOOK_EVERY:
        return False
    _CHECKED[key] = now
    from engine.kernels import precompile

    sig = tuple(kernel.typeof_pyval(a) for a in args)
    if precompile.compiled_or_cached(kernel, sig):
        _READY[key] = True
        return True
    if not BACKGROUND:
        kernel.compile(sig)
        _READY[key] = True
        return True
    if key not in _HELPERS:
        _HELPERS[key] = _compile_elsewhere(kernel, sig)
    return False


def _compile_elsewhere(kernel, sig: tuple):
    """A helper process compiling *kernel* for *sig* into the on-disk cache (None where it
    cannot start: an unwritable cache, an undescribable type). It ends when this process
    does (its stdin closes)."""
    import json

    from engine.kernels import cache_lock, precompile

    try:
        if not precompile._writable(os.environ.get("NUMBA_CACHE_DIR")):
            return None
        job = [[kernel.py_func.__module__, kernel.py_func.__name__,
                [precompile.describe(t) for t in sig]]]
        cache_lock.lock_cache_saves()
        proc = precompile._spawn()
        assert proc.stdin is not None
        proc.stdin.write((json.dumps(job) + "\n").encode())
        proc.stdin.flush()  # stdin stays open: the helper exits when it closes
        return proc
    except Exception:  # noqa: BLE001  (the op keeps its serial route)
        return None


def run(kernel, args: tuple, rows: int, threads: int, dtype, variant: str = "") -> bool:
    """``kernel(*args, bounds)``: the parallel *kernel* over *rows* cut into one block per
    thread, when *threads* ≥ 2 and the kernel is :func:`ready` (for *variant*); False
    (nothing run) otherwise."""
    if threads < 2:
        return False
    full = (*args, bounds(rows, threads))
    if not ready(kernel, full, dtype, variant):
        return False
    with launch():
        kernel(*full)
    return True
