"""Do the non-convolution ops' two-core splits pay? CNN training steps at the trainer's defaults
with batch norm (blocks of channels), 2×2 pooling (blocks of images) and the activation
kernels (blocks of elements) split as :mod:`engine.ops.two_cores` decides, against the same
ops run whole, taking turns in blocks of steps in one process.

    python bench/two_cores_ops.py [CASE …] [--rounds N]

Prints per case the median wall ms per step of each side, their ratio (split / whole: below 1
means the splits pay) and the median process CPU ms (both threads). Wall-clock figures mean
something only on a quiet host with two free cores; the convolutions split the same way on
both sides. Cases: the bench's CNN cases (default: those with batch norm, whose steps are
not split by rows).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from engine.bench import cnn_cases
from engine.ops import elementwise, norm, pool
from engine.train.trainer import Trainer

DEFAULT = ("cnn_issue24", "cnn_rgb32", "cnn_stride20")
SPLIT = (norm._by_channels, pool._by_rows, elementwise._blocks)
WHOLE = (lambda c, work, fn: fn(0, c), lambda n, elements, fn: fn(0, n), lambda x: None)


def _use(impl: tuple) -> None:
    norm._by_channels, pool._by_rows, elementwise._blocks = impl


def _trainer(name: str, tmp: Path) -> Trainer:
    case = next(c for c in cnn_cases.CASES if c.name == name)
    doc = cnn_cases.document(case, cnn_cases.write_data(case, tmp))
    return Trainer(doc, base_dir=tmp, steps=1_000_000)


def measure(name: str, rounds: int, per: int = 4) -> dict:
    """``{side: (median wall ms, median process CPU ms)}`` for the split and whole sides."""
    times: dict[str, list[tuple[float, float]]] = {"split": [], "whole": []}
    with tempfile.TemporaryDirectory() as tmp:
        trainer = _trainer(name, Path(tmp))
        try:
            for _ in range(5):
                trainer.train_step()
            for _ in range(rounds):
                for side, impl in (("split", SPLIT), ("whole", WHOLE)):
                    _use(impl)
                    for _ in range(per):
                        w0, c0 = time.perf_counter(), time.process_time()
                        trainer.train_step()
                        times[side].append(((time.perf_counter() - w0) * 1e3,
                                            (time.process_time() - c0) * 1e3))
        finally:
            _use(SPLIT)
    return {side: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
            for side, v in times.items()}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cases", nargs="*", help=f"case names (default: {' '.join(DEFAULT)})")
    ap.add_argument("--rounds", type=int, default=12, help="alternations (4 steps a side)")
    args = ap.parse_args(argv)
    for name in args.cases or DEFAULT:
        r = measure(name, args.rounds)
        print(f"{name:14s} split {r['split'][0]:7.2f} ms  whole {r['whole'][0]:7.2f} ms  "
              f"ratio {r['split'][0] / r['whole'][0]:.3f}   CPU split {r['split'][1]:.2f} "
              f"whole {r['whole'][1]:.2f} ms", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
