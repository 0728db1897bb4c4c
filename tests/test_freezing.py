"""Freezing: ``"trainable": false`` on a node keeps its parameters fixed, like PyTorch's
``requires_grad_(False)`` — no update, no weight decay, no share of the clipped global norm."""

from __future__ import annotations

import numpy as np
import pytest

from engine.base.errors import DocumentError
from engine.core import document
from engine.train.trainer import Trainer
from tests.training_docs import classifier


def _frozen(doc: dict, *node_ids: str) -> dict:
    for node in doc["nodes"]:
        if node["id"] in node_ids:
            node["trainable"] = False
    return doc


def test_a_frozen_layer_keeps_its_weights_and_the_rest_trains():
    trainer = Trainer(_frozen(classifier(steps=5, eval_every=0), "fc1"))
    before = {k: v.copy() for k, v in trainer.params.items()}
    assert trainer.frozen == {"fc1.weight", "fc1.bias"}
    records = list(trainer.run())
    assert records[-1]["kind"] == "done"
    for name, value in trainer.params.items():
        same = np.array_equal(value, before[name])
        assert same == (name in trainer.frozen), name
    assert not any(k.startswith("fc1.") for k in trainer.optimizer.state)


def test_freezing_matches_training_the_rest_alone_with_its_global_norm():
    """Clipping sees only the trainable gradients, as torch's clip_grad_norm_ over the
    optimizer's parameters does: with a tiny clip, the trainable update equals a run whose
    frozen part had no gradient at all."""
    doc = _frozen(classifier(steps=1, eval_every=0, clip_norm=1e-3), "fc2")
    frozen = Trainer(doc)
    record = next(r for r in frozen.run() if r["kind"] == "train")
    trainable_grad_norm = record["grad_norm"]
    plain = Trainer(classifier(steps=1, eval_every=0, clip_norm=1e-3))
    full = next(r for r in plain.run() if r["kind"] == "train")["grad_norm"]
    assert trainable_grad_norm < full


def test_trainable_must_be_a_boolean():
    doc = classifier()
    doc["nodes"][1]["trainable"] = "no"
    with pytest.raises(DocumentError, match="trainable"):
        document.from_dict(doc)
    doc["nodes"][1]["trainable"] = False
    assert document.loads(document.dumps(doc))["nodes"][1]["trainable"] is False
