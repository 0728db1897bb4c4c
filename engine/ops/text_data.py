"""The text corpus data node: random windows of a character stream (nanoGPT's get_batch).

Outputs ``tokens`` (B, T) and ``targets`` (B, T) — the same window shifted by one character.
The corpus splits into the first 90 % (train) and the last 10 % (validation) of the stream.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.base.errors import WiregradError
from engine.core.registry import OpSpec, Param, Port, ShapeError, TensorType, register
from engine.data import datasets as data

SHAKESPEARE_VOCAB = ("\n !\"$&'()*,-.0123456789:;?ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]_"
                     "abcdefghijklmnopqrstuvwxyz—")


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
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, self.step])
        self.step += 1
        return windows(self.stream, rng.integers(0, len(self.stream) - self.block - 1,
                                                 size=self.batch_size), self.block)

    def state(self) -> dict:
        return {"kind": "windows", "step": self.step, "seed": self.seed}

    def set_state(self, state: dict) -> None:
        self.step, self.seed = int(state["step"]), int(state["seed"])


def windows(stream: np.ndarray, starts: np.ndarray, block: int) -> dict[str, np.ndarray]:
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


def corpus_text(params: dict, base: Path | None, node: str | None) -> str:
    from engine.data import text

    if params["source"] == "shakespeare":
        return text.shakespeare()
    if not params["path"]:
        raise WiregradError("choose a UTF-8 text file for this corpus", node=node, field="path")
    path = Path(params["path"]).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    return text.read_text_file(path, node)


def _build(params: dict, base: Path | None, node: str | None) -> data.Dataset:
    from engine.data.text import Codec

    corpus = corpus_text(params, base, node)
    codec = Codec(params["vocab"])
    stream = codec.encode(corpus, "the corpus", node).astype(np.int64)
    n_val = int(len(stream) * params["val_fraction"])
    train, val = stream[: len(stream) - n_val], stream[len(stream) - n_val:]
    block = params["block_size"]
    for part, name in ((train, "training"), (val, "validation")):
        if len(part) <= block + 1:
            raise WiregradError(f"the {name} text ({len(part)} characters) is shorter than one "
                                f"block of {block}", node=node)
    train.flags.writeable = False
    val.flags.writeable = False
    info = {"examples": len(stream), "train": len(train), "val": len(val), "characters":
            len(corpus), "vocab_size": len(codec.vocab), "classes": len(codec.vocab),
            "description": f"{len(corpus):,} characters, {len(codec.vocab)} symbols"}
    seed = params["seed"]
    return data.Dataset(
        train={"stream": train}, val={"stream": val}, info=info,
        make_batcher=lambda batch_size, s: WindowBatcher(train, block, batch_size, s),
        eval_batches=lambda batch_size, max_batches: val_batches(val, block, batch_size,
                                                                 max_batches, seed),
    )


data.DATASET_BUILDERS["text_corpus"] = _build


def _infer(inputs, params):
    if not params["vocab"]:
        raise ShapeError("the vocabulary is empty: set 'vocab' (the corpus's characters)")
    return [TensorType(("B", "T"), "int"), TensorType(("B", "T"), "int")]


def _forward(ctx, params):
    if ctx.feed is None:
        raise WiregradError("no text is fed to this data source", node=ctx.eq.path)
    tokens, targets = ctx.feed
    return (np.ascontiguousarray(tokens, dtype=np.int64),
            np.ascontiguousarray(targets, dtype=np.int64))


register(OpSpec(
    name="text_corpus",
    category="data",
    doc="""Character-level text: random windows of T characters and the next character of each.

    ``source`` is Shakespeare's plays (the ``shakespeare`` extra) or a UTF-8 file you choose.
    ``vocab`` holds every character the model knows, so shapes are fixed without the corpus.
    The first 90 % of the text trains, the last 10 % validates.""",
    inputs=[],
    outputs=[Port("tokens", dtype="int"), Port("targets", dtype="int")],
    params=[
        Param("source", "choice", "shakespeare", choices=("shakespeare", "file"),
              doc="Bundled Shakespeare plays, or a text file."),
        Param("path", "string", "", doc="UTF-8 text file (source = file)."),
        Param("vocab", "string", SHAKESPEARE_VOCAB, doc="The characters, in id order."),
        Param("block_size", "int", 64, minimum=1, maximum=65536, doc="Window length T."),
        Param("batch_size", "int", 12, minimum=1, doc="Windows per batch."),
        Param("val_fraction", "float", 0.1, minimum=0.0, maximum=0.9,
              doc="Share of the text (at the end) kept for validation."),
        Param("seed", "int", 0, minimum=0, doc="Seed of the validation windows."),
    ],
    infer=_infer,
    forward=_forward,
    backward=lambda ctx, params: (),
    family="data",
))
