"""PyTorch reference for the sequence-to-sequence metric (token accuracy over labelled
positions, as torchmetrics' ``ignore_index``)."""

from __future__ import annotations


def _token_accuracy(p, inputs, weights, state, ours):
    logits, labels = inputs
    keep = labels != p["ignore_index"]
    hits = (logits.detach().argmax(-1) == labels) & keep
    return hits.sum().to(logits.dtype) / keep.sum().clamp_min(1).to(logits.dtype)


REFS = {"token_accuracy": _token_accuracy}
