"""Training runs in the editor: the records of each run in growable columns (cheap to plot
at 20 Hz), CSV export, and the run list (graph hash, hyper-parameters, final metrics,
checkpoint folder) whose ticked runs are overlaid on the plots."""

from __future__ import annotations

import csv
import time

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QTreeWidget, QTreeWidgetItem

TRAIN_KEYS = ("step", "wall", "loss", "lr", "grad_norm", "examples_per_s", "tokens_per_s")
EVAL_SKIP = {"kind", "best"}


class Column:
    """An append-only float64 array with amortised growth; :meth:`view` is a no-copy slice."""

    def __init__(self) -> None:
        self._data = np.empty(256)
        self.n = 0

    def extend(self, values) -> None:
        values = np.asarray(values, dtype=np.float64)
        need = self.n + len(values)
        if need > len(self._data):
            grown = np.empty(max(need, 2 * len(self._data)))
            grown[: self.n] = self._data[: self.n]
            self._data = grown
        self._data[self.n: need] = values
        self.n = need

    def view(self) -> np.ndarray:
        return self._data[: self.n]

    def __len__(self) -> int:
        return self.n


class RunData:
    """Everything one run produced (plain records) plus columns for the plots."""

    def __init__(self, run_id: int, name: str) -> None:
        self.id, self.name = run_id, name
        self.created = time.time()
        self.graph_hash = ""
        self.hparams: dict = {}
        self.folder = ""
        self.total_steps = 0
        self.status = "starting"
        self.final: dict = {}
        self.weights: str | None = None  # written at the run's end
        self.earlier = False  # listed from the runs folder (a previous session's run)
        self.changed = False  # the graph changed since this run
        self.records: list[dict] = []
        self.train = {k: Column() for k in TRAIN_KEYS}
        self.evals: dict[str, Column] = {"step": Column(), "wall": Column()}
        self.hparam_changes: list[dict] = []
        self.version = 0  # bumped when data arrive (the plots redraw only then)

    @property
    def step(self) -> int:
        col = self.train["step"]
        return int(col.view()[-1]) if len(col) else 0

    def add(self, records: list[dict]) -> None:
        self.records.extend(records)
        train = [r for r in records if r["kind"] == "train"]
        if train:
            for key in TRAIN_KEYS:
                self.train[key].extend([r.get(key, np.nan) for r in train])
        for r in records:
            if r["kind"] == "eval":
                self._add_eval(r)
            elif r["kind"] == "hparams":  # a hot edit took effect: whatever the trainer took
                self.hparam_changes.append(r)
                self.hparams.update({k: v for k, v in r.items()
                                     if k not in ("kind", "step", "nodes")})
        self.version += 1

    def _add_eval(self, r: dict) -> None:
        n = len(self.evals["step"])
        for key, value in r.items():
            if key in EVAL_SKIP or not isinstance(value, (int, float)):
                continue
            if key not in self.evals:
                self.evals[key] = Column()
                self.evals[key].extend([np.nan] * n)
            self.evals[key].extend([value])
        for col in self.evals.values():  # a metric missing from this record
            if len(col) < n + 1:
                col.extend([np.nan])

    def metric_names(self) -> list[str]:
        return [k for k in self.evals if k not in ("step", "wall", "val_loss")]

    def write_csv(self, path: str) -> int:
        """Every record, one row each (kind, step, then the union of the other keys)."""
        keys: list[str] = []
        for r in self.records:
            for k in r:
                if k not in keys and k not in ("kind", "step"):
                    keys.append(k)
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, ["kind", "step", *keys], extrasaction="ignore")
            writer.writeheader()
            for r in self.records:
                writer.writerow(r)
        return len(self.records)

    def summary(self) -> str:
        if not self.final:
            return ""
        return ", ".join(f"{k} {v:.4g}" for k, v in self.final.items()
                         if k != "step" and isinstance(v, (int, float)))

    def hparam_text(self) -> str:
        h = self.hparams
        if not h:
            return ""
        parts = [str(h.get("algorithm", "")), f"lr {h.get('lr', 0):.3g}"]
        if h.get("weight_decay"):
            parts.append(f"wd {h['weight_decay']:.3g}")
        if h.get("clip_norm"):
            parts.append(f"clip {h['clip_norm']:.3g}")
        parts += [f"batch {h.get('batch', '?')}", f"{h.get('steps', '?')} steps",
                  f"seed {h.get('seed', '?')}"]
        return ", ".join(parts)


COLUMNS = ("Run", "Status", "Graph", "Hyper-parameters", "Final", "Folder")


class RunList(QTreeWidget):
    """One row per run; tick rows to overlay them on the plots."""

    overlays_changed = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setColumnCount(len(COLUMNS))
        self.setHeaderLabels(list(COLUMNS))
        self.setRootIsDecorated(False)
        self.setAlternatingRowColors(True)
        self.runs: dict[int, RunData] = {}
        self.items: dict[int, QTreeWidgetItem] = {}
        for i, w in enumerate((150, 70, 120, 260, 200)):
            self.setColumnWidth(i, w)
        self.itemChanged.connect(lambda *_: self.overlays_changed.emit())

    def add_run(self, run: RunData) -> None:
        self.runs[run.id] = run
        item = QTreeWidgetItem()
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
        self.blockSignals(True)
        item.setCheckState(0, Qt.CheckState.Unchecked)
        self.insertTopLevelItem(0, item)
        self.blockSignals(False)
        self.items[run.id] = item
        self.update_run(run)
        self.setCurrentItem(item)

    def update_run(self, run: RunData) -> None:
        item = self.items.get(run.id)
        if item is None:
            return
        self.blockSignals(True)
        step = f" · step {run.step}" if run.step else ""
        step += " · graph changed since" if run.changed else ""
        for col, text in enumerate((run.name, run.status + step, run.graph_hash,
                                    run.hparam_text(), run.summary(), run.folder)):
            if item.text(col) != text:  # at 5 Hz while training: only what changed
                item.setText(col, text)
                item.setToolTip(col, text)
        self.blockSignals(False)

    def clear_runs(self) -> None:
        """Forget every row (another document was opened)."""
        self.blockSignals(True)
        self.clear()
        self.blockSignals(False)
        self.runs, self.items = {}, {}

    def overlay_ids(self) -> list[int]:
        return [rid for rid, item in self.items.items()
                if item.checkState(0) == Qt.CheckState.Checked]

    def selected_run(self) -> RunData | None:
        item = self.currentItem()
        for rid, it in self.items.items():
            if it is item:
                return self.runs[rid]
        return None
