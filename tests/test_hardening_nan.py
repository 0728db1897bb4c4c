"""The NaN guard (issue 15.9): a global gradient norm that overflows while every gradient is
finite, and non-finite batch-norm running statistics, stop training naming the node."""

from __future__ import annotations

import numpy as np
import pytest

from engine import cli
from engine.base.errors import NonFiniteError
from engine.train.trainer import Trainer
from tests.training_docs import classifier, save


def test_an_overflowing_global_norm_of_finite_gradients_names_the_largest(monkeypatch):
    trainer = Trainer(classifier(steps=3, eval_every=0))
    real = trainer._forward_backward

    def huge(feeds, seed):
        loss, grads, _, tapes = real(feeds, seed)
        grads = {k: np.full_like(g, 1e200) for k, g in grads.items()}
        return loss, grads, float("inf"), tapes

    monkeypatch.setattr(trainer, "_forward_backward", huge)
    with pytest.raises(NonFiniteError, match="global norm") as info:
        trainer.train_step()
    assert info.value.node in {n["id"] for n in trainer.doc["nodes"]}


def test_weights_scaled_by_1e155_stop_with_a_named_node_not_a_crash():
    trainer = Trainer(classifier(steps=3, eval_every=0, batch_norm=False))
    for name in trainer.params:
        trainer.params[name] *= 1e155
    with pytest.raises(NonFiniteError) as info:
        for _ in range(3):
            trainer.train_step()
    assert info.value.node


def test_non_finite_running_statistics_stop_training_naming_the_node():
    trainer = Trainer(classifier(steps=3, eval_every=0))
    name = next(n for n in trainer.state if "var" in n)
    trainer.state[name][...] = np.inf
    with pytest.raises(NonFiniteError, match="running") as info:
        trainer.train_step()
    assert info.value.node == "bn"


def test_the_cli_exits_3_on_non_finite_state(tmp_path, capsys, monkeypatch):
    graph = save(classifier(steps=3, eval_every=0), tmp_path / "g.json")
    original = Trainer.__init__

    def poisoned(self, *args, **kwargs):
        original(self, *args, **kwargs)
        for name in self.state:
            if "var" in name:
                self.state[name][...] = np.inf

    monkeypatch.setattr(Trainer, "__init__", poisoned)
    assert cli.main(["train", graph, "--quiet", "--out", str(tmp_path / "run")]) == 3
    assert "bn" in capsys.readouterr().err
    assert not list((tmp_path / "run").glob("*.safetensors"))
