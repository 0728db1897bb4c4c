"""CNN cases timed in CPU time on one thread: Wiregrad against PyTorch on a busy host.

    python -m engine.bench.cnn_cpu [--json PATH] [CASE …]
    python -m engine.bench.cnn_cpu --wall [--threads N] [CASE …]
    python -m engine.bench.cnn_cpu --scaling [--threads N] [CASE …]

``--wall`` times wall-clock steps instead, as ``wiregrad bench`` does for its CNN cases:
Wiregrad at *N* threads (default: every core), Wiregrad on one thread and PyTorch at *N*,
in alternating blocks, with ``threads_vs_one`` per case (meaningful on a quiet host only).

``--scaling`` asks how each side gains from its threads: Wiregrad and PyTorch each at *N*
threads and at one, four callables in alternating wall-clock blocks, with each side's speedup
(one thread ÷ N threads) and the two ratios (quiet host only).

On a host shared with other jobs, wall-clock steps measure the queue for the cores more than
the code (two-thread steps there stretch 10-100×, PyTorch's more than Wiregrad's). With one
thread on each side the whole step runs in the calling thread, so ``time.thread_time()`` — CPU
time the thread actually got — compares the work itself. Each side is timed in alternating
blocks (4 rounds × 6 steps); medians, minima and the ratio of the medians are printed and
optionally written as JSON.

The one-thread cap is set again after PyTorch's first step of each case: PyTorch loads its own
BLAS library then, outside the cap set before it, and the trainer (which decides its batch split
at its first step from every BLAS library's threads) would otherwise split a case without batch
norm into two parts on two threads, whose second part ``thread_time()`` does not see:
``cnn_wide28`` measured 30-36 ms that way (ratio 0.48-0.68) against 62-73 ms unsplit.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def alternate_cpu(fns: dict, rounds: int = 4, per: int = 6) -> dict:
    """``{name: (median ms, min ms)}`` of each callable's thread CPU time, taking turns."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():
        fn()
        fn()
    for _ in range(rounds):
        for name, fn in fns.items():
            for _ in range(per):
                t0 = time.thread_time()
                fn()
                times[name].append((time.thread_time() - t0) * 1e3)
    return {k: (statistics.median(v), min(v)) for k, v in times.items()}


def _cases(tmp: Path, names: list[str]):
    """``(name, document, base folder, twin)`` of every CNN bench case (or those in *names*):
    the two presets at batch 64, then :data:`engine.bench.cnn_cases.CASES` with data in *tmp*."""
    from engine.bench import cnn_cases as C

    for p in ("shapes_cnn", "digits_cnn"):
        name = f"cnn_{p.split('_')[0]}"
        if not names or name in names:
            yield (name, *C._preset_case(p, 64))
    for c in C.CASES:
        if not names or c.name in names:
            yield (c.name, C.document(c, C.write_data(c, tmp)), tmp,
                   lambda w, c=c: C.torch_twin(c, w))


def run(names: list[str]) -> dict:
    """Every CNN case (or those in *names*): CPU ms per step on one thread, both sides."""
    import torch
    from threadpoolctl import threadpool_limits

    from engine.bench import cnn_cases as C

    torch.set_num_threads(1)
    out = {}
    with threadpool_limits(limits=1), tempfile.TemporaryDirectory() as tmp:
        for name, doc, base, twin in _cases(Path(tmp), names):
            trainer, torch_step = C._pair(doc, base, twin)
            torch_step()  # loads PyTorch's own BLAS, which a cap set before it does not cover
            with threadpool_limits(limits=1):  # so the trainer's first step decides unsplit
                res = alternate_cpu({"w": trainer.train_step, "t": torch_step})
            if not trainer.split_note.startswith("unsplit"):
                raise RuntimeError(f"{name}: the one-thread step split ({trainer.split_note})")
            out[name] = {"wiregrad_cpu_ms": res["w"][0], "wiregrad_min_cpu_ms": res["w"][1],
                         "torch_cpu_ms": res["t"][0], "torch_min_cpu_ms": res["t"][1],
                         "ratio": res["w"][0] / res["t"][0]}
            print(f"{name:14s} wiregrad {res['w'][0]:7.2f} ms   torch {res['t'][0]:7.2f} ms"
                  f"   ratio {out[name]['ratio']:.2f}   (CPU time, 1 thread)", flush=True)
    return out


