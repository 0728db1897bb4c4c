"""The seq2seq bench case: a training step of the dates model and greedy decoding, Wiregrad
against its PyTorch twin (same weights, same batches), measured side by side.

``training_ratio`` = Wiregrad's median step time / the twin's (below 1: Wiregrad is faster);
``decode_ratio`` = Wiregrad's greedy tokens/s / the twin's (the twin has no KV cache and
recomputes the prefix, as a plain PyTorch decoding loop does). Run it with
``python -m engine.bench.seq2seq_bench`` (JSON on stdout).
"""

from __future__ import annotations

import copy
import json
import time

import numpy as np

from engine.graphs.seq2seq_builder import seq2seq_dates
from engine.sample import seq2seq as S
from engine.sample import seq2seq_search as search


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def training_case(steps: int = 20, warmup: int = 3, **template) -> dict:
    """Median seconds per training step of the engine and of the twin (float32)."""
    from engine.bench.seq2seq_twin import build_twin, twin_optimizer, twin_step
    from engine.train.trainer import Trainer

    doc = seq2seq_dates(**{"n_train": 2000, **template})
    trainer = Trainer(doc, dtype="float32", steps=steps + warmup)
    model = build_twin(doc, {**trainer.params, **trainer.state}, "float32")
    opt, sched = twin_optimizer(model, trainer.graph.optimizer_params, trainer.schedule)
    shadow = copy.deepcopy(next(iter(trainer.batchers.values())))
    for _ in range(warmup):
        trainer.train_step()
        twin_step(model, opt, sched, shadow.next(), trainer.clip_norm)
    ours = _median_time(trainer.train_step, steps)
    theirs = _median_time(lambda: twin_step(model, opt, sched, shadow.next(),
                                            trainer.clip_norm), steps)
    return {"step_s": ours, "twin_step_s": theirs, "training_ratio": ours / theirs}


def decoding_case(inputs: int = 8, repeats: int = 3, **template) -> dict:
    """Greedy tokens per second of the cached decoder and of the twin (full recompute)."""
    from engine.bench.seq2seq_twin import build_twin, twin_greedy
    from engine.core.compile import compile_document
    from engine.core.run import init_weights

    doc = seq2seq_dates(**{"n_train": 100, **template})
    weights = init_weights(compile_document(doc, "float32").parameters, 0, np.float32)
    model = S.load_model(doc, weights, np.float32)
    twin = build_twin(doc, weights, "float32").eval()
    texts = ["Tuesday, 3rd of March 1987", "03/03/87", "march 3 1987", "3 Mar. 1987"]
    texts = (texts * inputs)[:inputs]
    batches = [S.encode_texts(model, [t]) for t in texts]
    # Both decode as many tokens per input as ours does (up to its end token).
    lengths = [len(search.greedy(model, ids, mask)[1]) for ids, mask in batches]
    ours = _median_time(lambda: [search.greedy(model, ids, mask, n)
                                 for (ids, mask), n in zip(batches, lengths)], repeats)
    theirs = _median_time(lambda: [twin_greedy(twin, ids, mask.astype(np.float32), n)
                                   for (ids, mask), n in zip(batches, lengths)], repeats)
    tokens = sum(lengths)
    return {"tokens_per_s": tokens / ours, "twin_tokens_per_s": tokens / theirs,
            "decode_ratio": theirs / ours}


def main() -> None:
    print(json.dumps({"training": training_case(), "decoding": decoding_case()}, indent=2))


if __name__ == "__main__":
    main()
