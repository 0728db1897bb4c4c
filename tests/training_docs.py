"""Small trainable documents for the trainer, checkpoint and CLI tests (each trains in
milliseconds per step)."""

from __future__ import annotations

from engine.core import document
from tests.helpers import doc_of, e, n


def classifier(steps: int = 30, seed: int = 0, eval_every: int = 10, checkpoint_every: int = 0,
               dtype: str = "float64", batch_norm: bool = True, **optimizer) -> dict:
    """Spirals → Linear → BatchNorm1d → ReLU → Dropout → Linear → cross-entropy (+ accuracy).

    BatchNorm's running statistics and Dropout's masks make resuming non-trivial.
    """
    opt = {"algorithm": "adamw", "lr": 0.01, "weight_decay": 0.01, "schedule": "cosine",
           "warmup": 5, "min_lr": 0.001, **optimizer}
    nodes = [
        n("data", "classification_2d", kind="spirals", classes=3, n_samples=600, batch_size=32),
        n("fc1", "Linear", in_features=2, out_features=16),
        n("bn", "BatchNorm1d", num_features=16),
        n("act", "relu"),
        n("drop", "Dropout", p=0.1),
        n("fc2", "Linear", in_features=16, out_features=3),
        n("loss", "cross_entropy"),
        n("optimizer", "optimizer", **opt),
        n("accuracy", "accuracy"),
    ]
    edges = [e("data:points", "fc1:x"), e("fc1:y", "bn:x"), e("bn:y", "act:x"),
             e("act:out", "drop:x"), e("drop:y", "fc2:x"), e("fc2:y", "loss:logits"),
             e("data:labels", "loss:labels"), e("loss:loss", "optimizer:loss"),
             e("fc2:y", "accuracy:logits"), e("data:labels", "accuracy:labels")]
    if not batch_norm:  # fc1 → act directly
        nodes = [x for x in nodes if x["id"] != "bn"]
        edges = [x for x in edges if "bn" not in (x["src"]["node"], x["dst"]["node"])]
        edges.append(e("fc1:y", "act:x"))
    training = {"steps": steps, "eval_every": eval_every, "eval_batches": 0,
                "checkpoint_every": checkpoint_every, "seed": seed, "dtype": dtype}
    return doc_of(nodes, edges, training=training)


def nan_graph(steps: int = 5) -> dict:
    """A model whose forward takes ``log`` of a non-positive value: relu → neg → log."""
    nodes = [
        n("data", "classification_2d", kind="moons", n_samples=200, batch_size=16),
        n("fc1", "Linear", in_features=2, out_features=8),
        n("act", "relu"),
        n("flip", "neg"),
        n("bad_log", "log"),
        n("fc2", "Linear", in_features=8, out_features=2),
        n("loss", "cross_entropy"),
        n("optimizer", "optimizer", algorithm="sgd", lr=0.1),
    ]
    edges = [e("data:points", "fc1:x"), e("fc1:y", "act:x"), e("act:out", "flip:x"),
             e("flip:out", "bad_log:x"), e("bad_log:out", "fc2:x"), e("fc2:y", "loss:logits"),
             e("data:labels", "loss:labels"), e("loss:loss", "optimizer:loss")]
    training = {"steps": steps, "eval_every": 0, "eval_batches": 0, "checkpoint_every": 0,
                "seed": 0, "dtype": "float32"}
    return doc_of(nodes, edges, training=training)


def save(doc: dict, path) -> str:
    document.save(doc, path)
    return str(path)
