"""Per-step overhead: CPU ms of training steps on graphs so small that their arithmetic costs
next to nothing, so what is left is the executor's loops, the ops' Python and the kernel and
BLAS calls' fixed costs. Every char-GPT batch part pays about the same per step (its graph has
the same equations), and both parts pay it holding the GIL, where each waits for the other.

    python bench/step_overhead.py [--steps N] [--blocks N]

One thread, BLAS at one thread, no batch split; thread CPU time, the smallest of the blocks'
medians (a shared host's slow spells inflate blocks, not their minimum). Graphs: a 4-layer GPT
of width 16 and block 8 (the char-GPT's equations), a 2-layer one of width 8, and the
spiral_mlp preset. Compare two versions as alternating processes
(``PYTHONPATH=<checkout> python bench/step_overhead.py`` in turn).
"""

from __future__ import annotations

import argparse
import statistics
import time

from engine.base import heap
from engine.graphs import builders, presets
from engine.train.trainer import Trainer


def cpu_ms_per_step(doc: dict, steps: int, blocks: int) -> float:
    """The smallest over *blocks* of the median thread-CPU ms of *steps* training steps."""
    trainer = Trainer(doc, batch_split=1, base_dir=presets.presets_dir())
    for _ in range(30):
        trainer.train_step()
    medians = []
    for _ in range(blocks):
        times = []
        for _ in range(steps):
            t0 = time.thread_time()
            trainer.train_step()
            times.append(time.thread_time() - t0)
        medians.append(statistics.median(times) * 1e3)
    return min(medians)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300, help="steps per block")
    ap.add_argument("--blocks", type=int, default=5)
    args = ap.parse_args()
    from threadpoolctl import threadpool_limits

    heap.keep_freed_memory()  # as `wiregrad train` does
    graphs = {"gpt 4×16, T=8": builders.char_gpt(4, 4, 16, 8, 2),
              "gpt 2×8, T=4": builders.char_gpt(2, 2, 8, 4, 2),
              "spiral_mlp": presets.load("spiral_mlp")[0]}
    with threadpool_limits(limits=1):
        for name, doc in graphs.items():
            print(f"{name:15s} {cpu_ms_per_step(doc, args.steps, args.blocks):7.3f} ms CPU a step",
                  flush=True)


if __name__ == "__main__":
    main()
