"""Per-op time of a training step: where a Wiregrad step spends its milliseconds.

    python bench/op_profile.py [preset] [--steps N] [--warmup N]

Wraps every equation's forward and backward with a timer, runs the trainer's real
``train_step`` and prints, per op type, the median over steps of the summed forward and
backward time, plus what is left outside the ops (executor, gradient accumulation, clipping,
the optimizer). Run it alone on the machine: BLAS threads make concurrent jobs meaningless.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict

from engine.graphs import presets
from engine.train.trainer import Trainer


def _timed(fn, bucket: dict, key: str):
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            bucket[key] += time.perf_counter() - t0
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


def profile(preset: str, steps: int, warmup: int) -> None:
    doc, _ = presets.load(preset)
    trainer = Trainer(doc)
    for _ in range(warmup):
        trainer.train_step()
    bucket: dict[str, float] = defaultdict(float)
    for eq in trainer.program.equations:
        eq.op = _TimedOp(eq.op, bucket)
    per_key: dict[str, list[float]] = defaultdict(list)
    totals = []
    for _ in range(steps):
        bucket.clear()
        t0 = time.perf_counter()
        trainer.train_step()
        totals.append(time.perf_counter() - t0)
        for k, v in bucket.items():
            per_key[k].append(v)
        per_key["(outside the ops)"].append(totals[-1] - sum(bucket.values()))
    med = {k: statistics.median(v) * 1e3 for k, v in per_key.items()}
    total = statistics.median(totals) * 1e3
    print(f"{preset}: step median {total:.2f} ms, min {min(totals) * 1e3:.2f} ms "
          f"over {steps} steps")
    for k, v in sorted(med.items(), key=lambda kv: -kv[1]):
        print(f"  {k:32s} {v:8.3f} ms  {v / total:6.1%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("preset", nargs="?", default="char_gpt")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    a = ap.parse_args()
    profile(a.preset, a.steps, a.warmup)


if __name__ == "__main__":
    main()
