"""The trainer: records, pause / single step / resume / stop, hot edits, early stopping,
the NaN guard and the decay set."""

from __future__ import annotations

import numpy as np
import pytest

from engine.base.errors import NonFiniteError, WiregradError
from engine.train.optim import Schedule
from engine.train.trainer import Trainer
from tests.helpers import doc_of, e, n
from tests.training_docs import classifier, nan_graph

TRAIN_KEYS = {"kind", "step", "epoch", "loss", "lr", "grad_norm", "examples_per_s", "wall"}


def test_records_have_the_documented_keys():
    records = list(Trainer(classifier(steps=20, eval_every=10)).run())
    train = [r for r in records if r["kind"] == "train"]
    evals = [r for r in records if r["kind"] == "eval"]
    assert [r["step"] for r in train] == list(range(1, 21))
    assert all(TRAIN_KEYS <= set(r) for r in train)
    assert all(np.isfinite(r["loss"]) and r["grad_norm"] > 0 for r in train)
    assert [r["step"] for r in evals] == [10, 20]
    assert all({"val_loss", "accuracy", "wall"} <= set(r) for r in evals)
    assert records[-1] == {"kind": "done", "step": 20, "reason": "finished"}


def test_pause_single_step_resume_and_stop():
    trainer = Trainer(classifier(steps=50, eval_every=0))
    gen = trainer.run()
    assert next(gen)["step"] == 1
    trainer.pause()
    for _ in range(3):
        assert next(gen) == {"kind": "paused", "step": 1}
    assert trainer.step == 1
    trainer.step_once()
    assert next(gen)["kind"] == "train" and trainer.step == 2
    assert next(gen) == {"kind": "paused", "step": 2}  # exactly one step, then paused again
    trainer.step_once()
    trainer.step_once()
    got = [next(gen) for _ in range(3)]
    assert [r["kind"] for r in got] == ["train", "train", "paused"]
    assert trainer.step == 4
    trainer.resume()
    assert [next(gen)["step"] for _ in range(2)] == [5, 6]
    trainer.stop()
    assert next(gen) == {"kind": "done", "step": 6, "reason": "stopped"}
    assert next(gen, None) is None


def test_step_once_while_running_does_not_leak_into_a_later_pause():
    trainer = Trainer(classifier(steps=50, eval_every=0))
    gen = trainer.run()
    next(gen)
    trainer.step_once()  # ignored: not paused
    trainer.pause()
    assert next(gen)["kind"] == "paused"
    assert trainer.step == 1


def test_hot_lr_edit_rescales_the_schedule():
    doc = classifier(steps=40, eval_every=0, lr=0.02, schedule="cosine", warmup=5,
                     min_lr=0.002)
    trainer = Trainer(doc)
    reference = Schedule(kind="cosine", base_lr=0.02, warmup=5, total=40, min_lr=0.002)
    gen = trainer.run()
    k = 12
    records = [next(gen) for _ in range(k)]
    assert [r["lr"] for r in records] == pytest.approx([reference(t) for t in range(k)])
    trainer.set_hparams(lr=0.005)
    change = next(gen)
    assert change == {"kind": "hparams", "step": k, "lr": 0.005}
    after = [next(gen) for _ in range(3)]
    assert [r["step"] for r in after] == [k + 1, k + 2, k + 3]
    scale = 0.005 / reference(k)
    assert after[0]["lr"] == pytest.approx(0.005)
    assert [r["lr"] for r in after] == pytest.approx([scale * reference(t)
                                                      for t in range(k, k + 3)])
    assert after[1]["lr"] != pytest.approx(0.005)  # the rescaled curve keeps decaying


def test_a_new_rate_on_a_zero_schedule_continues_flat(tmp_path):
    from engine.train.checkpoint import CheckpointManager, restore

    doc = classifier(steps=20, eval_every=0, lr=0.0, schedule="cosine", warmup=0, min_lr=0.0)
    trainer = Trainer(doc)
    gen = trainer.run()
    assert [next(gen)["lr"] for _ in range(3)] == [0.0, 0.0, 0.0]
    trainer.set_hparams(lr=0.01)
    assert next(gen)["kind"] == "hparams"
    assert [next(gen)["lr"] for _ in range(3)] == pytest.approx([0.01] * 3)
    CheckpointManager(tmp_path).save(trainer)
    again = Trainer(doc)
    restore(again, tmp_path / "last.safetensors")
    assert next(again.run())["lr"] == pytest.approx(0.01)


def _twin_trainers(**optimizer) -> tuple[Trainer, Trainer]:
    doc = classifier(steps=10, eval_every=0, **optimizer)
    return Trainer(doc), Trainer(doc)


