"""Checkpoints: resuming continues exactly; a failed save leaves the previous checkpoint
intact; pickles and ``.pt`` archives are refused without being executed."""

from __future__ import annotations

import errno
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from engine.base import io
from engine.base.errors import WiregradError
from engine.base.io import model_weights
from engine.train.checkpoint import CheckpointManager, read_checkpoint, restore
from engine.train.trainer import Trainer
from tests.training_docs import classifier

TOTAL, CUT = 40, 17  # the cut falls mid-epoch (19 batches of 32 per epoch)


def _losses(records) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in records if r["kind"] == "train"}


def _evals(records) -> dict[int, float]:
    return {r["step"]: r["val_loss"] for r in records if r["kind"] == "eval"}


@pytest.mark.parametrize("algorithm", ["adamw", "sgd"])
def test_resume_equals_an_uninterrupted_run(tmp_path, algorithm):
    opt = {"algorithm": algorithm, "momentum": 0.9} if algorithm == "sgd" else {}
    doc = classifier(steps=TOTAL, eval_every=10, **opt)
    uninterrupted = Trainer(doc, seed=7)
    full = list(uninterrupted.run())

    first = Trainer(doc, seed=7)
    manager = CheckpointManager(tmp_path)
    for record in first.run():
        if record["kind"] == "train" and record["step"] == CUT:
            manager.save(first)
            break
    # A fresh process: the seed comes from the checkpoint, not from the caller.
    resumed = Trainer(doc)
    restore(resumed, tmp_path / "last.safetensors")
    assert resumed.step == CUT and resumed.seed == 7
    rest = list(resumed.run())
    assert _losses(rest) == {k: v for k, v in _losses(full).items() if k > CUT}
    assert _evals(rest) == {k: v for k, v in _evals(full).items() if k > CUT}
    for mine, theirs in [(resumed.params, uninterrupted.params),
                         (resumed.state, uninterrupted.state),
                         (resumed.optimizer.state, uninterrupted.optimizer.state)]:
        assert set(mine) == set(theirs)
        for name in mine:
            np.testing.assert_array_equal(mine[name], theirs[name], err_msg=name)


def test_resume_refuses_another_graph_or_precision(tmp_path):
    trainer = Trainer(classifier(steps=5))
    list(trainer.run())
    CheckpointManager(tmp_path).save(trainer)
    other = Trainer(classifier(steps=5, lr=0.5))
    with pytest.raises(WiregradError, match="different graph"):
        restore(other, tmp_path / "last.safetensors")
    single = Trainer(classifier(steps=5), dtype="float32")
    with pytest.raises(WiregradError, match="--dtype float64"):
        restore(single, tmp_path / "last.safetensors")


def _saved_then_advanced(tmp_path: Path) -> tuple[Trainer, CheckpointManager, dict[Path, bytes]]:
    trainer = Trainer(classifier(steps=10, eval_every=0))
    gen = trainer.run()
    next(gen)
    manager = CheckpointManager(tmp_path)
    manager.save(trainer)
    manager.save_best(trainer)
    manager.save_model(trainer)
    next(gen)  # the weights move on: a new save would change every file
    before = {p: p.read_bytes() for p in tmp_path.iterdir()}
    assert len(before) == 4
    return trainer, manager, before


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("target", ["fsync", "replace"])
def test_disk_full_mid_save_leaves_the_previous_checkpoint(tmp_path, monkeypatch, target):
    trainer, manager, before = _saved_then_advanced(tmp_path)
    last = tmp_path / "last.safetensors"
    monkeypatch.setattr(io.os, target, _enospc)
    for save in (lambda: manager.save(trainer), lambda: manager.save_best(trainer),
                 lambda: manager.save_model(trainer)):
        with pytest.raises(WiregradError, match="No space left on device"):
            save()
    monkeypatch.undo()
    # step-0000002 was never completed; every earlier file is byte-identical; no temp files.
    assert {p: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert not list(tmp_path.glob(".*"))
    assert int(read_checkpoint(last)[1]["step"]) == 1


def test_an_exception_mid_save_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    trainer, manager, before = _saved_then_advanced(tmp_path)
    real_fdopen = os.fdopen

    class Boom(RuntimeError):
        """The simulated failure."""

    def half_written(fd, *args, **kwargs):
        fh = real_fdopen(fd, *args, **kwargs)
        real_write = fh.write

        def write(data):
            real_write(data[: len(data) // 2])
            raise Boom("interrupted while writing")

        fh.write = write
        return fh

    monkeypatch.setattr(io.os, "fdopen", half_written)
    with pytest.raises(Boom):
        manager.save(trainer)
    monkeypatch.undo()
    assert {p: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert not list(tmp_path.glob(".*"))


class _Payload:
    """Unpickling this creates the marker file (what a hostile pickle could do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def write_hostile_weights(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A pickle and a torch ``.pt`` archive whose loading would create a marker file."""
    marker = tmp_path / "payload-ran"
    pkl = tmp_path / "weights.pkl"
    pkl.write_bytes(pickle.dumps({"fc1.weight": _Payload(marker)}, protocol=4))
    torch = pytest.importorskip("torch")
    pt = tmp_path / "weights.pt"
    torch.save({"fc1.weight": _Payload(marker)}, pt)
    return marker, pkl, pt


def test_the_hostile_payloads_are_live(tmp_path):
    """Guard for the refusal tests: loading these files really would run the payload."""
    marker, pkl, pt = write_hostile_weights(tmp_path)
    pickle.loads(pkl.read_bytes())
    assert marker.exists()
    marker.unlink()
    import torch

    torch.load(pt, weights_only=False)
    assert marker.exists()


def test_pickles_and_pt_files_are_refused_unread(tmp_path):
    marker, pkl, pt = write_hostile_weights(tmp_path)
    with pytest.raises(WiregradError, match="pickle"):
        model_weights(pkl)
    with pytest.raises(WiregradError, match="zip archive"):
        model_weights(pt)
    assert not marker.exists()
