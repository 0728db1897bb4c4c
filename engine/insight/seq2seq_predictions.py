"""Live predictions of a sequence-to-sequence graph during training (the editor's Predictions
tab): a few fixed validation pairs decoded greedily with the trainer's current weights, each
marked right or wrong against its target, and the exact-match share of those shown."""

from __future__ import annotations

import numpy as np

from engine.base.errors import WiregradError
from engine.sample.seq2seq import load_model
from engine.sample.seq2seq_search import translate

SHOWN = 8  # validation pairs on show


def is_seq2seq(doc: dict) -> bool:
    """True when *doc* reads sequence pairs."""
    return any(n.get("type") == "sequence_pairs" for n in doc.get("nodes", []))


def val_pairs(doc: dict, datasets: dict) -> list[tuple[str, str]]:
    """The validation (source, target) pairs of *doc*'s sequence_pairs node ([] if none)."""
    node = next(n["id"] for n in doc["nodes"] if n.get("type") == "sequence_pairs")
    ds = datasets.get(node)
    if ds is None:  # keyed by another path: the one dataset that holds pairs
        ds = next((d for d in datasets.values() if "val_pairs" in d.info), None)
    return list(ds.info.get("val_pairs") or []) if ds is not None else []


def chosen(pairs: list, n: int = SHOWN) -> list:
    """*n* pairs spread evenly over *pairs* (the same ones at every step)."""
    if len(pairs) <= n:
        return list(pairs)
    return [pairs[int(i)] for i in np.linspace(0, len(pairs) - 1, n).round()]


def live_pairs(doc: dict, weights: dict, datasets: dict, step: int, n: int = SHOWN) -> dict:
    """``{"task": "seq2seq", "step", "pairs": [{"source", "target", "output", "correct"}],
    "exact_match"}`` — or a ``note`` when there is nothing to decode."""
    out: dict = {"task": "seq2seq", "step": step, "pairs": [], "exact_match": None}
    pairs = chosen(val_pairs(doc, datasets), n)
    if not pairs:
        out["note"] = "no validation pairs to decode (the data node's validation split is empty)"
        return out
    try:
        outputs = translate(load_model(doc, weights, np.float64), [a for a, _ in pairs])
    except WiregradError as exc:
        out["note"] = f"cannot decode the validation pairs: {exc}"
        return out
    out["pairs"] = [{"source": a, "target": b, "output": o, "correct": o == b}
                    for (a, b), o in zip(pairs, outputs)]
    out["exact_match"] = sum(p["correct"] for p in out["pairs"]) / len(pairs)
    return out
