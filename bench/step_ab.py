"""Does a kernel or threshold choice pay inside whole GPT training steps? One trainer, the
choice switched between blocks of steps (A: the code as it is, B: the alternative), taking
turns in one process, so that both sides see the same host, caches and batches.

    python bench/step_ab.py CHOICE [--gpt L,H,C,T,B] [--rounds N] [--unsplit]

Prints the median and minimum wall ms per step of each side and B / A (below 1: the
alternative is faster). ``--gpt`` builds a char-GPT of L layers, H heads, width C, block T and
batch B (default: the char_gpt preset); ``--unsplit`` runs the step on one thread with BLAS at
one (no batch split). Wall-clock figures mean something only on a quiet host with two free
cores: run it alone. The in-process A/B can overstate a change (session 16: −2.2 % and −1.2 to
−2.6 % for two of three changes that together gave −1.5 % between alternating processes of the
commits, bench/RESULTS.md): confirm a kept change across processes. Choices:

- ``attention-halving``: causal self-attention's products in two halves from T = 64 (B)
  against :data:`engine.ops.attention.MIN_HALVED_T` (A).
- ``lent-gradients``: attention's q, k, v gradients in separate arrays that the executor
  zero-fills a sum for and copies in (B) against one buffer lent to it (A,
  :mod:`engine.core.lent`).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable

import numpy as np

from engine.base import heap
from engine.core import lent
from engine.graphs import builders, presets
from engine.ops import attention
from engine.train.trainer import Trainer


def _halving_from_64(on: bool) -> None:
    attention.MIN_HALVED_T = 64 if on else _DEFAULTS["MIN_HALVED_T"]


def _nothing_lent(on: bool) -> None:
    lent.lend = (lambda shape, dtype: np.empty(shape, dtype)) if on else _DEFAULTS["lend"]


_DEFAULTS = {"MIN_HALVED_T": attention.MIN_HALVED_T, "lend": lent.lend}
CHOICES: dict[str, Callable[[bool], None]] = {"attention-halving": _halving_from_64,
                                               "lent-gradients": _nothing_lent}


def compare(choice: str, gpt: tuple[int, ...] | None, rounds: int, unsplit: bool) -> dict:
    """Median / minimum wall ms per step of each side (see the module's docstring)."""
    switch = CHOICES[choice]
    doc = builders.char_gpt(*gpt) if gpt else presets.load("char_gpt")[0]
    limit = contextlib.nullcontext()
    if unsplit:
        from threadpoolctl import threadpool_limits

        limit = threadpool_limits(1)
    times: dict[str, list[float]] = {"A": [], "B": []}
    with limit:
        trainer = Trainer(doc, base_dir=presets.presets_dir(), steps=1_000_000,
                          batch_split=1 if unsplit else None)
        try:
            for on in (False, True):  # both sides' kernels compiled before timing
                switch(on)
                for _ in range(5):
                    trainer.train_step()
            for r in range(rounds):
                for side in ("A", "B") if r % 2 == 0 else ("B", "A"):
                    switch(side == "B")
                    trainer.train_step()  # not counted: the first after a switch
                    for _ in range(10):
                        t0 = time.perf_counter()
                        trainer.train_step()
                        times[side].append((time.perf_counter() - t0) * 1e3)
        finally:
            switch(False)
    return {side: (statistics.median(v), min(v)) for side, v in times.items()}


def main() -> None:
    heap.keep_freed_memory()  # as `wiregrad train` does
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("choice", choices=sorted(CHOICES))
    ap.add_argument("--gpt", help="L,H,C,T,B: layers, heads, width, block, batch")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--unsplit", action="store_true")
    args = ap.parse_args()
    gpt = tuple(int(x) for x in args.gpt.split(",")) if args.gpt else None
    res = compare(args.choice, gpt, args.rounds, args.unsplit)
    (a, a_min), (b, b_min) = res["A"], res["B"]
    print(f"{args.choice} ({args.gpt or 'char_gpt'}{', unsplit' if args.unsplit else ''}): "
          f"A {a:.2f} ms (min {a_min:.2f}), B {b:.2f} ms (min {b_min:.2f}), B / A {b / a:.4f}")


if __name__ == "__main__":
    main()
