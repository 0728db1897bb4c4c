"""Run history that outlives the editor: each editor run's folder (under the runs folder)
holds ``run.json`` — the document's path, its graph hash, name, hyper-parameters, status,
final metrics, weights and checkpoint — and ``metrics.jsonl``, the run's records (train,
eval and hparams, one JSON object a line, as ``wiregrad train --metrics`` writes them).

Reopening a document lists its earlier runs from these files (:func:`earlier_runs`), marked
when the graph has changed since; their curves come back from ``metrics.jsonl`` and a stopped
run resumes from its checkpoint (:func:`checkpoint_of`). :class:`RunLog` is the training UI's
side of it.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from engine import api
from engine.api import paths
from nodegraph.training.runs import RunData

RUN_INFO = "run.json"
METRICS = "metrics.jsonl"
RECORD_KINDS = ("train", "eval", "hparams")
MAX_RUNS = 50  # listed per document (the newest)


def document_key(path: str | Path | None) -> str | None:
    """How run folders name the document: its resolved path (None: an unsaved graph)."""
    return str(Path(path).resolve()) if path else None


def write_info(folder: str | Path, info: dict) -> None:
    """Write (atomically) or update ``run.json`` in *folder* with *info*'s fields."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    merged = {**(read_info(folder) or {}), **info}
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".run-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(merged, fh, indent=1, default=str)
        os.replace(tmp, folder / RUN_INFO)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_info(folder: str | Path) -> dict | None:
    """``run.json`` of *folder*, or None when absent or unreadable."""
    try:
        info = json.loads((Path(folder) / RUN_INFO).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def append_records(folder: str | Path, records: list[dict]) -> None:
    """Append the train / eval / hparams *records* to *folder*'s ``metrics.jsonl``."""
    lines = [json.dumps(r, default=float) + "\n" for r in records
             if r.get("kind") in RECORD_KINDS]
    if not lines:
        return
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / METRICS, "a", encoding="utf-8") as fh:
        fh.writelines(lines)


def read_records(folder: str | Path) -> list[dict]:
    """The records of *folder*'s ``metrics.jsonl`` (a torn last line is skipped)."""
    out = []
    try:
        with open(Path(folder) / METRICS, encoding="utf-8") as fh:
            for line in fh:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict) and record.get("kind") in RECORD_KINDS:
                    out.append(record)
    except OSError:
        return []
    return out


def earlier_runs(document: str | Path | None, runs_dir: str | Path) -> list[dict]:
    """``run.json`` of every run of *document* under *runs_dir*, oldest first (each with its
    ``folder``); none for an unsaved graph."""
    key = document_key(document)
    if key is None or not Path(runs_dir).is_dir():
        return []
    found = []
    for folder in Path(runs_dir).iterdir():
        info = read_info(folder) if folder.is_dir() else None
        if info is not None and info.get("document") == key:
            found.append({**info, "folder": str(folder)})
    found.sort(key=lambda i: float(i.get("started") or 0))
    return found[-MAX_RUNS:]


def checkpoint_of(folder: str | Path) -> str | None:
    """The checkpoint a run in *folder* resumes from: ``last.safetensors``, else the newest
    ``step-*.safetensors``; None when there is none."""
    folder = Path(folder)
    last = folder / "last.safetensors"
    if last.is_file():
        return str(last)
    steps = sorted(folder.glob("step-*.safetensors"))
    return str(steps[-1]) if steps else None


class RunLog:
    """The training UI's side: records each run in its folder as it goes, and turns the
    document's earlier run folders back into :class:`RunData` rows."""

    def __init__(self, host) -> None:
        """*host*: the :class:`~nodegraph.training.host.TrainingHost` (the document's path)."""
        self.host = host

    def started(self, run: RunData) -> None:
        info = {"document": document_key(self.host.document_path()), "name": run.name,
                "graph": self.host.controller.model.doc.get("meta", {}).get("name", ""),
                "graph_hash": run.graph_hash, "hparams": run.hparams,
                "total_steps": run.total_steps, "status": "running"}
        if read_info(run.folder) is None:
            info["started"] = run.created
        self._write(run.folder, info)

    def records(self, run: RunData, records: list[dict]) -> None:
        try:
            append_records(run.folder, records)
        except OSError as exc:
            self.host.status(f"Cannot record the run's metrics: {exc}", 6000)

    def ended(self, run: RunData, checkpoint: str | None) -> None:
        info = {"status": run.status, "step": run.step, "final": run.final,
                "weights": run.weights}
        if checkpoint:
            info["checkpoint"] = checkpoint
        self._write(run.folder, info)

    def _write(self, folder: str, info: dict) -> None:
        if not folder:
            return
        try:
            write_info(folder, info)
        except OSError as exc:
            self.host.status(f"Cannot record the run in {folder}: {exc}", 6000)

    def earlier(self, first_id: int, doc: dict) -> list[RunData]:
        """The document's earlier runs as rows (ids from *first_id*), marked changed when
        *doc*'s graph hash differs from the run's."""
        now = api.graph_hash(doc)
        out = []
        for k, info in enumerate(earlier_runs(self.host.document_path(), paths.runs_dir())):
            run = RunData(first_id + k, str(info.get("name") or f"run {first_id + k}"))
            run.created = float(info.get("started") or 0)
            run.name += time.strftime(" · %d %b %H:%M", time.localtime(run.created))
            run.earlier, run.folder = True, info["folder"]
            run.graph_hash = str(info.get("graph_hash") or "")
            run.changed = bool(run.graph_hash) and run.graph_hash != now
            run.hparams = dict(info.get("hparams") or {})
            run.total_steps = int(info.get("total_steps") or 0)
            run.final = dict(info.get("final") or {})
            run.weights = info.get("weights")
            status = str(info.get("status") or "?")
            run.status = "interrupted" if status == "running" else status
            run.add(read_records(run.folder))
            out.append(run)
        return out

    @staticmethod
    def mark(runs: list[RunData], doc: dict) -> list[RunData]:
        """Mark the *runs* whose graph differs from *doc*'s now; those whose mark flipped."""
        now = api.graph_hash(doc)
        flipped = []
        for run in runs:
            changed = bool(run.graph_hash) and run.graph_hash != now
            if changed != run.changed:
                run.changed = changed
                flipped.append(run)
        return flipped

    @staticmethod
    def checkpoint(run: RunData) -> str | None:
        """The checkpoint a stopped (or interrupted, failed) run continues from; None when
        it has none, finished or is live."""
        if run.status in ("starting", "running", "paused", "finished") or not run.folder:
            return None
        return checkpoint_of(run.folder)