def test_hot_weight_decay_edit_takes_effect():
    a, b = _twin_trainers(algorithm="adamw", lr=0.01, weight_decay=0.0, schedule="constant",
                          warmup=0)
    before = {k: v.copy() for k, v in b.params.items()}
    b.set_hparams(weight_decay=0.5)
    next(a.run())
    gen = b.run()
    records = [next(gen), next(gen)]
    assert records[0] == {"kind": "hparams", "step": 0, "weight_decay": 0.5}
    # AdamW decays decoupled: p ← p − lr·wd·p, on top of the same Adam update.
    for name, p in b.params.items():
        expected = a.params[name] - (0.01 * 0.5 * before[name]
                                     if name in b.optimizer.decay_names else 0.0)
        np.testing.assert_allclose(p, expected, rtol=1e-9, atol=1e-12, err_msg=name)
    assert b.optimizer.decay_names == {"fc1.weight", "fc2.weight"}


def test_hot_clip_norm_edit_takes_effect():
    a, b = _twin_trainers(algorithm="sgd", lr=0.1, weight_decay=0.0, schedule="constant",
                          warmup=0)
    before = {k: v.copy() for k, v in b.params.items()}
    b.set_hparams(clip_norm=1e-3)
    ra = next(a.run())
    gen = b.run()
    assert next(gen)["kind"] == "hparams"
    rb = next(gen)
    assert rb["grad_norm"] == pytest.approx(ra["grad_norm"])  # the norm before clipping
    assert rb["grad_norm"] > 1e-3
    moved = np.sqrt(sum(np.sum((b.params[k] - before[k]) ** 2) for k in before))
    # SGD moves by lr × the clipped gradient (torch's clip coefficient: max / (norm + 1e-6))
    assert moved == pytest.approx(0.1 * 1e-3, rel=1e-4)
    moved_a = np.sqrt(sum(np.sum((a.params[k] - before[k]) ** 2) for k in before))
    assert moved_a == pytest.approx(0.1 * ra["grad_norm"], rel=1e-6)


def test_bad_hot_edits_are_refused():
    trainer = Trainer(classifier(steps=5))
    with pytest.raises(WiregradError, match="batch_size"):
        trainer.set_hparams(batch_size=3)
    with pytest.raises(WiregradError, match="lr"):
        trainer.set_hparams(lr=float("nan"))
    with pytest.raises(WiregradError, match="clip_norm"):
        trainer.set_hparams(clip_norm=-1.0)


def test_early_stopping_after_patience_evaluations_without_improvement():
    # lr 0 and no BatchNorm (whose running statistics would move): val_loss never improves.
    trainer = Trainer(classifier(steps=100, eval_every=1, batch_norm=False, lr=0.0,
                                 schedule="constant", warmup=0), patience=2)
    records = list(trainer.run())
    evals = [r for r in records if r["kind"] == "eval"]
    assert [r.get("best", False) for r in evals] == [True, False, False]
    assert records[-1] == {"kind": "done", "step": 3, "reason": "early_stopping"}


@pytest.mark.parametrize("metric,values,best,stop", [
    ("accuracy", [0.5, 0.6, 0.7, 0.65, 0.64, 0.9], [1, 1, 1, 0, 0], 5),
    ("val_loss", [1.0, 0.9, 0.95, 0.85, 0.86, 0.87], [1, 1, 0, 1, 0, 0], 6),
])
def test_early_stopping_direction_follows_the_metric(metric, values, best, stop):
    trainer = Trainer(classifier(steps=100, eval_every=1), patience=2,
                      early_stop_metric=metric)
    scripted = iter(values)
    trainer.evaluate = lambda: {"val_loss": 0.0, "accuracy": 0.0, metric: next(scripted)}
    records = list(trainer.run())
    evals = [r for r in records if r["kind"] == "eval"]
    assert [int(r.get("best", False)) for r in evals] == best
    assert records[-1] == {"kind": "done", "step": stop, "reason": "early_stopping"}
    assert trainer.best == (max if metric == "accuracy" else min)(values[:stop])


def test_best_and_keep_last_checkpoints(tmp_path):
    from engine.train.checkpoint import CheckpointManager, read_checkpoint

    trainer = Trainer(classifier(steps=20, eval_every=5, checkpoint_every=4, lr=0.05))
    records = list(trainer.run(CheckpointManager(tmp_path, keep_last=2)))
    saved = [r["step"] for r in records if r["kind"] == "checkpoint"]
    assert saved == [4, 8, 12, 16, 20]
    assert sorted(p.name for p in tmp_path.glob("step-*")) == [
        "step-0000016.safetensors", "step-0000020.safetensors"]
    assert int(read_checkpoint(tmp_path / "last.safetensors")[1]["step"]) == 20
    evals = [r for r in records if r["kind"] == "eval"]
    best = min(evals, key=lambda r: r["val_loss"])
    assert int(read_checkpoint(tmp_path / "best.safetensors")[1]["step"]) == best["step"]
    assert not list(tmp_path.glob(".*.tmp"))


