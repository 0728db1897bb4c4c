"""The text corpus data node: random windows of a character stream (nanoGPT's get_batch).

Outputs ``tokens`` (B, T) and ``targets`` (B, T) — the same window shifted by one character.
The dataset (streams, windows, validation batches) is built by
:mod:`engine.data.text_corpus`; this module holds only the op spec.
"""

from __future__ import annotations

import numpy as np

from engine.base.errors import WiregradError
from engine.core.registry import OpSpec, Param, Port, ShapeError, TensorType, register
from engine.ops.stored_tokenizer import check_stored

SHAKESPEARE_VOCAB = ("\n !\"$&'()*,-.0123456789:;?ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]_"
                     "abcdefghijklmnopqrstuvwxyz—")


def _infer(inputs, params):
    if params.get("tokenizer", "char") == "char" and not params["vocab"]:
        raise ShapeError("the vocabulary is empty: set 'vocab' (the corpus's characters)")
    check_stored(params)
    t = int(params["block_size"])  # T is fixed by the source: windows of block_size tokens
    return [TensorType(("B", t), "int"), TensorType(("B", t), "int")]


def _forward(ctx, params):
    """The fed (tokens, targets) windows, checked against (B, block_size): never truncated."""
    if ctx.feed is None:
        raise WiregradError("no text is fed to this data source", node=ctx.eq.path)
    tokens, targets = (np.asarray(a) for a in ctx.feed)
    t = int(params["block_size"])
    for name, arr in (("tokens", tokens), ("targets", targets)):
        if arr.ndim != 2 or arr.shape[1] != t or arr.shape != tokens.shape:
            raise WiregradError(f"fed {name} of shape {list(arr.shape)} do not match "
                                f"(B, {t}): windows must be block_size = {t} tokens long",
                                node=ctx.eq.path, port=name)
        if arr.dtype.kind not in "iu":
            raise WiregradError(f"expects integer token ids, got {arr.dtype}",
                                node=ctx.eq.path, port=name)
    return (np.ascontiguousarray(tokens, dtype=np.int64),
            np.ascontiguousarray(targets, dtype=np.int64))


register(OpSpec(
    name="text_corpus",
    category="data",
    doc="""Text: random windows of T = block_size tokens and the next token of each.

    Tokens are characters (``tokenizer`` = char, the ``vocab`` string) or byte-level BPE
    pieces (``tokenizer`` = bpe, ``vocab_size`` of them, trained on the training split and
    stored in ``tokenizer_data``).

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
        Param("tokenizer", "choice", "char", choices=("char", "bpe"),
              doc="char: one token per character of 'vocab'. bpe: byte-level BPE trained on "
                  "the training split (docs/data.md)."),
        Param("vocab_size", "int", 2048, minimum=256, maximum=65536,
              doc="Tokens of a BPE tokenizer (the model's classes); char uses len(vocab)."),
        Param("tokenizer_data", "string", "",
              doc="The trained BPE tokenizer (Hugging Face JSON), kept with the model so "
                  "sampling needs no corpus; empty = train it from the corpus (cached)."),
    ],
    infer=_infer,
    forward=_forward,
    backward=lambda ctx, params: (),
    family="data",
))
