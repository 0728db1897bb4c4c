"""``wiregrad train`` / ``evaluate``: metrics records, resuming to the same total, the NaN
exit code, refused pickles and Ctrl-C."""

from __future__ import annotations

import errno
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
    assert "interrupted at step" in err and f"wiregrad train {graph} --resume {run}" in err
    steps = [r["step"] for r in _records(metrics) if r["kind"] == "train"]
    _, meta = read_checkpoint(run / "last.safetensors")
    assert int(meta["step"]) == steps[-1] >= 3  # the checkpoint holds the last finished step
    assert (run / f"step-{steps[-1]:07d}.safetensors").is_file()
    assert (run / "weights.safetensors").is_file()
    assert not list(run.glob(".*.tmp"))


# ----------------------------------------------------------------- issue 14 §1 / issue 15 §8


def test_output_folders_are_created(tmp_path, capsys):
    graph = save(classifier(steps=3, eval_every=0), tmp_path / "g.json")
    out, metrics = tmp_path / "runs" / "a" / "b", tmp_path / "logs" / "deep" / "m.jsonl"
    assert cli.main(["train", graph, "--out", str(out), "--metrics", str(metrics),
                     "--quiet"]) == 0
    assert (out / "weights.safetensors").is_file()
    assert [r["step"] for r in _records(metrics) if r["kind"] == "train"] == [1, 2, 3]


def test_metrics_file_starts_anew_unless_resuming(tmp_path, capsys):
    graph = save(classifier(steps=6, eval_every=0, checkpoint_every=3), tmp_path / "g.json")
    metrics = tmp_path / "m.jsonl"
    metrics.write_text('{"kind": "train", "step": 99}\n')
    assert cli.main(["train", graph, "--out", str(tmp_path / "a"), "--metrics", str(metrics),
                     "--quiet"]) == 0
    assert [r["step"] for r in _records(metrics) if r["kind"] == "train"] == list(range(1, 7))
    capsys.readouterr()
    ckpt = tmp_path / "a" / "step-0000003.safetensors"
    assert cli.main(["train", graph, "--resume", str(ckpt), "--out", str(tmp_path / "b"),
                     "--metrics", str(metrics), "--quiet"]) == 0
    assert f"appending to {metrics}" in capsys.readouterr().err
    steps = [r["step"] for r in _records(metrics) if r["kind"] == "train"]
    assert steps == list(range(1, 7)) + [4, 5, 6]


