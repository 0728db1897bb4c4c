"""Sequence-to-sequence data and metrics: the ``sequence_pairs`` data source and
``token_accuracy`` (accuracy over the positions that are not padding).

Token ids: 0 = pad, 1 = begin, 2 = end, then the characters of ``vocab`` in order (3, 4, …),
so a model has ``len(vocab) + 3`` classes — or, with ``tokenizer`` = bpe, the ``vocab_size``
byte-level BPE pieces (``vocab_size + 3`` classes; :mod:`engine.data.pair_tokenizer`).
``target_out`` marks padding with the loss's ``ignore_index`` (-100). The dataset itself is
built by :mod:`engine.data.sequence_pairs`.
"""

from __future__ import annotations

import numpy as np

from engine.core.registry import Example, OpSpec, Param, Port, ShapeError, TensorType, register
from engine.ops._util import per_example, require_float
from engine.ops.data import _checked_forward, _no_grad
from engine.ops.stored_tokenizer import check_stored

PAD, BOS, EOS = 0, 1, 2
SPECIALS = 3
IGNORE = -100  # cross_entropy's default ignore_index
DATES_VOCAB = (" ',-./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
               "abcdefghijklmnopqrstuvwxyz")


def classes(vocab: str) -> int:
    """Output classes of a model over *vocab*: its characters and the three specials."""
    return len(vocab) + SPECIALS


def _infer(inputs, params):
    if params.get("tokenizer", "char") == "bpe":
        check_stored(params)
        s, t = params["max_source_len"], params["max_target_len"] + 1
        return [TensorType(("B", s), "int"), TensorType(("B", s), "float"),
                TensorType(("B", t), "int"), TensorType(("B", t), "int")]
    if not params["vocab"]:
        raise ShapeError("the vocabulary is empty: set 'vocab' (every character of the "
                         "sources and targets)")
    if len(set(params["vocab"])) != len(params["vocab"]):
        raise ShapeError("'vocab' lists a character twice")
    s, t = params["max_source_len"], params["max_target_len"] + 1
    return [TensorType(("B", s), "int"), TensorType(("B", s), "float"),
            TensorType(("B", t), "int"), TensorType(("B", t), "int")]


register(OpSpec(
    name="sequence_pairs",
    category="data",
    doc="""Pairs of sequences for an encoder–decoder: read one, write the other.

    ``source`` (B, S) character ids padded with 0, ``source_mask`` (B, S) 1 for a real
    character and 0 for padding, ``target_in`` (B, T) the begin token then the target
    (the decoder's input), ``target_out`` (B, T) the target then the end token (the labels;
    padding = -100, the loss's ignore_index). S = max_source_len, T = max_target_len + 1.

    ``dates``: human-written dates in 18 formats → ISO (1987-03-03), ``n_train`` drawn from
    the seed; ``n_val`` calendar dates are held out of training in every format.
    ``file``: a UTF-8 TSV of ``source<TAB>target`` lines; ``val_fraction`` of them validate.

    ``tokenizer``: ``char`` (the characters of ``vocab``) or ``bpe`` (byte-level BPE of
    ``vocab_size`` pieces trained on the training pairs, one vocabulary for both sides, stored
    in ``tokenizer_data`` so the document decodes without its file); lengths then count
    tokens. Ids 0–2 are pad, begin, end in both.""",
    inputs=[],
    outputs=[Port("source", dtype="int", differentiable=False),
             Port("source_mask", differentiable=False),
             Port("target_in", dtype="int", differentiable=False),
             Port("target_out", dtype="int", differentiable=False)],
    params=[
        Param("source", "choice", "dates", choices=("dates", "file"),
              doc="The generated dates task, or a TSV file of pairs."),
        Param("path", "string", "", doc="UTF-8 TSV file, one source<TAB>target per line."),
        Param("vocab", "string", DATES_VOCAB,
              doc="The characters, in id order (ids 0–2 are pad, begin, end)."),
        Param("tokenizer", "choice", "char", choices=("char", "bpe"),
              doc="Characters of 'vocab', or byte-level BPE pieces trained on the training "
                  "pairs (one vocabulary for source and target)."),
        Param("vocab_size", "int", 512, minimum=256, maximum=65536,
              doc="BPE pieces (the model has vocab_size + 3 classes); char uses len(vocab)."),
        Param("tokenizer_data", "string", "",
              doc="The trained BPE tokenizer (Hugging Face JSON), kept with the model so "
                  "decoding needs no file."),
        Param("max_source_len", "int", 34, minimum=1, maximum=4096,
              doc="Longest source S in tokens (characters for char)."),
        Param("max_target_len", "int", 10, minimum=1, maximum=4096,
              doc="Longest target in tokens (T = this + 1 for the begin/end token)."),
        Param("too_long", "choice", "skip", choices=("skip", "refuse"),
              doc="A file pair longer than the maximum: skip it (and count it) or refuse the "
                  "file naming the line."),
        Param("batch_size", "int", 64, minimum=1, maximum=65_536,
              doc="Pairs per training step."),
        Param("n_train", "int", 50_000, minimum=2, maximum=2_000_000,
              doc="Training pairs generated (dates)."),
        Param("n_val", "int", 1000, minimum=1, maximum=20_000,
              doc="Calendar dates held out for validation (dates)."),
        Param("val_fraction", "float", 0.1, minimum=0.0, maximum=0.9,
              doc="Share of the file's pairs held out for validation (a fixed, seeded split)."),
        Param("seed", "int", 0, minimum=0, maximum=2**31 - 1,
              doc="Seeds generation, the split and the shuffling."),
    ],
    infer=_infer,
    forward=_checked_forward(_infer),
    backward=_no_grad,
    family="data",
))


def _acc_infer(inputs, params):
    logits, labels = inputs
    require_float(logits, "logits")
    if labels.dtype != "int":
        raise ShapeError("expects integer labels", port="labels")
    if tuple(labels.shape) != tuple(logits.shape[:-1]):
        raise ShapeError(f"labels must have shape {list(logits.shape[:-1])}, got "
                         f"{list(labels.shape)}", port="labels")
    return [TensorType((), "float")]


def _acc_forward(ctx, params, logits, labels):
    keep = labels != int(params["ignore_index"])
    hits = (np.argmax(logits, axis=-1) == labels) & keep
    n = int(keep.sum())
    return np.asarray(hits.sum() / n if n else 0.0, dtype=logits.dtype)


register(OpSpec(
    name="token_accuracy",
    category="metric",
    doc="""Token accuracy: the share of labelled positions whose largest logit is the label.

    Positions whose label is ``ignore_index`` (padding, -100 like the loss) are left out.""",
    inputs=[Port("logits"), Port("labels", dtype="int", differentiable=False)],
    outputs=[Port("value")],
    params=[Param("ignore_index", "int", IGNORE, doc="Label value left out (padding).")],
    infer=_acc_infer,
    forward=_acc_forward,
    backward=lambda ctx, params, g: (None, None),
    flops=lambda i, o, p: per_example(i[0]),
    examples=[Example([((2, 5, 6), "float"), ((2, 5), "int", 6)], {"ignore_index": 0},
                      note="class 0 ignored")],
    family="metrics",
))
