"""Checkpoints are validated completely before a run resumes (issue 15.6); interrupted writes
are cleaned up and resume picks the newest complete checkpoint (issue 15.8)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.base.errors import WiregradError
from engine.base.io import load_weights, save_weights
from engine.train.checkpoint import CheckpointManager, checkpoint_settings, restore
from engine.train.trainer import Trainer
from tests.training_docs import classifier

GARBLED = {
    "graph_hash": ["", None],
    "optimizer": ["{", "[]", '{"kind": "adamw"}', '{"kind": "sgd", "step_count": 1, '
                  '"weight_decay": 0}', '{"kind": "adamw", "step_count": -1, '
                  '"weight_decay": 0}', '{"kind": "adamw", "step_count": 1, '
                  '"weight_decay": "x"}', None],
    "step": ["x", "-1", "1e3", "", None],
    "seed": ["x", "1.5"],
    "schedule": ["{", '{"kind": 3}', '{"nope": 1}', '{"base_lr": "x"}', "[]"],
    "schedule_scale": ["nan", "x", None],
    "best": ["{", '"x"', "[1]"],
    "clip_norm": ["inf", "-1", "x", None],
    "wall": ["nan", "x", "-5"],
    "dtype": ["float16"],
    "batchers": ["{", "[]", '{"data": 5}', '{"data": {"n": "x"}}', None],
    "since_best": ["x"],
}
CASES = [(k, v) for k, values in GARBLED.items() for v in values]


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> tuple[Path, dict, dict]:
    folder = tmp_path_factory.mktemp("ckpt")
    trainer = Trainer(classifier(steps=3, eval_every=0))
    list(trainer.run())
    CheckpointManager(folder).save(trainer)
    tensors, meta = load_weights(folder / "last.safetensors")
    return folder, tensors, meta


def _fresh() -> Trainer:
    return Trainer(classifier(steps=3, eval_every=0))


@pytest.mark.parametrize("field, value", CASES)
def test_missing_or_garbled_metadata_is_refused_and_changes_nothing(saved, tmp_path, field,
                                                                    value):
    _, tensors, meta = saved
    meta = dict(meta)
    if value is None:
        del meta[field]
    else:
        meta[field] = value
    path = tmp_path / "bad.safetensors"
    save_weights(path, tensors, meta)
    trainer = _fresh()
    before = {k: v.copy() for k, v in trainer.params.items()}
    with pytest.raises(WiregradError) as info:
        restore(trainer, path)
    assert field in str(info.value) or field in (info.value.field or "")
    assert trainer.step == 0 and trainer.optimizer.state == {}
    assert all(np.array_equal(before[k], trainer.params[k]) for k in before)


@pytest.mark.parametrize("change", ["shape", "foreign", "int", "unknown_kind", "param_shape"])
def test_tensors_that_do_not_fit_the_graph_are_refused(saved, tmp_path, change):
    _, tensors, meta = saved
    tensors = dict(tensors)
    slot = next(k for k in tensors if k.startswith("optim/"))
    if change == "shape":
        tensors[slot] = np.zeros((1,) + tensors[slot].shape, tensors[slot].dtype)
    elif change == "foreign":
        tensors["optim/nowhere.weight.m"] = np.zeros(3, np.float64)
    elif change == "int":
        tensors[slot] = tensors[slot].astype(np.int64)
    elif change == "unknown_kind":
        tensors["secret/x"] = np.zeros(2)
    else:
        name = next(k for k in tensors if k.startswith("param/"))
        tensors[name] = np.zeros(7)
    path = tmp_path / "bad.safetensors"
    save_weights(path, tensors, meta)
    trainer = _fresh()
    with pytest.raises(WiregradError):
        restore(trainer, path)
    assert trainer.step == 0 and trainer.optimizer.state == {}


def test_a_valid_checkpoint_still_resumes(saved):
    folder, _, _ = saved
    trainer = _fresh()
    restore(trainer, folder / "last.safetensors")
    assert trainer.step == 3 and trainer.optimizer.state


def test_stale_temp_files_are_removed_at_the_next_start(tmp_path):
    stale = [tmp_path / ".last.safetensors.0123456789ab.tmp",
             tmp_path / ".step-0000004.safetensors.a1b2c3d4e5f6.tmp"]
    keep = [tmp_path / "notes.tmp", tmp_path / ".hidden", tmp_path / "last.safetensors"]
    for p in stale + keep:
        p.write_bytes(b"x")
    manager = CheckpointManager(tmp_path)
    assert sorted(manager.cleaned) == sorted(stale)
    assert not any(p.exists() for p in stale) and all(p.exists() for p in keep)


def test_resume_picks_the_newest_complete_checkpoint_when_last_lags(tmp_path):
    trainer = Trainer(classifier(steps=6, eval_every=0, checkpoint_every=0))
    gen = trainer.run()
    manager = CheckpointManager(tmp_path)
    for _ in range(2):
        next(gen)
    manager.save(trainer)  # step 2: step-0000002 and last
    for _ in range(2):
        next(gen)
    from engine.train.checkpoint import save_checkpoint

    save_checkpoint(trainer, manager.path_for(trainer.step))  # step 4, then a crash: no last
    (tmp_path / "step-0000005.safetensors").write_bytes(b"\x00" * 40)  # a damaged file
    for target in (tmp_path / "last.safetensors", tmp_path):
        resumed = Trainer(classifier(steps=6, eval_every=0, checkpoint_every=0))
        restore(resumed, target)
        assert resumed.step == 4
    assert checkpoint_settings(tmp_path)["seed"] == trainer.seed
    explicit = Trainer(classifier(steps=6, eval_every=0, checkpoint_every=0))
    restore(explicit, tmp_path / "step-0000002.safetensors")
    assert explicit.step == 2


def test_a_folder_without_checkpoints_is_a_clear_error(tmp_path):
    with pytest.raises(WiregradError, match="no complete checkpoint"):
        restore(_fresh(), tmp_path)
    assert json.dumps(GARBLED)  # the table itself is plain data


def test_the_cli_refuses_a_garbled_checkpoint_and_an_oversized_run_with_exit_2(saved, tmp_path,
                                                                               capsys,
                                                                               monkeypatch):
    from engine import cli
    from tests.training_docs import save

    _, tensors, meta = saved
    bad = tmp_path / "bad.safetensors"
    save_weights(bad, tensors, {**meta, "optimizer": "{"})
    graph = save(classifier(steps=3, eval_every=0), tmp_path / "g.json")
    assert cli.main(["train", graph, "--resume", str(bad), "--out", str(tmp_path / "r"),
                     "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "optimizer" in err and "Traceback" not in err
    monkeypatch.setenv("WIREGRAD_MAX_MEMORY", "10KB")
    assert cli.main(["train", graph, "--out", str(tmp_path / "r2"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "WIREGRAD_MAX_MEMORY" in err and "Traceback" not in err
