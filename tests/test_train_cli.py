"""``wiregrad train`` / ``evaluate``: metrics records, resuming to the same total, the NaN
exit code, refused pickles and Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine import cli
from engine.train.checkpoint import read_checkpoint
from tests.test_checkpoint import write_hostile_weights
from tests.training_docs import classifier, nan_graph, save

ROOT = Path(__file__).resolve().parent.parent
TRAIN_KEYS = {"kind", "step", "loss", "lr", "grad_norm", "wall"}


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_metrics_file_and_resume_to_the_same_total(tmp_path, capsys):
    graph = save(classifier(steps=30, eval_every=10, checkpoint_every=12), tmp_path / "g.json")
    full = tmp_path / "full.jsonl"
    first = tmp_path / "a"
    assert cli.main(["train", graph, "--out", str(first), "--metrics", str(full),
                     "--quiet"]) == 0
    records = _records(full)
    train = [r for r in records if r["kind"] == "train"]
    evals = [r for r in records if r["kind"] == "eval"]
    assert [r["step"] for r in train] == list(range(1, 31))
    assert all(TRAIN_KEYS <= set(r) for r in train)
    assert [r["step"] for r in evals] == [10, 20, 30]
    assert all({"kind", "step", "val_loss", "accuracy", "wall"} <= set(r) for r in evals)
    assert "trained 30 steps" in capsys.readouterr().out

    # Resume from the step-12 checkpoint: the rest equals the uninterrupted run.
    ckpt = str(first / "step-0000012.safetensors")
    run, resumed = tmp_path / "b", tmp_path / "resumed.jsonl"
    assert cli.main(["train", graph, "--resume", ckpt, "--out", str(run), "--metrics",
                     str(resumed), "--quiet"]) == 0
    after = _records(resumed)
    assert [r["step"] for r in after if r["kind"] == "train"] == list(range(13, 31))
    def no_wall(rs):
        return [{k: v for k, v in r.items() if k not in ("wall", "examples_per_s")} for r in rs]

    assert no_wall(after) == no_wall([r for r in records if r["step"] > 12])
    assert [r["loss"] for r in after if r["kind"] == "train"] == [r["loss"] for r in train[12:]]
    # --steps is the total, also when resuming.
    short = tmp_path / "short.jsonl"
    assert cli.main(["train", graph, "--resume", ckpt, "--steps", "20", "--out",
                     str(tmp_path / "c"), "--metrics", str(short), "--quiet"]) == 0
    assert [r["step"] for r in _records(short) if r["kind"] == "train"] == list(range(13, 21))
    capsys.readouterr()

    code = cli.main(["evaluate", graph, "--weights", str(run / "weights.safetensors"),
                     "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"val_loss", "accuracy"}
    assert result["val_loss"] == pytest.approx(evals[-1]["val_loss"])
    assert result["accuracy"] == pytest.approx(evals[-1]["accuracy"])


def test_train_says_when_it_splits_the_batch_over_the_cores(tmp_path, capsys):
    assert cli.main(["train", "char_gpt", "--steps", "2", "--threads", "2",
                     "--out", str(tmp_path / "run")]) == 0
    assert "steps split into 2 parts of ~6.0 rows, one per core" in capsys.readouterr().err


def test_nan_guard_exits_3_naming_the_node(tmp_path, capsys):
    graph = save(nan_graph(), tmp_path / "nan.json")
    code = cli.main(["train", graph, "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 3
    assert "node 'bad_log'" in err and "NaN or Inf" in err


@pytest.mark.parametrize("command", ["evaluate", "train"])
def test_pickled_weights_are_refused_with_exit_2(tmp_path, capsys, command):
    marker, pkl, pt = write_hostile_weights(tmp_path)
    graph = save(classifier(steps=2), tmp_path / "g.json")
    for weights in (pkl, pt):
        argv = [command, graph, "--weights", str(weights)]
        if command == "train":
            argv += ["--out", str(tmp_path / "run"), "--quiet"]
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert str(weights) in err and "never loads pickled data" in err
    assert not marker.exists()
    assert not (tmp_path / "run").exists()


def test_ctrl_c_writes_a_checkpoint_and_exits_130(tmp_path):
    graph = save(classifier(steps=1_000_000, eval_every=0), tmp_path / "g.json")
    run, metrics = tmp_path / "run", tmp_path / "m.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "train", graph, "--out", str(run), "--metrics",
         str(metrics), "--quiet"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (metrics.is_file() and metrics.read_text().count("\n") >= 3):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no progress within 120 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted at step" in err and "--resume" in err
    steps = [r["step"] for r in _records(metrics) if r["kind"] == "train"]
    _, meta = read_checkpoint(run / "last.safetensors")
    assert int(meta["step"]) == steps[-1] >= 3  # the checkpoint holds the last finished step
    assert (run / f"step-{steps[-1]:07d}.safetensors").is_file()
    assert (run / "weights.safetensors").is_file()
    assert not list(run.glob(".*.tmp"))
