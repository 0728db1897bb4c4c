"""Bench probe: peak resident memory growth over char-GPT training steps.

``python -m engine.bench.rss START STEPS THREADS wiregrad|torch`` prints one JSON line
``{"bare_mb", "base_mb", "peak_mb"}``: RSS after building the trainer, the baseline before
the steps (for Wiregrad after Numba's JIT runtime started) and the peak during them (Linux).
"""

from __future__ import annotations

import contextlib
import gc
import json
import sys


def rss() -> tuple[float, float]:
    """(current, peak) resident set size in MiB, from ``/proc/self/status``."""
    with open("/proc/self/status", encoding="utf-8") as f:
        fields = dict(line.split(":", 1) for line in f)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def _step(which: str, threads: int, steps: int):
    """(the step callable, RSS in MiB right after building the trainer)."""
    import numpy
    from threadpoolctl import threadpool_limits

    from engine.graphs import presets
    from engine.train.trainer import Trainer

    threadpool_limits(threads)
    if which == "torch":
        import torch

        torch.set_num_threads(threads)
    doc, path = presets.load("char_gpt")
    trainer = Trainer(doc, base_dir=path.parent, steps=steps)
    bare = rss()[0]
    if which != "torch":  # Numba's JIT runtime starts with the first kernel: part of import
        from engine.base import heap
        from engine.kernels import optim

        heap.keep_freed_memory()  # as in `wiregrad train`: its peak is what this measures

        optim.sum_of_squares(numpy.ones(4, numpy.float32))
        return trainer.train_step, bare
    from engine.bench.gpt_twin import build_twin, twin_optimizer, twin_step

    model = build_twin(doc, {**trainer.params, **trainer.state})
    opt, sched = twin_optimizer(model, trainer.graph.optimizer_params, trainer.schedule)
    batcher = next(iter(trainer.batchers.values()))
    del trainer
    gc.collect()
    return (lambda: twin_step(model, opt, sched, batcher.next(), 1.0)), bare


def main(argv: list[str]) -> None:
    steps, threads, which = int(argv[2]), int(argv[3]), argv[4]
    step, bare = _step(which, threads, steps)
    with contextlib.suppress(OSError):  # reset the peak to the current RSS (Linux ≥ 4.0)
        with open("/proc/self/clear_refs", "w", encoding="utf-8") as f:
            f.write("5")
    base = rss()[0]
    for _ in range(steps):
        step()
    print(json.dumps({"bare_mb": bare, "base_mb": base, "peak_mb": rss()[1]}))


if __name__ == "__main__":
    main(sys.argv)
