"""Process-wide compute threads: how many to use and how to cap the thread pools.

One place for what the CLI, the worker, sampling and the bench all need: the default thread
count, a context that caps the BLAS/OpenMP pools for a block, and a process-wide cap that
includes Numba's pool.
"""

from __future__ import annotations

import contextlib
import os
from contextlib import AbstractContextManager


def default_threads() -> int:
    """Compute threads for the editor's worker: every core (at least one).

    The worker runs at a lower priority (``nice``) instead of leaving a core to the GUI: the
    GUI's event loop needs a few milliseconds now and then (p99 8 ms measured while training),
    and with every core the worker's trainer may split the batch like ``wiregrad train``."""
    return max(1, os.cpu_count() or 1)


def thread_limits(threads: int | None, user_api: str | None = None) -> AbstractContextManager:
    """A context capping the BLAS/OpenMP pools (only *user_api*'s, e.g. ``"blas"``, when
    given) at *threads* and restoring them afterwards; None leaves them as they are."""
    if threads is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=threads, user_api=user_api)


def limited_blas(threads: int | None) -> AbstractContextManager:
    """BLAS capped at *threads* for a block (None: unchanged).

    The editor samples with one thread (``engine.api.sample_tokens``): it decodes while its
    worker process may be training on both cores, and there a second OpenBLAS thread stalls
    on the hand-off — a 48-row refill measured 284 ms with two threads under load. On an idle
    machine two threads are faster (char_gpt: 0.82 vs 0.94 ms per token, refill 2.9 vs
    3.7 ms), so ``wiregrad sample`` and the benchmark keep the process's setting."""
    return thread_limits(threads, "blas")


def limit_threads(threads: int) -> None:
    """Cap BLAS/OpenMP pools and Numba's pool at *threads* for the rest of the process."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)
    with contextlib.suppress(ImportError, ValueError, RuntimeError):
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]  # set at import