def test_train_prints_a_readable_summary_and_json_on_request(tmp_path, capsys):
    graph = save(classifier(steps=4, eval_every=2), tmp_path / "g.json")
    assert cli.main(["train", graph, "--out", str(tmp_path / "a"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "{" not in out  # no Python dict
    assert "trained 4 steps" in out and "val_loss" in out and "accuracy" in out
    assert str(tmp_path / "a" / "weights.safetensors") in out
    assert cli.main(["train", graph, "--out", str(tmp_path / "b"), "--quiet", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] == 4 and summary["reason"] == "finished"
    assert summary["weights"] == str(tmp_path / "b" / "weights.safetensors")
    assert set(summary["eval"]) >= {"step", "val_loss", "accuracy"}


def test_evaluate_names_the_formats_when_given_a_bundle(tmp_path, capsys):
    graph = save(classifier(steps=2, eval_every=0), tmp_path / "g.json")
    assert cli.main(["train", graph, "--out", str(tmp_path / "a"), "--quiet"]) == 0
    weights = str(tmp_path / "a" / "weights.safetensors")
    bundle = str(tmp_path / "m.wgz")
    assert cli.main(["pack", graph, "--weights", weights, "--out", bundle]) == 0
    capsys.readouterr()
    assert cli.main(["evaluate", graph, "--weights", bundle]) == 2
    err = capsys.readouterr().err
    assert "PyTorch" not in err
    assert ".wgz" in err and "safetensors" in err and f"wiregrad evaluate {bundle}" in err


def test_a_nan_run_prints_only_the_guards_message(tmp_path):
    graph = save(nan_graph(), tmp_path / "nan.json")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "engine.cli", "train", graph, "--out", str(tmp_path / "run"),
         "--quiet"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 3
    assert "node 'bad_log'" in proc.stderr
    assert "Warning" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_resume_continues_the_same_run_unless_overridden(tmp_path, capsys):
    doc = classifier(steps=30, eval_every=0, checkpoint_every=5)
    graph = save(doc, tmp_path / "g.json")
    full = tmp_path / "full.jsonl"
    assert cli.main(["train", graph, "--steps", "12", "--out", str(tmp_path / "a"),
                     "--metrics", str(full), "--quiet"]) == 0
    ckpt = tmp_path / "a" / "step-0000010.safetensors"
    # No --steps: the run continues to its own 12 steps on its own schedule, not the doc's 30.
    resumed = tmp_path / "r.jsonl"
    assert cli.main(["train", graph, "--resume", str(ckpt), "--out", str(tmp_path / "b"),
                     "--metrics", str(resumed), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "of 12" in err
    after = [r for r in _records(resumed) if r["kind"] == "train"]
    before = [r for r in _records(full) if r["kind"] == "train"]
    assert [r["step"] for r in after] == [11, 12]
    assert [(r["loss"], r["lr"]) for r in after] == [(r["loss"], r["lr"]) for r in before[10:]]
    # An explicit --steps wins, and the CLI says so.
    assert cli.main(["train", graph, "--resume", str(ckpt), "--steps", "14", "--out",
                     str(tmp_path / "c"), "--quiet"]) == 0
    assert "--steps 14 overrides the checkpoint's 12" in capsys.readouterr().err


def test_resume_without_out_continues_in_the_checkpoints_folder(tmp_path, capsys):
    graph = save(classifier(steps=6, eval_every=0, checkpoint_every=3), tmp_path / "g.json")
    run = tmp_path / "run"
    assert cli.main(["train", graph, "--steps", "3", "--out", str(run), "--quiet"]) == 0
    assert cli.main(["train", graph, "--resume", str(run / "last.safetensors"), "--steps", "6",
                     "--quiet"]) == 0
    _, meta = read_checkpoint(run / "last.safetensors")
    assert meta["step"] == "6"
    assert cli.main(["train", graph, "--resume", str(run), "--steps", "7", "--quiet"]) == 0
    assert read_checkpoint(run / "last.safetensors")[1]["step"] == "7"  # a run folder too


class _FullDisk:
    """A metrics file whose disk fills up after *room* records."""

    def __init__(self, path: Path, room: int) -> None:
        self.file = open(path, "w", encoding="utf-8")
        self.room = room

    def write(self, text: str) -> int:
        if self.room == 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= 1
        return self.file.write(text)

    def close(self) -> None:
        self.file.close()


def test_metrics_on_a_full_disk_exits_2_and_keeps_the_last_checkpoint(tmp_path, capsys,
                                                                       monkeypatch):
    import engine.train.cli as train_cli

    graph = save(classifier(steps=40, eval_every=0, checkpoint_every=4), tmp_path / "g.json")
    metrics, run = tmp_path / "m.jsonl", tmp_path / "run"
    monkeypatch.setattr(train_cli, "_open_metrics",
                        lambda path, append: _FullDisk(Path(path), room=10))
    code = cli.main(["train", graph, "--out", str(run), "--metrics", str(metrics), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    assert str(metrics) in err and os.strerror(errno.ENOSPC) in err
    _, meta = read_checkpoint(run / "last.safetensors")
    assert 8 <= int(meta["step"]) <= 11
    assert str(run / "last.safetensors") in err and f"wiregrad train {graph} --resume {run}" in err
    assert not list(run.glob(".*.tmp"))