def wall(names: list[str], threads: int) -> dict:
    """Wall-clock CNN cases at *threads* (``wiregrad bench``'s CNN part, full rounds)."""
    import torch
    from threadpoolctl import threadpool_limits

    from engine.bench import cnn_cases as C

    def line(name: str, case: dict) -> str:
        return (f"{name:14s} wiregrad {case['wiregrad_ms']:7.2f} ms   torch "
                f"{case['torch_ms']:7.2f} ms   ratio {case['ratio']:.2f}   threads_vs_one "
                f"{case['threads_vs_one']:.2f}")

    torch.set_num_threads(threads)
    with threadpool_limits(limits=threads):
        return C.bench_cases(False, lambda s: print(s, flush=True), line, tuple(names))


def scaling(names: list[str], threads: int) -> dict:
    """Wall ms per step of both sides at *threads* and at one (alternating blocks), with
    each side's speedup from its threads and the Wiregrad / PyTorch ratio at each count."""
    import torch
    from threadpoolctl import threadpool_limits

    from engine.bench import cnn_cases as C
    from engine.bench.timing import alternate

    def torch_at(count: int, step):
        def run() -> None:
            if torch.get_num_threads() != count:  # once per block: its first call is untimed
                torch.set_num_threads(count)
            step()
        return run

    out = {}
    with threadpool_limits(limits=threads), tempfile.TemporaryDirectory() as tmp:
        for name, doc, base, twin in _cases(Path(tmp), names):
            trainer, torch_step = C._pair(doc, base, twin)
            one = C._one_thread_trainer(doc, base)
            res = alternate({"w": trainer.train_step, "w1": one,
                             "t": torch_at(threads, torch_step),
                             "t1": torch_at(1, torch_step)}, 5, 8, 3)
            ms = {k: v["median"] for k, v in res.items()}
            out[name] = {"wiregrad_ms": ms["w"], "wiregrad_one_thread_ms": ms["w1"],
                         "torch_ms": ms["t"], "torch_one_thread_ms": ms["t1"],
                         "wiregrad_speedup": ms["w1"] / ms["w"],
                         "torch_speedup": ms["t1"] / ms["t"],
                         "ratio": ms["w"] / ms["t"], "one_thread_ratio": ms["w1"] / ms["t1"],
                         "wiregrad_steps": trainer.split_note}
            r = out[name]
            print(f"{name:14s} {threads} threads: wiregrad {ms['w']:6.2f} torch {ms['t']:6.2f} ms "
                  f"(ratio {r['ratio']:.2f})   1 thread: wiregrad {ms['w1']:6.2f} torch "
                  f"{ms['t1']:6.2f} ms (ratio {r['one_thread_ratio']:.2f})   speedup: wiregrad "
                  f"{r['wiregrad_speedup']:.2f}× torch {r['torch_speedup']:.2f}×", flush=True)
    return out


def main(argv: list[str]) -> int:
    from engine.base import heap

    heap.keep_freed_memory()  # the memory policy of `wiregrad train` and the bench
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cases", nargs="*", help="case names (default: all)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--wall", action="store_true", help="wall-clock steps at --threads")
    ap.add_argument("--scaling", action="store_true",
                    help="wall-clock steps at --threads and at one thread, both sides")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="threads for --wall and --scaling (default: every core)")
    args = ap.parse_args(argv)
    if args.scaling:
        cases = scaling(args.cases, args.threads)
    else:
        cases = wall(args.cases, args.threads) if args.wall else run(args.cases)
    if args.json:
        unit = ("wall ms per training step, {t} threads and one" if args.scaling
                else "wall ms per training step, {t} threads" if args.wall
                else "CPU ms per training step, one thread").format(t=args.threads)
        result = {"cases": cases, "unit": unit,
                  "command": "python -m engine.bench.cnn_cpu " + " ".join(argv),
                  "load_average": os.getloadavg(), "date": time.strftime("%Y-%m-%d %H:%M")}
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
