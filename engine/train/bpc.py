"""Bits per character: a text model's validation loss in a unit every tokenizer shares.

A cross-entropy in nats per token becomes bits per Unicode character of the validation text:
``bpc = loss · val_tokens / (val_characters · ln 2)``. For a character model the two counts are
equal and ``bpc = loss / ln 2``; a BPE model's tokens cover ~2.6 characters each, so its loss
per token is larger while its bpc can be smaller. Only a plain cross-entropy (no label
smoothing) on one ``text_corpus`` source has a bpc.
"""

from __future__ import annotations

import math

LN2 = math.log(2.0)


def bits_per_character(loss: float, val_tokens: int, val_characters: int) -> float:
    """Nats per token → bits per character."""
    return float(loss) * val_tokens / (max(1, val_characters) * LN2)


def graph_bpc(doc: dict, graph, val_loss: float) -> float | None:
    """The bpc of a training graph's validation loss, or None when it is no text LM."""
    if len(graph.sequence_nodes) != 1 or len(graph.datasets) != 1:
        return None
    info = graph.datasets[next(iter(graph.sequence_nodes))].info
    loss = next((n for n in doc["nodes"] if n["id"] == graph.loss), None)
    if loss is None or loss["type"] != "cross_entropy" or "val_characters" not in info:
        return None
    if float(loss.get("params", {}).get("label_smoothing", 0.0) or 0.0) != 0.0:
        return None
    return bits_per_character(val_loss, int(info["val"]), int(info["val_characters"]))
