"""Checkpoints: weights, optimizer state, non-trainable state, step, data position, RNG state
and the graph hash in one safetensors file (never pickle), written atomically.

Tensor keys: ``param/<name>``, ``state/<name>``, ``optim/<name>.<slot>``; everything else is
JSON in the safetensors metadata. Resuming continues exactly: the losses after resume equal
an uninterrupted run's.
"""

from __future__ import annotations

import copy
import json
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from engine.base.errors import WiregradError
from engine.base.io import CHECKPOINT_FORMAT as FORMAT
from engine.base.io import load_weights, save_weights
from engine.core.document import graph_hash
from engine.train.checkpoint_check import (
    SCHEDULE_FIELDS,
    check,
    clean_stale_temps,
    newest_complete,
)


def save_checkpoint(trainer, path: Path) -> None:
    tensors: dict[str, np.ndarray] = {}
    tensors.update({f"param/{k}": v for k, v in trainer.params.items()})
    tensors.update({f"state/{k}": v for k, v in trainer.state.items()})
    tensors.update({f"optim/{k}": v for k, v in trainer.optimizer.state.items()})
    opt = trainer.optimizer
    meta = {
        "format": FORMAT,
        "step": str(trainer.step),
        "graph_hash": graph_hash(trainer.doc),
        "seed": str(trainer.seed),
        "dtype": trainer.dtype,
        "optimizer": json.dumps({"kind": opt.kind, "step_count": opt.step_count,
                                 "weight_decay": opt.weight_decay}),
        "schedule_scale": repr(trainer.schedule.scale),
        "schedule": json.dumps({k: getattr(trainer.schedule, k) for k in SCHEDULE_FIELDS}),
        "clip_norm": repr(trainer.clip_norm),
        "batchers": json.dumps({n: b.state() for n, b in trainer.batchers.items()}),
        "best": json.dumps(trainer.best),
        "since_best": str(trainer._since_best),
        "wall": repr(trainer.wall),
        # the run's own settings: `--resume` continues the same run unless told otherwise
        "run": json.dumps({"steps": trainer.total_steps, "patience": trainer.patience}),
    }
    save_weights(path, tensors, meta)


def checkpoint_settings(path: str | Path) -> dict:
    """The settings a checkpoint's run was trained with (what a resumed run uses): seed, dtype,
    and — from checkpoints that record them — total ``steps`` and ``patience`` (else None)."""
    _, meta = read_checkpoint(resume_path(path))
    try:
        run = json.loads(meta.get("run", "{}"))
    except ValueError:
        run = {}
    run = run if isinstance(run, dict) else {}

    def count(key: str, low: int) -> int | None:
        value = run.get(key)
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
        return value if ok else None

    try:
        seed = int(meta.get("seed", "0"))
    except ValueError:
        raise WiregradError(f"{path}: checkpoint field 'seed' is not an integer",
                            field="seed") from None
    return {"seed": seed, "dtype": meta.get("dtype", "float32"),
            "steps": count("steps", 1), "patience": count("patience", 0)}


def resume_path(path: str | Path) -> Path:
    """The checkpoint to resume from: *path*, or for a run folder or its ``last.safetensors``
    the newest complete checkpoint there."""
    def step_of(candidate: Path) -> int:
        meta = read_checkpoint(candidate)[1]
        try:
            return int(meta["step"])
        except (KeyError, ValueError):
            raise WiregradError(f"{candidate}: no step") from None

    return newest_complete(Path(path), step_of)


