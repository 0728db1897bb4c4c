"""The word-GPT cases of ``wiregrad bench``: the ``word_gpt`` preset (4 × 128-wide blocks over
2,048 byte-level BPE tokens, block 64, batch 12) against its PyTorch twin
(:func:`engine.bench.gpt_twin.build_twin`), same float32 weights and batches, side by side.

* ``word_gpt_step`` — one training step (AdamW + clipping, tied 2,048-way head and cross-
  entropy) of Wiregrad's trainer and of the twin on a deep copy of the same batcher;
* ``word_gpt_sample`` — sampling with the shipped weights (temperature 0.8, the window sliding
  past the 64-token block) by :class:`engine.sample.sampler.Sampler` against
  :class:`engine.bench.twins.TorchSampler` (the same algorithm with a PyTorch KV cache).
  Figures are milliseconds per token; ``speedup`` = the twin's / Wiregrad's (≥ 2 is the
  target).

Cross-check in CPU time on one thread (``time.thread_time()``) on a busy host, or time the
two cases alone in wall clock (``--wall THREADS``)::

    python -m engine.bench.word_gpt_bench [--quick] [--wall THREADS] [--json PATH]
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

PROMPT = "ROMEO:\n"


def step_pair(make_trainer: Callable[[dict], Any] | None = None):
    """(trainer, PyTorch step): the preset's training step on both sides, same batches."""
    from engine.bench.gpt_twin import twin_step_for
    from engine.graphs import presets
    from engine.train.trainer import Trainer

    doc, path = presets.load("word_gpt")
    trainer = (make_trainer(doc) if make_trainer is not None
               else Trainer(doc, base_dir=path.parent, steps=100_000))
    return trainer, twin_step_for(trainer, doc)


def sample_pair(n: int):
    """(ours, theirs): *n* tokens sampled after :data:`PROMPT` with the shipped weights."""
    from engine.base.io import model_weights
    from engine.bench.gpt_twin import build_twin, gpt_config
    from engine.bench.twins import TorchSampler
    from engine.graphs import presets
    from engine.sample.sampler import Sampler

    doc, path = presets.load("word_gpt")
    weights = model_weights(path.with_suffix(".safetensors"))
    sampler = Sampler(doc, weights)
    cfg = gpt_config(doc)
    theirs = TorchSampler(build_twin(doc, {**sampler.weights, **sampler.state}),
                          cfg["block_size"], cfg["heads"])
    prompt = list(sampler.tokenizer.encode(PROMPT, "the prompt"))

    def ours():
        return "".join(sampler.generate(PROMPT, n, temperature=0.8, seed=0))

    return ours, lambda: theirs.generate(prompt, n, 0.8, 0)


def bench_cases(quick: bool, log, tools) -> dict:
    """``word_gpt_step`` and ``word_gpt_sample`` (see the module docstring). *tools* is
    :mod:`engine.bench.benchmark` (its ``_line`` and ``_trainer``)."""
    from engine.bench.timing import alternate, case_record, per_token

    rounds, per = (2, 3) if quick else (6, 10)
    cases = {}
    trainer, torch_step = step_pair(tools._trainer)
    res = alternate({"w": trainer.train_step, "t": torch_step}, rounds, per, 3)
    cases["word_gpt_step"] = case_record(res["w"], res["t"], vocab=2048, batch=12, block=64,
                                         wiregrad_steps=trainer.split_note)
    log(tools._line("word_gpt_step", cases["word_gpt_step"]))
    del trainer, torch_step
    n = 80 if quick else 400
    ours, theirs = sample_pair(n)
    res = per_token(alternate({"w": ours, "t": theirs}, 2 if quick else 3, 1, 1), n)
    cases["word_gpt_sample"] = case_record(
        res["w"], res["t"], tokens=n, wiregrad_tokens_per_s=1e3 / res["w"]["median"],
        torch_tokens_per_s=1e3 / res["t"]["median"],
        speedup=res["t"]["median"] / res["w"]["median"], unit="ms per token")
    log(tools._line("word_gpt_sample", cases["word_gpt_sample"]))
    return cases


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
        out["word_gpt_step"] = cpu_record(res, 1)
        n = 80 if quick else 200
        ours, theirs = sample_pair(n)
        res = alternate_cpu({"w": ours, "t": theirs}, rounds, 1 if quick else 2)
        out["word_gpt_sample"] = cpu_record(res, n) | {"tokens": n}
    return out


if __name__ == "__main__":
    from engine.bench.seq2seq_bench import main

    raise SystemExit(main(sys.argv[1:], cpu_cases, "engine.bench.word_gpt_bench", bench_cases))
