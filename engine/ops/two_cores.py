"""Both cores inside one op: an op's work as two batch halves computed at once.

A CNN's training step cannot be split into batch parts (batch norm mixes the examples, see
:mod:`engine.train.batch_split`), and with two BLAS threads only the GEMMs use the second core,
poorly for the thin GEMMs of small convolutions, while every transform, scatter and Python line
runs on one. So a large op splits its own batch instead: the first half runs on the calling
thread, the second on one helper thread, with BLAS capped at one thread meanwhile (the Numba
kernels and numpy release the GIL), and the op joins the results. "Halves" are really four
blocks that both threads take in turn (:func:`halves`): on a busy host the helper may not get
a core for a while, and then the calling thread does the blocks alone rather than wait.

An op splits only when BLAS is allowed two threads or more (the run's ``--threads``; the
editor's and sampler's one-thread blocks and the trainer's own batch split cap BLAS at one, so
nothing nests) and its work is worth the hand-off (:data:`MIN_FLOPS`).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any

MIN_FLOPS = 4e6  # below this the ~50 µs hand-off and the halves' smaller GEMMs do not pay
CHUNKS = 4  # blocks per split op: two per thread, so a late or slow thread costs little

# The convolutions' two-core break-even, in forward FLOPs (both passes decide on the forward's
# work). Measured on two quiet cores (09:44 UTC, session 7): forward + backward wall time, the
# op split over both cores against one thread, alternating:
#   GEMM routes: 64×32×6² 3×3 s2 → 32 (10.6 MFLOP) 1.27×, 96×2×20² s2 → 24 (8.3) 1.40×,
#   64×8×8² → 16 (9.4) 1.50× slower split; 64×1×24² 5×5 → 16 (29.5) 0.87, 32×3×32² → 32
#   (56.6) 0.89, 128×1×28² 5×5 → 32 (118) 0.81, 128×32×12² 5×5 → 64 (839) 0.56 faster.
#   Winograd (16 products per tile): 64×16×12² → 32 (37.7 in its count) 1.14×, 64×16×16² → 32
#   (67) 1.01, 64×32×12² → 32 (75.5) 1.04 slower; 96×24×10² → 48 (88.5) 0.79, 32×32×16² → 64
#   (134) 0.78 faster.
GEMM_MIN_FLOPS = 2e7
WINOGRAD_MIN_FLOPS = 8e7
# Memory-bound passes (batch norm by channels, 2×2 pools by images, activation kernels by
# elements): inside real CNN steps on two quiet cores their splits did not pay at the bench's
# sizes (≤ 1M elements; bench/two_cores_ops.py, split / whole per step: cnn_rgb32 1.056 and
# 1.027, cnn_issue24 0.997 and 1.048, cnn_stride20 0.993), though alone, with the data in
# cache, they do (batch norm over 1M elements 1.19 → 0.59 ms): only far larger arrays split.
PASS_MIN_FLOPS = 4e7


@cache
def _blas() -> list:
    """The BLAS libraries' controllers (threadpoolctl), found once."""
    import numpy  # noqa: F401  (loads numpy's BLAS, so that threadpoolctl finds it)
    from threadpoolctl import ThreadpoolController

    return list(ThreadpoolController().select(user_api="blas").lib_controllers)


@cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(1, thread_name_prefix="wiregrad-half")


_OWN: list[int] = []  # threads granted by own_threads() (innermost last)


def blas_threads() -> int:
    """BLAS threads in effect now (1 without a BLAS library); about a microsecond."""
    return max((lib.num_threads or 1 for lib in _blas()), default=1)


def ways(rows: int, flops: float, min_flops: float | None = None) -> int:
    """2 when an op of *rows* batch rows and *flops* work should run as two halves, else 1
    (*min_flops*: the op family's own measured break-even, :data:`MIN_FLOPS` by default)."""
    threads = _OWN[-1] if _OWN else blas_threads()
    least = MIN_FLOPS if min_flops is None else min_flops
    return 2 if rows >= 2 and flops >= least and threads >= 2 else 1


def owned_ways(rows: int, flops: float, min_flops: float) -> int:
    """2 when an op of *rows* rows and *flops* work should run as two halves inside a block
    that owns two threads or more (:class:`own_threads`: a CNN's unsplit step, where BLAS is
    held at one thread) and Numba's threads can run (:func:`engine.kernels.parallel.available`:
    not opted out with ``WIREGRAD_NATIVE_THREADS=0``, the OpenMP layer loads), else 1. Outside
    such a block BLAS keeps its own threads."""
    if not (_OWN and _OWN[-1] >= 2 and rows >= 2 and flops >= min_flops):
        return 1
    from engine.kernels import parallel

    return 2 if parallel.available() else 1


