"""The numbers a user cares about on a sequence-to-sequence graph, as metrics: exact-match
sequence accuracy (greedy decoding of validation pairs, the whole output right) and the
character error rate (edits / target characters).

Two faces use them, both injected from above the trainer (``engine.train`` and
``engine.sample`` are independent stages, so the trainer never decodes by itself):

* :func:`eval_hooks` — for ``wiregrad train`` and the editor's worker: at every evaluation
  point an :class:`ExactMatch` hook decodes a fixed, evenly spread subset of the validation
  pairs with the trainer's current weights and adds ``exact_match`` and ``cer`` to the eval
  record (so they reach ``metrics.jsonl``, the progress line, the summary and the editor's
  plots and run list like any other metric). Its cost is bounded by :data:`TRAIN_PAIRS`.
* :func:`evaluate_metrics` — for ``wiregrad evaluate``: the same numbers over the validation
  pairs (all of them, or a ``--pairs`` cap).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from engine.base.errors import WiregradError
from engine.insight.seq2seq_predictions import chosen, is_seq2seq, val_pairs
from engine.sample.seq2seq import load_model
from engine.sample.seq2seq_search import evaluate_pairs

if TYPE_CHECKING:
    from engine.train.trainer import Trainer

TRAIN_PAIRS = 200  # validation pairs decoded at each evaluation point of a training run
EVALUATE_PAIRS = 1000  # `wiregrad evaluate`'s default cap (the dates preset's whole split)


def decode_metrics(doc: dict, datasets: dict, weights: dict[str, np.ndarray],
                   limit: int) -> dict[str, float | int]:
    """``{"pairs", "exact_match", "cer"}`` of greedy decoding (float64) of *doc* with
    *weights* over *limit* of its validation pairs spread evenly (0: all); ``{}`` when the
    graph has no validation pairs. *datasets* are the trainer's, by data node."""
    pairs = val_pairs(doc, datasets)
    if limit:
        pairs = chosen(pairs, limit)
    if not pairs:
        return {}
    result = evaluate_pairs(load_model(doc, weights, np.float64), pairs)
    return {"pairs": result["pairs"], "exact_match": float(result["exact_match"]),
            "cer": float(result["cer"])}


class ExactMatch:
    """An evaluation hook of the :class:`~engine.train.trainer.Trainer`: ``exact_match`` and
    ``cer`` on the same *pairs* validation pairs at every evaluation point.

    A graph the decoder cannot read (a seq2seq graph of another shape) does not stop the
    run: the first failure is reported once in the record (``exact_match_note``) and the
    hook stays quiet afterwards.
    """

    higher_is_better = frozenset({"exact_match"})

    def __init__(self, pairs: int = TRAIN_PAIRS) -> None:
        self.pairs = pairs
        self.failed = False

    def __call__(self, trainer: Trainer) -> dict:
        if self.failed:
            return {}
        try:
            result = decode_metrics(trainer.doc, trainer.graph.datasets,
                                    {**trainer.params, **trainer.state}, self.pairs)
        except WiregradError as exc:
            self.failed = True
            return {"exact_match_note": f"exact match not measured: {exc}"}
        return {k: v for k, v in result.items() if k != "pairs"}


def eval_hooks(doc: dict) -> list[ExactMatch]:
    """The evaluation hooks a training run of *doc* gets: :class:`ExactMatch` on a
    seq2seq graph, none otherwise."""
    return [ExactMatch()] if is_seq2seq(doc) else []


def evaluate_metrics(doc: dict, trainer: Trainer, pairs: int | None
                     ) -> dict[str, float | int | str]:
    """``wiregrad evaluate``'s extra numbers for *doc*: on a seq2seq graph ``pairs``,
    ``exact_match`` and ``cer`` over *pairs* validation pairs (None: :data:`EVALUATE_PAIRS`;
    0: all) with *trainer*'s weights; on any other graph nothing, and ``--pairs`` is refused.
    A graph the decoder cannot read gets ``exact_match_note`` instead, as in training."""
    if not is_seq2seq(doc):
        if pairs is not None:
            raise WiregradError("--pairs applies to sequence-to-sequence graphs (a "
                                "sequence_pairs data source) only", field="--pairs")
        return {}
    try:
        measured = decode_metrics(doc, trainer.graph.datasets,
                                  {**trainer.params, **trainer.state},
                                  EVALUATE_PAIRS if pairs is None else pairs)
        return dict(measured.items())
    except WiregradError as exc:
        return {"exact_match_note": f"exact match not measured: {exc}"}
