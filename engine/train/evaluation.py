"""Validation passes on every core: evaluation batches are independent (an evaluation forward
reads the weights and running statistics, writes nothing shared), so with two or more BLAS
threads they run as whole batches on that many threads at once, each with one-thread BLAS.

Why not the BLAS pool: an inference batch's GEMMs are small and between them the pool's
second thread spins or idles, and on a busy host (the editor's worker shares the cores with
the GUI) a two-thread GEMM whose second thread lost its core waits for it: a char-GPT
768×128×512 product took 16 ms on two threads against 2.7 ms on one at load 3.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import TypeVar

Batch = TypeVar("Batch")
Result = TypeVar("Result")

MAX_THREADS = 4  # as the training step's batch split (engine.train.batch_split.MAX_WAYS)


@cache
def _pool(helpers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(helpers, thread_name_prefix="wiregrad-eval")


def map_batches(fn: Callable[[Batch], Result], batches: Iterator[Batch], threads: int
                ) -> list[Result]:
    """``fn(batch)`` for every batch of *batches*, results in batch order, on up to *threads*
    threads (this one included; 1: one after another here) with BLAS capped at one thread
    meanwhile. Batches are drawn from the iterator one at a time under a lock, so it is never
    read by two threads at once and the batches need not fit in memory together. The first
    error in batch order is raised once every thread has stopped; no new batch starts after
    an error."""
    threads = max(1, min(threads, MAX_THREADS))
    if threads == 1:
        return [fn(batch) for batch in batches]
    from threadpoolctl import ThreadpoolController

    results: dict[int, Result] = {}
    errors: dict[int, BaseException] = {}
    lock = threading.Lock()
    counter = itertools.count()

    def work() -> None:
        while True:
            with lock:
                if errors:
                    return
                try:
                    batch = next(batches)
                except StopIteration:
                    return
                except BaseException as exc:  # a failing reader: raised like a failing batch
                    errors[next(counter)] = exc
                    return
                index = next(counter)
            try:
                results[index] = fn(batch)
            except BaseException as exc:  # re-raised by the calling thread, in batch order
                with lock:
                    errors[index] = exc
                return

    with ThreadpoolController().select(user_api="blas").limit(limits=1):
        futures = [_pool(threads - 1).submit(work) for _ in range(threads - 1)]
        work()
        for future in futures:
            future.result()
    if errors:
        raise errors[min(errors)]
    return [results[i] for i in range(len(results))]
