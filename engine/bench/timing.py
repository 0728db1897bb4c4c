"""Timing helpers shared by every bench case: callables timed in turns, and one case's record
(medians, extremes and the Wiregrad / PyTorch ratio)."""

from __future__ import annotations

import contextlib
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

PAUSE_S = 0.2  # between blocks: lets the other library's spinning threads go to sleep


def _summary(samples: list[float]) -> dict:
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples),
            "n": len(samples)}


# spins until its parent is gone (a bench killed outright must not leave it running)
_BUSY_PROGRAM = """
import os
parent, turns = os.getppid(), 0
while os.getppid() == parent:
    for i in range(100_000):
        turns += i & 1
"""


@contextlib.contextmanager
def other_programs(count: int) -> Iterator[list[int]]:
    """*count* other programs busy on the machine meanwhile: child processes that spin at
    normal priority, as a compile or a browser tab would, placed by the OS scheduler. Yields
    their process ids; they end with the block, or with this process however it ends."""
    procs = [subprocess.Popen([sys.executable, "-I", "-S", "-c", _BUSY_PROGRAM],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for _ in range(count)]
    try:
        time.sleep(0.2)  # they are running before the first timed call
        yield [proc.pid for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()


def alternate(fns: dict[str, Callable[[], object]], rounds: int, per_round: int,
              warmup: int) -> dict[str, dict]:
    """Time each callable *per_round* times per round, the callables taking turns."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            time.sleep(PAUSE_S)
            fn()  # first call after the pause: wakes the thread pool, not counted
            for _ in range(per_round):
                t0 = time.perf_counter()
                fn()
                times[name].append((time.perf_counter() - t0) * 1e3)
    return {k: _summary(v) for k, v in times.items()}


def case_record(ours: dict | None, theirs: dict | None, **extra) -> dict:
    w = ours["median"] if ours else None
    t = theirs["median"] if theirs else None
    case = {"wiregrad_ms": w, "torch_ms": t,
            "ratio": (w / t) if w is not None and t else None}
    if ours:
        case["wiregrad_min_ms"], case["wiregrad_max_ms"] = ours["min"], ours["max"]
        case["samples"] = ours["n"]
    if theirs:
        case["torch_min_ms"], case["torch_max_ms"] = theirs["min"], theirs["max"]
    case.update(extra)
    return case


def per_token(res: dict, tokens: int) -> dict:
    """alternate()'s summaries per output token."""
    return {k: {s: v[s] / tokens for s in ("median", "min", "max")} | {"n": v["n"]}
            for k, v in res.items()}


def cpu_record(res: dict, tokens: int) -> dict:
    """CPU ms (per token when *tokens* > 1) of both sides and their ratio, from
    ``engine.bench.cnn_cpu.alternate_cpu``'s (median, min) pairs."""
    w, t = res["w"][0] / tokens, res["t"][0] / tokens
    return {"wiregrad_cpu_ms": w, "torch_cpu_ms": t, "ratio": w / t, "speedup": t / w,
            "wiregrad_min_cpu_ms": res["w"][1] / tokens, "torch_min_cpu_ms": res["t"][1] / tokens}


def one_thread_trainer(doc: dict):
    """A trainer of preset *doc* whose whole step runs in the calling thread (no batch
    split), so that ``time.thread_time()`` sees all of its work."""
    from engine.graphs import presets
    from engine.train.trainer import Trainer

    return Trainer(doc, base_dir=presets.presets_dir(), steps=100_000, batch_split=1)
