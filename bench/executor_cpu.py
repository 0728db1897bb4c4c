"""The executor's own cost in one batch part: one-thread CPU of a part's forward + backward
with the real ops, and with every op replaced by its recorded results (what is left is the
executor's Python and its gradient sums).

    python bench/executor_cpu.py [preset] [--ways N] [--runs N]

The part is the first of *ways* row blocks of one training batch (``--ways 2``: one part of the
two-thread split step; a graph that cannot split runs its whole batch). Times are
``time.thread_time()`` medians with BLAS at one thread, so they hold on a shared host.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from engine.graphs import presets
from engine.train import batch_split
from engine.train.trainer import Trainer


class _Replayed:
    """Stands in for an equation's OpSpec: forward and backward given, the rest passed on."""

    def __init__(self, op, forward, backward) -> None:
        self._op, self.forward, self.backward = op, forward, backward

    def __getattr__(self, name):
        return getattr(self._op, name)


def _part(preset: str, ways: int):
    trainer = Trainer(presets.load(preset)[0], batch_split=1)
    trainer.train_step()
    feeds = trainer._feeds({node: b.next() for node, b in trainer.batchers.items()})
    decision = batch_split.analyse(trainer.program, trainer.graph.loss_value, trainer._unused)
    part = batch_split.split_rows(feeds, ways, decision.data)[0] if decision.ok else feeds
    ex = trainer.executor
    seed = {trainer.graph.loss_value: np.ones((), ex.dtype)}

    def run() -> None:
        tape = ex.forward(part, trainer.params, trainer.state, training=True, seed=1,
                          skip=trainer._unused)
        ex.backward(tape, seed, release=True)

    return trainer, run


def _median_ms(run, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.thread_time()
        run()
        times.append(time.thread_time() - t0)
    return statistics.median(times) * 1e3


def _replay(trainer, run) -> None:
    """Record every equation's results in one real run, then make the ops return them."""
    fwd: dict[str, tuple] = {}
    bwd: dict[str, tuple] = {}
    for eq in trainer.program.equations:
        op = eq.op

        def record_f(ctx, params, *ins, _f=op.forward, _p=eq.path):
            out = _f(ctx, params, *ins)
            fwd[_p] = (out, ctx.saved)
            return out

        def record_b(ctx, params, *g, _b=op.backward, _p=eq.path):
            out = _b(ctx, params, *g)
            bwd[_p] = (out, dict(ctx.weight_grads))
            return out

        eq.op = _Replayed(op, record_f, record_b if op.backward else None)
    trainer.executor._wiring = None  # the cached wiring holds the unwrapped ops
    run()
    for eq in trainer.program.equations:
        op = eq.op._op

        def replay_f(ctx, params, *ins, _p=eq.path):
            out, ctx.saved = fwd[_p]
            return out

        def replay_b(ctx, params, *g, _p=eq.path):
            out, grads = bwd[_p]
            ctx.weight_grads.update(grads)
            return out

        eq.op = _Replayed(op, replay_f, replay_b if op.backward else None)
    trainer.executor._wiring = None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("preset", nargs="?", default="char_gpt")
    ap.add_argument("--ways", type=int, default=2)
    ap.add_argument("--runs", type=int, default=100)
    a = ap.parse_args()
    from threadpoolctl import threadpool_limits

    trainer, run = _part(a.preset, a.ways)
    with threadpool_limits(limits=1):
        for _ in range(5):
            run()
        real = _median_ms(run, a.runs)
        _replay(trainer, run)
        replayed = _median_ms(run, a.runs * 3)
    print(f"{a.preset} (part 1 of {a.ways}, {len(trainer.program.equations)} equations): "
          f"real ops {real:.3f} ms, recorded ops {replayed:.3f} ms "
          f"({replayed / len(trainer.program.equations) * 1e3:.2f} us per equation; "
          "CPU time, one thread)")


if __name__ == "__main__":
    main()
