"""The seq2seq cases of ``wiregrad bench``: the ``seq2seq_dates`` preset against its PyTorch
twin (:mod:`engine.bench.seq2seq_twin`), same float32 weights, same batches, timed side by side.

* ``seq2seq_step`` — one training step (batch 32, source 34, target 11, AdamW + clipping) of
  Wiregrad's trainer and of the twin on a deep copy of the same batcher;
* ``seq2seq_decode`` — greedy decoding of 8 date strings one at a time (as ``wiregrad sample
  seq2seq_dates --input …`` does) with the shipped weights: Wiregrad's cached decoder
  (:mod:`engine.sample.seq2seq_search`) against :class:`~engine.bench.seq2seq_twin.TwinDecoder`
  (the encoder once, cross-attention K/V cached, a self-attention KV cache, the same greedy
  rule). Figures are milliseconds per output token; ``speedup`` = the twin's ms per token /
  Wiregrad's (≥ 2 is the target), and ``same_output`` says both decoded the same ids.

The callables take turns (:func:`engine.bench.timing.alternate`). On a busy host, cross-check
with CPU time on one thread (``time.thread_time()``, as :mod:`engine.bench.cnn_cpu` does), or
time the two cases alone in wall clock at a thread count (``--wall THREADS``)::

    python -m engine.bench.seq2seq_bench [--quick] [--wall THREADS] [--json PATH]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

TEXTS = ["Tuesday, 3rd of March 1987", "03/03/87", "march 3 1987", "3 Mar. 1987",
         "1 January 2001", "12/31/99", "the 14th of July, 1789", "Sat 29 Feb 2020"]
N_TRAIN = 2000  # generated training pairs: the step's cost does not depend on it


def preset_doc() -> tuple[dict, Path]:
    """The ``seq2seq_dates`` preset with a smaller generated training set (quicker to build)."""
    from engine.graphs import presets

    doc, path = presets.load("seq2seq_dates")
    doc = copy.deepcopy(doc)
    for node in doc["nodes"]:
        if node["type"] == "sequence_pairs":
            node["params"]["n_train"] = N_TRAIN
    return doc, path


def step_pair(make_trainer: Callable[[dict], Any] | None = None):
    """(trainer, PyTorch step): the preset's training step on both sides, same batches."""
    import torch

    from engine.bench.seq2seq_twin import build_twin, twin_optimizer, twin_step
    from engine.train.trainer import Trainer

    doc, path = preset_doc()
    trainer = (make_trainer(doc) if make_trainer is not None
               else Trainer(doc, base_dir=path.parent, steps=100_000))
    model = build_twin(doc, {**trainer.params, **trainer.state}, "float32")
    opt, sched = twin_optimizer(model, trainer.graph.optimizer_params, trainer.schedule)
    shadow = copy.deepcopy(next(iter(trainer.batchers.values())))
    clip = trainer.clip_norm
    torch.manual_seed(0)
    return trainer, lambda: twin_step(model, opt, sched, shadow.next(), clip)


def decode_pair(texts: list[str] = TEXTS):
    """(ours, theirs, output tokens, same ids): greedy decoding of *texts* one at a time with
    the shipped weights, both sides in float32."""
    from engine.base.io import model_weights
    from engine.bench.seq2seq_twin import TwinDecoder, build_twin
    from engine.sample import seq2seq as S
    from engine.sample import seq2seq_search as search

    doc, path = preset_doc()
    weights = model_weights(path.with_suffix(".safetensors"))
    model = S.load_model(doc, weights, np.float32)
    twin = TwinDecoder(build_twin(doc, weights, "float32").eval())
    inputs = [S.encode_texts(model, [t]) for t in texts]
    twin_inputs = [(ids, mask.astype(np.float32)) for ids, mask in inputs]

    def ours():
        return [search.greedy(model, ids, mask)[0] for ids, mask in inputs]

    def theirs():
        return [twin.greedy(ids, mask, model.max_steps) for ids, mask in twin_inputs]

    mine, other = ours(), theirs()
    same = all(a.shape == b.shape and (a == b).all() for a, b in zip(mine, other))
    return ours, theirs, sum(a.shape[1] for a in mine), same


