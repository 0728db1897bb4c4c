"""Per-op time of a training step: where a Wiregrad step spends its milliseconds.

    python bench/op_profile.py [preset] [--steps N] [--warmup N] [--cpu | --split | --torch]

Wraps every equation's forward and backward with a timer, runs the trainer's real
``train_step`` and prints, per op type, the median over steps of the summed forward and
backward time, the optimizer update, plus what is left outside (executor, gradient
accumulation, clipping's norm). The executor caches each equation's forward when it first
runs, so the cache is dropped after wrapping (without that only backward entries show).

``--cpu`` runs one unsplit thread (BLAS limited to one) and times ``time.thread_time()``:
CPU time the thread got, meaningful on a shared host. Otherwise wall time at the trainer's
defaults: run it alone on the machine.

``--split`` times the trainer's default two-part step instead of ops: per step its wall, the
process CPU and voluntary context switches (``getrusage``), and per batch part the wall and
thread CPU of its phases — forward + backward, summing its share of the gradients, the
optimizer on that share, and the rest of the part's span (barrier waits, freeing the tape).
Wall above CPU inside a phase is time off the core: GIL waits (and, on a busy host, the run
queue). The process CPU and the switches are the figures that survive a loaded host.

``--torch`` profiles the bench's PyTorch twin of a GPT preset instead (``torch.profiler``,
all cores): per step, the wall time of each ATen op on the calling thread (its own work, the
intra-op threads' included), the figures to set beside this script's default per-op walls.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import threading
import time
from collections import defaultdict

from engine.graphs import presets
from engine.train import batch_split
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


class _Phases:
    """Per-thread (wall, CPU) spans of the split step's phases, summed per step."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.step: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
        self.parts: dict[int, int] = {}  # thread id -> part index in this step

    def timed(self, fn, phase: str):
        def wrapper(*args, **kwargs):
            w0, c0 = time.perf_counter(), time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                w, c = time.perf_counter() - w0, time.thread_time() - c0
                with self.lock:
                    key = f"part {self.parts.get(threading.get_ident(), '?')} {phase}"
                    self.step[key][0] += w
                    self.step[key][1] += c
        return wrapper


def profile_split(preset: str, steps: int, warmup: int) -> None:
    """The default two-part training step's phases per part (see the module's docstring)."""
    doc, _ = presets.load(preset)
    trainer = Trainer(doc)
    for _ in range(warmup):
        trainer.train_step()
    split = trainer._split
    if split is None:
        print(f"{preset}: the trainer does not split this graph's steps")
        return
    ph = _Phases()
    part_and_share = split._part_and_share

    def whole(joint, feeds, params, state, seed, skip, index, update=None):
        ph.parts[threading.get_ident()] = index
        return ph.timed(part_and_share, "(span)")(joint, feeds, params, state, seed, skip,
                                                   index, update)

    split._part_and_share = whole
    split._part = ph.timed(split._part, "forward + backward")
    combine = batch_split.combine
    batch_split.combine = ph.timed(combine, "sum of its gradient share")
    trainer._update_share = ph.timed(trainer._update_share, "optimizer on its share")
    per: dict[str, list[tuple[float, float]]] = defaultdict(list)
    walls, cpus, switches = [], [], []
    try:
        for _ in range(steps):
            ph.step.clear()
            r0, w0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            trainer.train_step()
            walls.append(time.perf_counter() - w0)
            r1 = resource.getrusage(resource.RUSAGE_SELF)
            cpus.append(r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime)
            switches.append(r1.ru_nvcsw - r0.ru_nvcsw)
            for key, (w, c) in list(ph.step.items()):
                per[key].append((w, c))
    finally:
        batch_split.combine = combine
    wall, cpu = statistics.median(walls) * 1e3, statistics.median(cpus) * 1e3
    print(f"{preset}: {split.ways}-part step, median over {steps} steps: wall {wall:.2f} ms, "
          f"process CPU {cpu:.2f} ms (wall / (CPU / {split.ways}) "
          f"{wall / (cpu / split.ways):.3f}), voluntary switches "
          f"{statistics.median(switches):.0f}")
    for key in sorted(per):
        w = statistics.median(v[0] for v in per[key]) * 1e3
        c = statistics.median(v[1] for v in per[key]) * 1e3
        print(f"  {key:38s} wall {w:7.3f} ms  CPU {c:7.3f} ms")


def profile_torch(preset: str, steps: int, warmup: int) -> None:
    """The PyTorch twin's step per ATen op (see the module's docstring)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from engine.bench import benchmark

    doc, _ = presets.load(preset)
    _, step = benchmark._gpt_pair(doc)
    for _ in range(warmup):
        step()
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        total = (time.perf_counter() - t0) / steps * 1e3
    print(f"{preset} PyTorch twin: step {total:.2f} ms (wall, mean over {steps} steps, "
          "profiler on)")
    ops = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    for e in ops[:14]:
        ms = e.self_cpu_time_total / steps / 1e3
        print(f"  {e.key[:40]:40s} {ms:8.3f} ms  {ms / total:6.1%}")


def main() -> None:
    from engine.base import heap

    heap.keep_freed_memory()  # as `wiregrad train` does
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("preset", nargs="?", default="char_gpt")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--cpu", action="store_true",
                    help="one unsplit thread, thread CPU time (for a shared host)")
    ap.add_argument("--split", action="store_true",
                    help="the default two-part step's phases per part, process CPU, switches")
    ap.add_argument("--torch", action="store_true",
                    help="the PyTorch twin of a GPT preset, per ATen op (needs torch)")
    a = ap.parse_args()
    if a.torch:
        profile_torch(a.preset, a.steps, a.warmup)
    elif a.split:
        profile_split(a.preset, a.steps, a.warmup)
    elif a.cpu:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):
            profile(a.preset, a.steps, a.warmup, cpu=True)
    else:
        profile(a.preset, a.steps, a.warmup)


if __name__ == "__main__":
    main()
