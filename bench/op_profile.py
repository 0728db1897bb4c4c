"""Per-op time of a training step: where a Wiregrad step spends its milliseconds.

    python bench/op_profile.py [preset] [--steps N] [--warmup N] [--cpu]

Wraps every equation's forward and backward with a timer, runs the trainer's real
``train_step`` and prints, per op type, the median over steps of the summed forward and
backward time, the optimizer update, plus what is left outside (executor, gradient
accumulation, clipping's norm). The executor caches each equation's forward when it first
runs, so the cache is dropped after wrapping (without that only backward entries show).

``--cpu`` runs one unsplit thread (BLAS limited to one) and times ``time.thread_time()``:
CPU time the thread got, meaningful on a shared host. Otherwise wall time at the trainer's
defaults: run it alone on the machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict

from engine.graphs import presets
from engine.train.trainer import Trainer

CLOCK = time.perf_counter


def _timed(fn, bucket: dict, key: str):
    def wrapper(*args, **kwargs):
        t0 = CLOCK()
        try:
            return fn(*args, **kwargs)
        finally:
            bucket[key] += CLOCK() - t0
    return wrapper


class _TimedOp:
    """Stands in for an OpSpec on one equation: same attributes, timed forward/backward."""

    def __init__(self, op, bucket: dict) -> None:
        self._op = op
        self.forward = _timed(op.forward, bucket, f"{op.name} fwd")
        self.backward = None if op.backward is None else _timed(op.backward, bucket,
                                                                f"{op.name} bwd")

    def __getattr__(self, name):
        return getattr(self._op, name)


def profile(preset: str, steps: int, warmup: int, cpu: bool = False) -> None:
    global CLOCK
    doc, _ = presets.load(preset)
    trainer = Trainer(doc, batch_split=1) if cpu else Trainer(doc)
    CLOCK = time.thread_time if cpu else time.perf_counter
    for _ in range(warmup):
        trainer.train_step()
    bucket: dict[str, float] = defaultdict(float)
    for eq in trainer.program.equations:
        eq.op = _TimedOp(eq.op, bucket)
    trainer.executor._wiring = None  # the cached wiring holds the unwrapped forwards
    trainer.optimizer.step = _timed(trainer.optimizer.step, bucket, "(optimizer step)")
    per_key: dict[str, list[float]] = defaultdict(list)
    totals = []
    for _ in range(steps):
        bucket.clear()
        t0 = CLOCK()
        trainer.train_step()
        totals.append(CLOCK() - t0)
        for k, v in bucket.items():
            per_key[k].append(v)
        per_key["(outside the ops)"].append(totals[-1] - sum(bucket.values()))
    med = {k: statistics.median(v) * 1e3 for k, v in per_key.items()}
    total = statistics.median(totals) * 1e3
    clock = "CPU time, one thread" if cpu else "wall time"
    print(f"{preset}: step median {total:.2f} ms, min {min(totals) * 1e3:.2f} ms "
          f"over {steps} steps ({clock})")
    for k, v in sorted(med.items(), key=lambda kv: -kv[1]):
        print(f"  {k:32s} {v:8.3f} ms  {v / total:6.1%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("preset", nargs="?", default="char_gpt")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--cpu", action="store_true",
                    help="one unsplit thread, thread CPU time (for a shared host)")
    a = ap.parse_args()
    if a.cpu:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):
            profile(a.preset, a.steps, a.warmup, cpu=True)
    else:
        profile(a.preset, a.steps, a.warmup)


if __name__ == "__main__":
    main()
