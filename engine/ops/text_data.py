"""The text corpus data node: random windows of a character stream (nanoGPT's get_batch).

Outputs ``tokens`` (B, T) and ``targets`` (B, T) — the same window shifted by one character.
The dataset (streams, windows, validation batches) is built by
:mod:`engine.data.text_corpus`; this module holds only the op spec.
"""

from __future__ import annotations

import numpy as np

from engine.base.errors import WiregradError
from engine.core.registry import OpSpec, Param, Port, ShapeError, TensorType, register

SHAKESPEARE_VOCAB = ("\n !\"$&'()*,-.0123456789:;?ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]_"
                     "abcdefghijklmnopqrstuvwxyz—")


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