def bench_cases(quick: bool, log, tools) -> dict:
    """``seq2seq_step`` and ``seq2seq_decode`` (see the module docstring). *tools* is
    :mod:`engine.bench.benchmark` (its ``_line`` and ``_trainer``), passed in so that this
    module does not import it back."""
    from engine.bench.timing import alternate, case_record, per_token

    rounds, per = (2, 3) if quick else (6, 10)
    cases = {}
    trainer, torch_step = step_pair(tools._trainer)
    res = alternate({"w": trainer.train_step, "t": torch_step}, rounds, per, 3)
    cases["seq2seq_step"] = case_record(res["w"], res["t"], batch=32, source_len=34,
                                        target_len=11, wiregrad_steps=trainer.split_note)
    log(tools._line("seq2seq_step", cases["seq2seq_step"]))
    ours, theirs, tokens, same = decode_pair()
    res = per_token(alternate({"w": ours, "t": theirs}, 2 if quick else 4,
                              1 if quick else 3, 1), tokens)
    cases["seq2seq_decode"] = case_record(
        res["w"], res["t"], tokens=tokens, inputs=len(TEXTS), same_output=same,
        wiregrad_tokens_per_s=1e3 / res["w"]["median"],
        torch_tokens_per_s=1e3 / res["t"]["median"],
        speedup=res["t"]["median"] / res["w"]["median"], unit="ms per token")
    log(tools._line("seq2seq_decode", cases["seq2seq_decode"]))
    return cases


# ------------------------------------------------------------------ CPU time, one thread


def cpu_cases(quick: bool = False) -> dict:
    """Both cases in thread CPU time on one thread (see :mod:`engine.bench.cnn_cpu`)."""
    import torch
    from threadpoolctl import threadpool_limits

    from engine.bench.cnn_cpu import alternate_cpu
    from engine.bench.timing import cpu_record, one_thread_trainer

    torch.set_num_threads(1)
    rounds, per = (2, 3) if quick else (4, 6)
    out = {}
    with threadpool_limits(limits=1):
        trainer, torch_step = step_pair(one_thread_trainer)
        res = alternate_cpu({"w": trainer.train_step, "t": torch_step}, rounds, per)
        out["seq2seq_step"] = cpu_record(res, 1)
        ours, theirs, tokens, same = decode_pair()
        res = alternate_cpu({"w": ours, "t": theirs}, rounds, 1 if quick else 2)
        out["seq2seq_decode"] = cpu_record(res, tokens) | {"tokens": tokens,
                                                           "same_output": same}
    return out


def wall_cases(bench_cases: Callable, quick: bool, threads: int) -> dict:
    """*bench_cases* in wall-clock time at *threads* threads, as ``wiregrad bench --threads``
    runs them (without the rest of the bench)."""
    import torch
    from threadpoolctl import threadpool_limits

    from engine.graphs import presets
    from engine.train.trainer import Trainer

    def line(name: str, case: dict) -> str:
        return (f"{name:16s} wiregrad {case['wiregrad_ms']:8.3f} ms   torch "
                f"{case['torch_ms']:8.3f} ms   ratio {case['ratio']:.2f}   (wall, {threads} "
                f"thread(s))")

    tools = SimpleNamespace(_line=line, _trainer=lambda doc: Trainer(
        doc, base_dir=presets.presets_dir(), steps=100_000))
    torch.set_num_threads(threads)
    with threadpool_limits(limits=threads):
        return bench_cases(quick, lambda _: None, tools)


def main(argv: list[str], cases: Callable[[bool], dict] = cpu_cases, name: str = __name__,
         bench_cases: Callable = bench_cases) -> int:
    ap = argparse.ArgumentParser(description="the cases in CPU time on one thread, or wall "
                                             "clock (--wall THREADS)")
    ap.add_argument("--quick", action="store_true", help="fewer samples")
    ap.add_argument("--wall", type=int, metavar="THREADS",
                    help="wall clock at THREADS threads, as wiregrad bench times them")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    load = os.getloadavg()
    if args.wall:
        result = wall_cases(bench_cases, args.quick, args.wall)
        unit = f"wall ms (per step, or per token), {args.wall} thread(s)"
        keys = ("wiregrad_ms", "torch_ms", f"wall, {args.wall} thread(s)")
    else:
        result = cases(args.quick)
        unit, keys = "CPU ms (per step, or per token), one thread", (
            "wiregrad_cpu_ms", "torch_cpu_ms", "CPU time, 1 thread")
    for case, r in result.items():
        print(f"{case:16s} wiregrad {r[keys[0]]:8.3f} ms   torch {r[keys[1]]:8.3f} ms   "
              f"ratio {r['ratio']:.2f}   ({keys[2]})")
    if args.json:
        out = {"cases": result, "unit": unit,
               "command": f"python -m {name} " + " ".join(argv),
               "load_average_before": load, "load_average": os.getloadavg(),
               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
