"""The convolution's speed paths change no numbers: a training step skips the first
convolution's image gradient (the images are data) and still gets the same weight gradients,
while inspection and gradient checks keep every input's gradient."""

from __future__ import annotations

import numpy as np

from engine.graphs import builders
from engine.train.trainer import Trainer


def _conv_trainer() -> Trainer:
    doc = builders.shapes_cnn(steps=2)
    doc["training"]["dtype"] = "float64"
    for n in doc["nodes"]:
        if n["type"] == "shapes_images":
            n["params"].update(n_samples=40, batch_size=6)
    return Trainer(doc, steps=2)


def _step_grads(trainer: Trainer, release: bool):
    batches = {k: b.next() for k, b in trainer.batchers.items()}
    state = {k: v.copy() for k, v in trainer.state.items()}
    ex = trainer.executor
    tape = ex.forward(trainer._feeds(batches), trainer.params, state, training=True)
    contexts = {ctx.eq.path: ctx for ctx in tape.contexts}
    one = np.ones((), ex.dtype)
    wgrads, vgrads = ex.backward(tape, {trainer.graph.loss_value: one}, release=release)
    return contexts, wgrads, vgrads


def test_the_first_convolution_needs_no_image_gradient_in_a_training_step():
    trainer = _conv_trainer()
    contexts, _, _ = _step_grads(trainer, release=True)
    first, second = contexts["conv1.conv"], contexts["conv2.conv"]
    assert first.needs_input_grad[0] is False  # the images come from the data node
    assert first.needs_input_grad[1:] == (True, True)  # weight and bias
    assert second.needs_input_grad[0] is True  # conv1's output depends on weights


def test_skipping_the_image_gradient_leaves_the_weight_gradients_unchanged():
    a, b = _conv_trainer(), _conv_trainer()
    _, fast, _ = _step_grads(a, release=True)
    _, full, vgrads = _step_grads(b, release=False)
    assert set(fast) == set(full)
    for name in full:
        np.testing.assert_allclose(fast[name], full[name], rtol=1e-12, atol=1e-14)
    # without release (inspection) the images' gradient is still computed
    image_edges = [v for v in vgrads if v.startswith("shapes")]
    assert image_edges and all(np.abs(vgrads[v]).sum() > 0 for v in image_edges)
