"""The text corpus dataset: random windows of a character stream (nanoGPT's get_batch).

Builds what the ``text_corpus`` node (``engine/ops/text_data.py``) feeds: ``tokens`` (B, T)
and ``targets`` (B, T), the same window shifted by one character. The corpus splits into the
first 90 % (train) and the last 10 % (validation) of the stream; the dataset holds the two
streams (``"stream"``) and batches them with :class:`WindowBatcher` / :func:`val_batches`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.base.errors import WiregradError
from engine.data.common import Dataset
from engine.data.text import corpus_text
from engine.data.tokenizers import corpus_streams, size_note


class WindowBatcher:
    """Random (B, T+1) windows of a 1-D token stream, seeded per step (resumable)."""

    def __init__(self, stream: np.ndarray, block_size: int, batch_size: int, seed: int):
        if len(stream) <= block_size + 1:
            raise WiregradError(f"the training text ({len(stream)} characters) is shorter "
                                f"than one block of {block_size}")
        self.stream, self.block, self.batch_size, self.seed = stream, block_size, batch_size, seed
        self.step = 0

    @property
    def epoch(self) -> float:
        """Characters seen / characters in the stream."""
        return self.step * self.batch_size * self.block / len(self.stream)

    def next(self) -> dict[str, np.ndarray]:
        """The next batch of windows (each step's starts drawn from (seed, step))."""
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, self.step])
        self.step += 1
        return windows(self.stream, rng.integers(0, len(self.stream) - self.block - 1,
                                                 size=self.batch_size), self.block)

    def state(self) -> dict:
        """JSON-able position for a checkpoint."""
        return {"kind": "windows", "step": self.step, "seed": self.seed}

    def set_state(self, state: dict) -> None:
        """Continue from a saved :meth:`state`."""
        self.step, self.seed = int(state["step"]), int(state["seed"])


def windows(stream: np.ndarray, starts: np.ndarray, block: int) -> dict[str, np.ndarray]:
    """Tokens (B, block) at *starts* and the targets, the same windows one token later."""
    idx = starts[:, None] + np.arange(block + 1)[None, :]  # (B, T+1)
    chunk = stream[idx]
    return {"tokens": np.ascontiguousarray(chunk[:, :-1]),
            "targets": np.ascontiguousarray(chunk[:, 1:])}


def val_batches(stream: np.ndarray, block: int, batch_size: int, max_batches: int, seed: int):
    """Fixed, seeded validation windows (the same every evaluation, comparable over time)."""
    count = max_batches or max(1, min(50, (len(stream) - block - 1) // (block * batch_size)))
    rng = np.random.default_rng([seed & 0xFFFFFFFF, 0x5EED])
    for _ in range(count):
        yield windows(stream, rng.integers(0, len(stream) - block - 1, size=batch_size), block)


def build(params: dict, base: Path | None, node: str | None) -> Dataset:
    """The text node's dataset: train and validation token streams, batched as windows."""
    corpus = corpus_text(params, base, node)
    streams = corpus_streams(corpus, params, node)  # char (the vocab) or BPE, 90/10 split
    train, val = streams.train, streams.val
    block = params["block_size"]
    for part, name in ((train, "training"), (val, "validation")):
        if len(part) <= block + 1:
            raise WiregradError(f"the {name} text ({len(part)} characters) is shorter than one "
                                f"block of {block}", node=node)
    train.flags.writeable = False
    val.flags.writeable = False
    vocab = streams.tokenizer.vocab_size
    classes = vocab if streams.tokenizer.kind == "char" else int(params["vocab_size"])
    unit = "symbols" if streams.tokenizer.kind == "char" else f"{streams.tokenizer.kind} tokens"
    info = {"examples": len(train) + len(val), "train": len(train), "val": len(val),
            "characters": len(corpus), "vocab_size": vocab, "classes": classes,
            "tokenizer": streams.tokenizer.kind,
            "val_characters": streams.val_characters,  # bpc = loss·val/(val_characters·ln 2)
            "description": f"{len(corpus):,} characters, {vocab} {unit}"}
    note = size_note(vocab, classes) if streams.tokenizer.kind == "bpe" else None
    if note:
        info["note"] = note
    seed = params["seed"]
    return Dataset(
        train={"stream": train}, val={"stream": val}, info=info,
        make_batcher=lambda batch_size, s: WindowBatcher(train, block, batch_size, s),
        eval_batches=lambda batch_size, max_batches: val_batches(val, block, batch_size,
                                                                 max_batches, seed),
    )
