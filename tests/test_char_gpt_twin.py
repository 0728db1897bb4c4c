"""The char-GPT learns exactly like its PyTorch twin (same init, batches, AdamW, schedule)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from engine.data.datasets import eval_batches_for
from engine.graphs import presets
from engine.train.trainer import Trainer

torch = pytest.importorskip("torch")
from engine.bench.gpt_twin import build_twin, twin_eval, twin_optimizer, twin_step  # noqa: E402

pytestmark = pytest.mark.torch


def _pair(dtype: str, steps: int):
    doc, _ = presets.load("char_gpt")
    trainer = Trainer(doc, dtype=dtype, steps=steps)
    torch.manual_seed(0)
    model = build_twin(doc, {**trainer.params, **trainer.state}, dtype)
    opt, sched = twin_optimizer(model, trainer.graph.optimizer_params, trainer.schedule)
    shadow = copy.deepcopy(next(iter(trainer.batchers.values())))
    return doc, trainer, model, opt, sched, shadow


@pytest.fixture(autouse=True)
def _threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_first_five_steps_match_in_float64():
    _, trainer, model, opt, sched, shadow = _pair("float64", 5)
    for _ in range(5):
        theirs = twin_step(model, opt, sched, shadow.next(), trainer.clip_norm)
        ours = trainer.train_step()["loss"]
        assert abs(ours - theirs) <= 1e-6
    for name, value in model.state_dict().items():
        np.testing.assert_allclose(trainer.params[name], value.numpy(), rtol=1e-7, atol=1e-9)


def test_forward_logits_and_gradients_match_in_float64():
    doc, trainer, model, _, _, shadow = _pair("float64", 1)
    batch = shadow.next()
    tape = trainer.executor.forward({"text": (batch["tokens"], batch["targets"])},
                                    trainer.params, trainer.state, training=True)
    logits = tape.values[trainer.graph.prediction_value]
    grads, _ = trainer.executor.backward(tape, {trainer.graph.loss_value: np.ones(())})
    t_logits = model(torch.from_numpy(batch["tokens"]))
    loss = torch.nn.functional.cross_entropy(t_logits.reshape(-1, t_logits.shape[-1]),
                                             torch.from_numpy(batch["targets"]).reshape(-1))
    loss.backward()
    np.testing.assert_allclose(logits, t_logits.detach().numpy(), rtol=1e-9, atol=1e-10)
    for name, p in model.named_parameters():
        np.testing.assert_allclose(grads[name], p.grad.numpy(), rtol=1e-7, atol=1e-10)


def test_ten_steps_in_float32_track_the_twin():
    """The default suite's slice of the slow 300-step test below: the same code (float32
    training steps, then evaluation on Wiregrad's validation batches), about a minute on a
    machine loaded 7-fold."""
    _, trainer, model, opt, sched, shadow = _pair("float32", 10)
    ours, theirs = [], []
    for _ in range(10):
        theirs.append(twin_step(model, opt, sched, shadow.next(), trainer.clip_norm))
        ours.append(trainer.train_step()["loss"])
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-4)
    val = trainer.evaluate(2)["val_loss"]
    dataset = next(iter(trainer.graph.datasets.values()))
    twin_val = twin_eval(model, eval_batches_for(dataset, 12, 2))
    assert val < ours[0] - 0.3  # it learned (the untrained loss is ln 83 ≈ 4.42)
    assert abs(val - twin_val) <= 1e-3, (val, twin_val)


@pytest.mark.slow
@pytest.mark.timeout(1800)  # ~2 minutes alone; a loaded machine takes many times that
def test_three_hundred_steps_land_on_the_same_validation_loss():
    _, trainer, model, opt, sched, shadow = _pair("float32", 300)
    for _ in range(300):
        twin_step(model, opt, sched, shadow.next(), trainer.clip_norm)
        trainer.train_step()
    ours = trainer.evaluate(20)["val_loss"]
    dataset = next(iter(trainer.graph.datasets.values()))
    theirs = twin_eval(model, eval_batches_for(dataset, 12, 20))
    assert ours < 2.7  # it learned (the untrained loss is ln 83 ≈ 4.42)
    assert abs(ours - theirs) <= 0.02, (ours, theirs)
