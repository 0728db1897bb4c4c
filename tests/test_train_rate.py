"""The CLI side of the editor-vs-CLI bench case (``engine.bench.train_rate``): by default it
runs the trainer's loop as ``wiregrad train`` and the editor's worker do — evaluations
included — so the two sides do the same work per step; ``steps`` times bare steps."""

from __future__ import annotations

import json

import pytest

from engine.bench import train_rate


@pytest.mark.parametrize("mode", ["loop", "steps"])
def test_train_rate_reports_its_loop_and_the_evaluations_it_ran(monkeypatch, capsys, mode):
    from engine.train.trainer import Trainer

    evaluated: list[int] = []
    real = Trainer.evaluate
    monkeypatch.setattr(Trainer, "evaluate",
                        lambda self, *a, **k: evaluated.append(self.step) or real(self, *a, **k))
    monkeypatch.setattr(Trainer, "__init__", _every_step_evaluates(Trainer.__init__))
    train_rate.main(["train_rate", "0", "spiral_mlp", "0.3", mode])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["loop"] == ("run" if mode == "loop" else "train_step")
    assert out["steps"] > 0 and out["cpu_s"] > 0
    if mode == "loop":  # an evaluation after every step, each counted in the window
        assert out["evals"] >= out["steps"] - 1 and len(evaluated) >= out["evals"]
    else:
        assert out["evals"] == 0 and evaluated == []


def _every_step_evaluates(init):
    def wrapped(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.settings = {**self.settings, "eval_every": 1, "eval_batches": 1}
    return wrapped
