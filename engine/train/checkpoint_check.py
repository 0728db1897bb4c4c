"""Complete validation of a checkpoint before a run resumes from it (issue 15.6).

Every metadata field is parsed and type-checked, and every tensor is matched against the
graph (parameters, state and optimizer slots by name and shape), before anything in the
trainer changes. A missing or garbled field is a :class:`WiregradError` naming it.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from engine.base.errors import WiregradError

SCHEDULE_FIELDS = ("kind", "base_lr", "warmup", "min_lr", "step_size", "gamma", "scale")
STALE_TEMP = re.compile(r"^\..+\.[0-9a-f]{6,}\.tmp$")
NUMBERED = re.compile(r"^step-(\d+)\.safetensors$")


class Resume(NamedTuple):
    """A checkpoint's content, checked and parsed."""

    step: int
    graph_hash: str
    seed: int
    dtype: str
    optimizer: dict
    schedule_scale: float
    schedule: dict
    clip_norm: float
    batchers: dict
    best: float | None
    since_best: int
    wall: float
    params: dict[str, np.ndarray]
    state: dict[str, np.ndarray]
    slots: dict[str, np.ndarray]


def _bad(path: Path, field: str, why: str) -> WiregradError:
    return WiregradError(f"{path}: checkpoint field '{field}' {why}; the file is damaged or "
                         "was not written by Wiregrad", field=field)


def _int(path: Path, meta: dict, key: str, default: str | None = None, low: int = 0) -> int:
    text = meta.get(key, default)
    if not isinstance(text, str) or not re.fullmatch(r"-?\d{1,19}", text.strip()):
        raise _bad(path, key, "is missing or not an integer")
    value = int(text)
    if value < low:
        raise _bad(path, key, f"is below {low}")
    return value


def _float(path: Path, meta: dict, key: str, default: str | None = None) -> float:
    text = meta.get(key, default)
    try:
        if text is None:
            raise ValueError(key)
        value = float(text)
    except (TypeError, ValueError):
        raise _bad(path, key, "is missing or not a number") from None
    if not math.isfinite(value) or value < 0:
        raise _bad(path, key, "is not a finite non-negative number")
    return value


def _json(path: Path, meta: dict, key: str, kind: type, default: str | None = None) -> Any:
    text = meta.get(key, default)
    try:
        if text is None:
            raise ValueError(key)
        value = json.loads(text)
    except (TypeError, ValueError, RecursionError):
        raise _bad(path, key, "is missing or not JSON") from None
    if not isinstance(value, kind):
        raise _bad(path, key, f"is not a JSON {kind.__name__}")
    return value


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value)


def check(path: Path, tensors: dict[str, np.ndarray], meta: dict[str, str], trainer) -> Resume:
    """The checkpoint at *path*, validated against *trainer*'s graph; raises on any problem."""
    opt = _json(path, meta, "optimizer", dict)
    if not (isinstance(opt.get("kind"), str) and isinstance(opt.get("step_count"), int)
            and not isinstance(opt.get("step_count"), bool) and opt["step_count"] >= 0
            and _number(opt.get("weight_decay"))):
        raise _bad(path, "optimizer", "lacks kind, step_count or weight_decay")
    if opt["kind"] != trainer.optimizer.kind:
        raise _bad(path, "optimizer", f"holds a '{opt['kind']}' optimizer but the graph's is "
                   f"'{trainer.optimizer.kind}'")
    schedule = _json(path, meta, "schedule", dict, "{}")
    for key, value in schedule.items():
        ok = key in SCHEDULE_FIELDS and (isinstance(value, str) if key == "kind"
                                         else _number(value))
        if not ok:
            raise _bad(path, f"schedule.{key}", "is unknown or not a number")
    best = _json(path, meta, "best", object, "null")
    if best is not None and not _number(best):
        raise _bad(path, "best", "is not a number or null")
    graph_hash = meta.get("graph_hash")
    if not isinstance(graph_hash, str) or not graph_hash:
        raise _bad(path, "graph_hash", "is missing")
    dtype = meta.get("dtype", trainer.dtype)
    if dtype not in ("float32", "float64"):
        raise _bad(path, "dtype", "is not float32 or float64")
    batchers = _json(path, meta, "batchers", dict)
    if not all(isinstance(v, dict) for v in batchers.values()):
        raise _bad(path, "batchers", "holds a position that is not an object")
    params, state, slots = _tensors(path, tensors, trainer)
    return Resume(_int(path, meta, "step"), graph_hash, _int(path, meta, "seed", "0", -2**63),
                  dtype, opt, _float(path, meta, "schedule_scale"), schedule,
                  _float(path, meta, "clip_norm"), batchers,
                  None if best is None else float(best), _int(path, meta, "since_best", "0"),
                  _float(path, meta, "wall", "0"), params, state, slots)


def _tensors(path: Path, tensors: dict[str, np.ndarray], trainer) -> tuple[dict, dict, dict]:
    """Parameters, state and optimizer slots, each matched to the graph by name and shape."""
    out: dict[str, dict[str, np.ndarray]] = {"param": {}, "state": {}, "optim": {}}
    for key, value in tensors.items():
        kind, _, name = key.partition("/")
        if kind not in out:
            raise _bad(path, key, "is not a parameter, state or optimizer tensor")
        out[kind][name] = value
    for name, value in out["optim"].items():
        owner, _, slot = name.rpartition(".")
        like = trainer.params.get(owner)
        if like is None or not slot:
            raise _bad(path, f"optim/{name}", "belongs to no parameter of this graph")
        if tuple(value.shape) != like.shape:
            raise _bad(path, f"optim/{name}", f"has shape {list(value.shape)} but its "
                       f"parameter has {list(like.shape)}")
        if value.dtype.kind != "f":
            raise _bad(path, f"optim/{name}", "is not a float tensor")
    for kind, store in (("param", trainer.params), ("state", trainer.state)):
        for name, value in out[kind].items():
            if name in store and tuple(value.shape) != store[name].shape:
                raise _bad(path, f"{kind}/{name}", f"has shape {list(value.shape)} but the "
                           f"graph needs {list(store[name].shape)}")
    return out["param"], out["state"], out["optim"]


# ------------------------------------------------------------------ run folders


def clean_stale_temps(folder: Path) -> list[Path]:
    """Remove ``.NAME.<hex>.tmp`` files an interrupted atomic write left in *folder*."""
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        if STALE_TEMP.match(entry.name) and entry.is_file() and not entry.is_symlink():
            with contextlib.suppress(OSError):  # another process may hold or remove it
                entry.unlink()
                removed.append(entry)
    return removed


def newest_complete(path: Path, step_of) -> Path:
    """For a run folder or its ``last.safetensors``: the complete checkpoint with the highest
    step there (``last`` can lag the newest ``step-N`` after a crash); else *path* itself.

    *step_of(file)* returns a checkpoint's step, or raises WiregradError if it is unreadable.
    """
    folder = path if path.is_dir() else path.parent
    if not (path.is_dir() or path.name == "last.safetensors"):
        return path
    best: tuple[int, int, Path] | None = None
    candidates = [folder / "last.safetensors"] + sorted(folder.glob("step-*.safetensors"))
    for rank, candidate in enumerate(candidates):
        if not candidate.is_file():
            continue
        try:
            step = step_of(candidate)
        except WiregradError:
            continue  # damaged or foreign: not a candidate
        key = (step, rank)
        if best is None or key > best[:2]:
            best = (step, rank, candidate)
    if best is None:
        if path.is_dir():
            raise WiregradError(f"{path} holds no complete checkpoint", field="--resume")
        return path
    return best[2]