# Ops whose kernels run both cores inside one Numba call (engine.kernels.parallel): the
# fork and join cost microseconds, not a Python hand-off, so far smaller ops pay.
NATIVE_MIN_FLOPS = 2e6
# Memory-bound passes on Numba's threads (batch norm, 2×2 pools, activation kernels; their
# flops counted as above: 6–10 per element for batch norm, 8 for pools, 4 for activations).
# Forward + backward wall ms, one thread → Numba's two, alternating in one process (session
# 9, bench/RESULTS.md): 64×16×24² (590k elements) max pool 0.348 → 0.256, avg pool 0.263 →
# 0.193, leaky 0.213 → 0.160, SiLU 0.348 → 0.395; 64×32×12² (295k) max pool 0.246 → 0.256,
# avg pool 0.168 → 0.201; 96×48×10² (461k) max pool 0.407 → 0.414, avg 0.263 → 0.298. Batch
# norm (fwd 6 + bwd 10 per element) 590k 0.51 → 0.36, 295k 0.32 → 0.29, 461k 0.57 → 0.37
# alone, but inside cnn_stride20's step its 461k backward ran 0.34 → 0.43 ms (cnn_issue24's
# 590k 0.55 → 0.47): from 5 MFLOP, about 500k elements of batch norm's backward.
NATIVE_PASS_MIN_FLOPS = 5e6


def native_threads(rows: int, flops: float, min_flops: float | None = None) -> int:
    """Threads (≥ 2) for an op of *rows* batch rows and *flops* work to run its parallel
    Numba kernel on, or 1 (its serial kernel): two cores are owned as for :func:`ways`, the
    work reaches *min_flops* (:data:`NATIVE_MIN_FLOPS` by default) and Numba's OpenMP layer
    loads (:func:`engine.kernels.parallel.available`)."""
    threads = _OWN[-1] if _OWN else blas_threads()
    least = NATIVE_MIN_FLOPS if min_flops is None else min_flops
    if rows < 2 or flops < least or threads < 2:
        return 1
    from engine.kernels import parallel

    return min(threads, rows) if parallel.available() else 1


def run_native(rows: int, flops: float, kernel, args: tuple, dtype,
               min_flops: float | None = None) -> bool:
    """Run the parallel Numba *kernel* as ``kernel(*args, bounds)`` over *rows* cut into one
    block per thread, when :func:`native_threads` says it pays and the kernel is compiled
    (:func:`engine.kernels.parallel.run`); False (nothing run) otherwise."""
    threads = native_threads(rows, flops, min_flops)
    if threads < 2:
        return False
    from engine.kernels import parallel

    return parallel.run(kernel, args, rows, threads, dtype)


class own_threads:  # noqa: N801  (used like a function: ``with own_threads(2):``)
    """A reusable block (a CNN's training step) in which the split ops own *threads* and every
    other BLAS call runs on one thread: a two-thread OpenBLAS GEMM elsewhere in the step (a
    fully-connected layer) leaves its worker spinning on the second core, against the split
    ops' helper thread (``cnn_rgb32``, per-op wall profile at load 2.7: the convolution's
    backward 8.9 ms on one thread, 18.9 ms split next to two-thread FC GEMMs)."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._before: list[list[int]] = []

    def __enter__(self) -> None:
        libs = _blas()
        self._before.append([lib.num_threads for lib in libs])
        for lib in libs:
            lib.set_num_threads(1)
        _OWN.append(self.threads)

    def __exit__(self, *exc) -> None:
        _OWN.pop()
        for lib, n in zip(_blas(), self._before.pop()):
            lib.set_num_threads(n)


def halves(rows: int, fn: Callable[[int, int], Any]) -> list:
    """``fn(lo, hi)`` over *rows* cut into :data:`CHUNKS` contiguous blocks, shared between
    this thread and the helper, BLAS at one thread meanwhile; returns the results in block
    order. Each thread takes the next unclaimed block until none is left, and this thread waits
    only for blocks the helper has claimed: if the helper is not scheduled (a busy host), this
    thread does every block itself instead of waiting, so a step is never held up by a core it
    did not get. Errors are raised after every claimed block has stopped."""
    ways = min(CHUNKS, rows)
    bounds = [rows * i // ways for i in range(ways + 1)]
    results: list = [None] * ways
    errors: list = [None] * ways
    done = [threading.Event() for _ in range(ways)]
    claim = itertools.count()  # next() is atomic under the GIL

    def work() -> None:
        while (i := next(claim)) < ways:
            try:
                results[i] = fn(bounds[i], bounds[i + 1])
            except BaseException as exc:  # re-raised by the calling thread
                errors[i] = exc
            finally:
                done[i].set()

    libs = _blas()
    before = [lib.num_threads for lib in libs]
    for lib in libs:
        lib.set_num_threads(1)
    try:
        _pool().submit(work)
        work()
        for event in done:
            event.wait()
    finally:
        for lib, n in zip(libs, before):
            lib.set_num_threads(n)
    for exc in errors:
        if exc is not None:
            raise exc
    return results