def read_checkpoint(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    tensors, meta = load_weights(path)
    if meta.get("format") != FORMAT:
        raise WiregradError(f"{path} is a weights file, not a Wiregrad checkpoint")
    return tensors, meta


def restore(trainer, path: str | Path) -> None:
    """Load a checkpoint into *trainer* so that training continues exactly.

    The whole checkpoint is validated first (:func:`engine.train.checkpoint_check.check`):
    a missing or garbled field, or a tensor of the wrong shape, changes nothing."""
    path = resume_path(path)
    tensors, meta = read_checkpoint(path)
    saved = check(path, tensors, meta, trainer)
    if saved.graph_hash != graph_hash(trainer.doc):
        raise WiregradError(f"{path} was written for a different graph (hash "
                            f"{saved.graph_hash}, this graph {graph_hash(trainer.doc)})")
    if saved.dtype != trainer.dtype:
        raise WiregradError(f"{path} holds a {saved.dtype} run but this run is "
                            f"{trainer.dtype}; resume with --dtype {saved.dtype}")
    for node, state in saved.batchers.items():  # tried on copies: nothing changes on failure
        if node in trainer.batchers:
            _set_batcher(copy.copy(trainer.batchers[node]), state, path, node)
    trainer.load_weights({**saved.params, **saved.state})
    trainer.optimizer.state = {k: np.array(v, dtype=trainer.executor.dtype)
                               for k, v in saved.slots.items()}
    trainer.optimizer.step_count = int(saved.optimizer["step_count"])
    trainer.optimizer.weight_decay = float(saved.optimizer["weight_decay"])
    trainer.schedule.scale = saved.schedule_scale
    for key, value in saved.schedule.items():  # a hot edit may have replaced the curve
        setattr(trainer.schedule, key, value)
    trainer.clip_norm = saved.clip_norm
    trainer.step = saved.step
    trainer.best = saved.best
    trainer._since_best = saved.since_best
    trainer.seed = saved.seed  # dropout masks follow (seed, step)
    trainer._wall_offset = saved.wall
    for node, state in saved.batchers.items():
        if node in trainer.batchers:
            _set_batcher(trainer.batchers[node], state, path, node)


def _set_batcher(batcher, state: dict, path: Path, node: str) -> None:
    try:
        batcher.set_state(state)
    except (KeyError, TypeError, ValueError, WiregradError) as exc:
        raise WiregradError(f"{path}: checkpoint field 'batchers.{node}' is malformed ({exc})",
                            field="batchers") from None


class CheckpointManager:
    """Writes ``step-000100.safetensors`` files in *folder*, keeps the last N and the best."""

    def __init__(self, folder: str | Path, keep_last: int = 3) -> None:
        self.folder = Path(folder)
        self.keep_last = keep_last
        self.cleaned = clean_stale_temps(self.folder)  # left by a write a crash interrupted

    def path_for(self, step: int) -> Path:
        return self.folder / f"step-{step:07d}.safetensors"

    def save(self, trainer) -> dict:
        """A numbered checkpoint plus ``last.safetensors``; prunes beyond keep-last-N."""
        path = self.path_for(trainer.step)
        with _disk_errors(path):
            self.folder.mkdir(parents=True, exist_ok=True)
            save_checkpoint(trainer, path)
            save_checkpoint(trainer, self.folder / "last.safetensors")
            steps = sorted(self.folder.glob("step-*.safetensors"))
            for old in steps[: max(0, len(steps) - self.keep_last)]:
                old.unlink(missing_ok=True)
        return {"kind": "checkpoint", "step": trainer.step, "path": str(path)}

    def save_best(self, trainer) -> None:
        """``best.safetensors``: the checkpoint with the best validation metric so far."""
        path = self.folder / "best.safetensors"
        with _disk_errors(path):
            self.folder.mkdir(parents=True, exist_ok=True)
            save_checkpoint(trainer, path)

    def save_model(self, trainer) -> Path:
        """``weights.safetensors``: parameters and state only, for evaluate / sample / export."""
        path = self.folder / "weights.safetensors"
        with _disk_errors(path):
            self.folder.mkdir(parents=True, exist_ok=True)
            save_weights(path, {**trainer.params, **trainer.state}, model_metadata(trainer))
        return path


@contextmanager
def _disk_errors(path: Path):
    """A full disk or a read-only folder becomes a clear error naming the file (the previous
    file of that name is untouched: writes are atomic)."""
    try:
        yield
    except OSError as exc:
        raise WiregradError(f"cannot write {path}: {exc.strerror or exc}") from exc


def model_metadata(trainer) -> dict[str, str]:
    """What a weights file says about itself: graph hash, step, vocabulary, validation loss."""
    meta = {"graph_hash": graph_hash(trainer.doc), "step": str(trainer.step),
            "name": trainer.doc.get("meta", {}).get("name", ""),
            "parameters": str(sum(v.size for v in trainer.params.values()))}
    for node in trainer.doc["nodes"]:
        if node["type"] == "text_corpus":
            meta["vocab"] = node["params"].get("vocab", "")
    if trainer.best is not None:
        meta["best_val"] = repr(trainer.best)
    return meta
