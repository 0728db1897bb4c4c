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


def test_a_window_of_steps_holds_the_same_evaluations_wherever_it_starts(monkeypatch, capsys):
    """With STEPS (a multiple of eval_every) the window is exactly STEPS steps and holds
    STEPS / eval_every evaluations: the editor's window and the CLI's do the same work."""
    from engine.train.trainer import Trainer

    def every_5(init):
        def wrapped(self, *args, **kwargs):
            init(self, *args, **kwargs)
            self.settings = {**self.settings, "eval_every": 5, "eval_batches": 1}
        return wrapped

    monkeypatch.setattr(Trainer, "__init__", every_5(Trainer.__init__))
    train_rate.main(["train_rate", "0", "spiral_mlp", "60", "loop", "20"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["steps"] == 20 and out["evals"] == 4


def test_the_editor_window_is_timed_by_the_records_own_wall_stamps():
    """bench/ui_latency.py's editor side: from the train record of the first step seen to
    that of first + N (not when the pipe delivered them); evaluations between counted."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / "ui_latency.py"
    spec = importlib.util.spec_from_file_location("ui_latency_under_test", path)
    assert spec is not None and spec.loader is not None
    ui = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ui)
    records = [{"kind": "train", "step": s, "wall": 0.5 * s} for s in range(1, 31)]
    records.insert(10, {"kind": "eval", "step": 10, "wall": 5.2})
    assert ui.window_rate(records, 5, 20) == (20, 2.0)  # steps 5 → 25: 10 s
    assert ui.window_rate(records, 20, 20) == (10, 2.0)  # the run ended at step 30
    assert ui.in_window(10, 5, 20, by_records=True)  # after step 10, before step 25's record
    assert not ui.in_window(25, 5, 20, by_records=True)
    assert ui.in_window(25, 5, 20, by_records=False)  # the time window's old rule