def test_nan_guard_names_the_node():
    with pytest.raises(NonFiniteError) as info:
        list(Trainer(nan_graph()).run())
    assert info.value.node == "bad_log"
    assert "'log' produced NaN or Inf" in str(info.value)
    assert info.value.exit_code == 3


def test_an_inf_gradient_is_traced_back_to_the_forward_op_that_overflowed():
    nodes = [n("data", "regression_1d", n_samples=100, batch_size=8),
             n("scale", "Linear", in_features=1, out_features=1, bias=False),
             n("big", "exp"), n("limit", "clamp", min=-1.0, max=1.0),
             n("loss", "mse"), n("optimizer", "optimizer", algorithm="sgd", lr=0.0)]
    edges = [e("data:x", "scale:x"), e("scale:y", "big:x"), e("big:out", "limit:x"),
             e("limit:out", "loss:pred"), e("data:y", "loss:target"),
             e("loss:loss", "optimizer:loss")]
    doc = doc_of(nodes, edges, training={"steps": 3, "eval_every": 0, "dtype": "float32"})
    trainer = Trainer(doc)
    trainer.params["scale.weight"][...] = 1e4  # exp overflows; the clamped loss stays finite
    with pytest.raises(NonFiniteError) as info:
        list(trainer.run())
    assert info.value.node == "big"


def test_anomaly_mode_checks_every_op_even_when_loss_and_gradients_are_finite():
    # log(0) = -inf on a branch without parameters; relu turns it into 0 before the loss.
    nodes = [n("data", "regression_1d", n_samples=100, batch_size=8),
             n("fc", "Linear", in_features=1, out_features=1),
             n("zero", "constant", value=0.0, shape=[1]), n("hole", "log"),
             n("cut", "relu"), n("join", "add"),
             n("loss", "mse"), n("optimizer", "optimizer", algorithm="sgd", lr=0.01)]
    edges = [e("data:x", "fc:x"), e("zero:out", "hole:x"), e("hole:out", "cut:x"),
             e("fc:y", "join:a"), e("cut:out", "join:b"), e("join:out", "loss:pred"),
             e("data:y", "loss:target"), e("loss:loss", "optimizer:loss")]
    doc = doc_of(nodes, edges, training={"steps": 3, "eval_every": 0, "dtype": "float32"})
    assert list(Trainer(doc).run())[-1]["reason"] == "finished"
    with pytest.raises(NonFiniteError) as info:
        list(Trainer(doc, anomaly=True).run())
    assert info.value.node == "hole"


def _embedding_doc(decay_set: str) -> dict:
    from engine.ops.text_data import SHAKESPEARE_VOCAB

    vocab = len(SHAKESPEARE_VOCAB)
    nodes = [
        n("text", "text_corpus", source="shakespeare", vocab=SHAKESPEARE_VOCAB, block_size=8,
          batch_size=2),
        n("wte", "parameter", shape=[vocab, 8], init="normal", std=0.02),
        n("tok_emb", "embedding"),
        n("tok", "Embedding", num_embeddings=vocab, embedding_dim=8),
        n("mix", "add"),
        n("ln", "LayerNorm", normalized_shape=8),
        n("head", "Linear", in_features=8, out_features=vocab),
        n("loss", "cross_entropy"),
        n("optimizer", "optimizer", algorithm="adamw", lr=1e-3, weight_decay=0.1,
          decay_set=decay_set),
    ]
    edges = [e("text:tokens", "tok_emb:ids"), e("wte:out", "tok_emb:weight"),
             e("text:tokens", "tok:ids"), e("tok_emb:out", "mix:a"), e("tok:y", "mix:b"),
             e("mix:out", "ln:x"), e("ln:y", "head:x"), e("head:y", "loss:logits"),
             e("text:targets", "loss:labels"), e("loss:loss", "optimizer:loss")]
    return doc_of(nodes, edges, training={"steps": 2, "eval_every": 0, "dtype": "float32"})


def test_decay_set_no_embeddings_excludes_embedding_tables():
    everything = Trainer(_embedding_doc("all_2d"))
    assert everything.graph.embedding_weights == {"wte", "tok.weight"}
    assert everything.optimizer.decay_names == {"wte", "tok.weight", "head.weight"}
    no_emb = Trainer(_embedding_doc("no_embeddings"))
    assert no_emb.optimizer.decay_names == {"head.weight"}
    before = {k: no_emb.params[k].copy() for k in ("wte", "tok.weight", "head.weight")}
    list(no_emb.run())
    for name in ("wte", "tok.weight", "head.weight"):
        assert not np.array_equal(before[name], no_emb.params[name])  # all of them learn
