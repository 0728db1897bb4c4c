"""The seq2seq graph agrees with its PyTorch twin in float64: logits, every parameter gradient,
and five training steps (same init, same batches, AdamW with the preset's schedule)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from engine.graphs.seq2seq_builder import seq2seq_dates
from engine.train.trainer import Trainer

torch = pytest.importorskip("torch")
from engine.bench.seq2seq_twin import (  # noqa: E402
    build_twin,
    twin_greedy,
    twin_loss,
    twin_optimizer,
    twin_step,
)

pytestmark = pytest.mark.torch


@pytest.fixture(autouse=True)
def _threads():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _pair(steps: int):
    doc = seq2seq_dates(layers=2, width=16, heads=2, batch=8, n_train=200, steps=steps)
    trainer = Trainer(doc, dtype="float64", steps=steps)
    model = build_twin(doc, {**trainer.params, **trainer.state}, "float64")
    shadow = copy.deepcopy(next(iter(trainer.batchers.values())))
    return doc, trainer, model, shadow


def _feed(batch):
    return {"pairs": (batch["source"], batch["source_mask"], batch["target_in"],
                      batch["target_out"])}


def test_logits_and_every_gradient_match_in_float64():
    _, trainer, model, shadow = _pair(1)
    batch = shadow.next()
    assert (batch["source_mask"] == 0).any()  # padding is exercised
    tape = trainer.executor.forward(_feed(batch), trainer.params, trainer.state, training=True)
    grads, _ = trainer.executor.backward(tape, {trainer.graph.loss_value: np.ones(())})
    loss = twin_loss(model, batch)
    loss.backward()
    assert abs(float(tape.values[trainer.graph.loss_value]) - float(loss.detach())) <= 1e-12
    logits = model(*(torch.from_numpy(batch[k]) for k in ("source", "source_mask",
                                                           "target_in")))
    np.testing.assert_allclose(tape.values[trainer.graph.prediction_value],
                               logits.detach().numpy(), rtol=1e-10, atol=1e-12)
    named = dict(model.named_parameters())
    assert set(named) == set(trainer.params)
    for name, p in named.items():
        np.testing.assert_allclose(grads[name], p.grad.numpy(), rtol=1e-8, atol=1e-11,
                                   err_msg=name)


def test_five_training_steps_match_in_float64():
    _, trainer, model, shadow = _pair(5)
    opt, sched = twin_optimizer(model, trainer.graph.optimizer_params, trainer.schedule)
    for _ in range(5):
        theirs = twin_step(model, opt, sched, shadow.next(), trainer.clip_norm)
        ours = trainer.train_step()["loss"]
        assert abs(ours - theirs) <= 1e-9
    for name, value in model.state_dict().items():
        np.testing.assert_allclose(trainer.params[name], value.numpy(), rtol=1e-7, atol=1e-9,
                                   err_msg=name)


def test_the_twins_greedy_decoding_equals_ours():
    from engine.sample import seq2seq as S
    from engine.sample import seq2seq_search as search

    doc, trainer, model, _ = _pair(1)
    ours = S.load_model(doc, trainer.params)
    ids, mask = S.encode_texts(ours, ["3rd of March, 1987", "03/03/87"])
    mine, _ = search.greedy(ours, ids, mask, max_tokens=6)
    theirs = twin_greedy(model, ids, mask, 6)
    # until a row's end token both pick the same ids
    for a, b in zip(mine, theirs):
        stop = next((i for i, t in enumerate(a) if t == 2), len(a))
        assert list(a[:stop + 1]) == list(b[:stop + 1])


@pytest.mark.slow
def test_300_float32_steps_end_within_002_validation_loss_of_the_twin():
    from engine.data.datasets import eval_batches_for

    doc = seq2seq_dates(n_train=20_000, steps=300)
    trainer = Trainer(doc, dtype="float32", steps=300)
    model = build_twin(doc, {**trainer.params, **trainer.state}, "float32")
    opt, sched = twin_optimizer(model, trainer.graph.optimizer_params, trainer.schedule)
    shadow = copy.deepcopy(next(iter(trainer.batchers.values())))
    for _ in range(300):
        twin_step(model, opt, sched, shadow.next(), trainer.clip_norm)
    records = list(trainer.run())
    ours = [r for r in records if r["kind"] == "eval"][-1]["val_loss"]
    dataset = trainer.graph.datasets["pairs"]
    total = count = 0.0
    with torch.no_grad():
        for batch in eval_batches_for(dataset, doc["nodes"][0]["params"]["batch_size"],
                                      doc["training"]["eval_batches"]):
            rows = batch["source"].shape[0]  # the trainer weights each batch by its rows
            total += float(twin_loss(model, batch)) * rows
            count += rows
    assert abs(ours - total / count) <= 0.02, (ours, total / count)


def test_the_twins_cached_decoder_equals_recomputation_and_ours_step_by_step():
    """The bench's PyTorch decoder (encoder once, cached cross K/V, self-attention KV cache)
    gives the logits of a full twin forward pass and of the engine's cached step (float64)."""
    from engine.bench.seq2seq_twin import TwinDecoder, twin_greedy_recompute
    from engine.sample import seq2seq as S

    doc, trainer, model, _ = _pair(1)
    ours = S.load_model(doc, trainer.params)
    ids, mask = S.encode_texts(ours, ["3rd of March, 1987", "03/03/87"])
    assert (mask == 0).any()  # the shorter input is padded
    dec = TwinDecoder(model)
    src, keep = torch.from_numpy(ids), torch.from_numpy(mask)
    state = S.start(ours, S.encode(ours, ids, mask))
    prefix = torch.full((2, 1), S.BOS, dtype=torch.int64)
    with torch.no_grad():
        dec.encode(src, keep)
        for _ in range(5):
            cached = dec.step(prefix[:, -1])
            full = model(src, keep, prefix)[:, -1]
            np.testing.assert_allclose(cached.numpy(), full.numpy(), rtol=1e-9, atol=1e-11)
            mine = S.step(ours, state, prefix[:, -1].numpy())
            np.testing.assert_allclose(cached.numpy(), mine, rtol=1e-9, atol=1e-11)
            prefix = torch.cat([prefix, cached.argmax(-1, keepdim=True)], dim=1)
    full_ids = twin_greedy_recompute(model, ids, mask, 5)
    assert (full_ids == prefix[:, 1:].numpy()).all()
