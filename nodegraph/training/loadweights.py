"""File ▸ Load Weights…: weights for the current graph from a safetensors weights file, a
training checkpoint or an ONNX model, matched by parameter name (``api.load_weights_into``).

The report shows what matched, what the graph has that the file lacks (kept at a fresh
initialisation), what the file has that the graph does not use, and same-named tensors of
another shape (both shapes). The matched weights are written as one complete weights file
under the runs folder; its path is what the next Train, sampling and export take (plain data:
``(path, label)``, like a run's weights).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
)

from engine import api
from engine.api import paths
from nodegraph import theme
from nodegraph.training.host import ask_file

FILTERS = ("Weights, checkpoints, ONNX (*.safetensors *.onnx);;"
           "Weights and checkpoints (*.safetensors);;ONNX models (*.onnx);;All files (*)")

OUTCOME_COLOURS = {"shape mismatch": theme.ERROR, "missing in the file": theme.WARNING,
                   "unused (not in the graph)": theme.TEXT_DIM}


def summary(report: dict) -> str:
    """One line: how many tensors matched, were missing, unused and of another shape."""
    parts = [f"{len(report['matched'])} matched"]
    if report["missing"]:
        parts.append(f"{len(report['missing'])} missing (fresh initialisation)")
    if report["mismatched"]:
        parts.append(f"{len(report['mismatched'])} of another shape (not loaded)")
    if report["unused"]:
        parts.append(f"{len(report['unused'])} in the file unused")
    return ", ".join(parts)


def report_rows(report: dict) -> list[tuple[str, str, str, str]]:
    """(parameter, outcome, shape in the file, shape in the graph) for every name."""
    shapes = {k: "×".join(map(str, v.shape)) for k, v in report.get("weights", {}).items()}
    rows = [(n, "matched", shapes.get(n, ""), shapes.get(n, "")) for n in report["matched"]]
    rows += [(m["name"], "shape mismatch", _shape(m["file"]), _shape(m["graph"]))
             for m in report["mismatched"]]
    rows += [(n, "missing in the file", "", "") for n in report["missing"]]
    rows += [(n, "unused (not in the graph)", "", "") for n in report["unused"]]
    return rows


def _shape(shape) -> str:
    return "×".join(map(str, shape)) or "scalar"


def load_into(doc: dict, source: str) -> tuple[dict, Path]:
    """Match *source* against *doc* and write the complete weights under the runs folder:
    (the report, the written file). Raises ``api.errors.WiregradError`` on bad input."""
    report = api.load_weights_into(doc, source)
    name = paths.safe_name(doc.get("meta", {}).get("name") or "graph", "graph")
    out = paths.runs_dir() / "loaded" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-" \
                                        f"{paths.safe_name(Path(source).stem, 'weights')}" \
                                        ".safetensors"
    return report, api.save_loaded_weights(doc, report["weights"], out)


class LoadReport(QDialog):
    """The outcome of a load, one row per tensor name."""

    def __init__(self, parent, source: str, report: dict) -> None:
        super().__init__(parent)
        self.setWindowTitle("Load weights")
        layout = QVBoxLayout(self)
        self.headline = QLabel(f"<b>{Path(source).name}</b>: {summary(report)}")
        self.headline.setWordWrap(True)
        layout.addWidget(self.headline)
        self.table = QTreeWidget()
        self.table.setObjectName("load_report")
        self.table.setRootIsDecorated(False)
        self.table.setHeaderLabels(["Parameter", "Outcome", "File shape", "Graph shape"])
        for row in report_rows(report):
            item = QTreeWidgetItem(list(row))
            colour = OUTCOME_COLOURS.get(row[1])
            if colour is not None:
                item.setForeground(1, colour)
            self.table.addTopLevelItem(item)
        for col, width in enumerate((200, 170, 90)):
            self.table.setColumnWidth(col, width)
        layout.addWidget(self.table)
        note = QLabel("The next Train (start from: loaded weights), sampling and export use "
                      "these weights.")
        note.setWordWrap(True)
        layout.addWidget(note)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok)
        buttons.accepted.connect(self.accept)
        layout.addWidget(buttons)
        self.resize(620, 380)


class WeightLoader:
    """File ▸ Load Weights… in the training UI: what was loaded last — ``(path, label)`` and
    when — and its report dialog. *use* hands the written file and the source's name to the
    places that take weights; *fail* reports an error (message dict, title)."""

    def __init__(self, host, use: Callable[[str, str], None],
                 fail: Callable[[dict, str], None]) -> None:
        self.host, self.use, self.fail = host, use, fail
        self.loaded: tuple[str, str] | None = None
        self.at = 0.0
        self.dialog: LoadReport | None = None

    def forget(self) -> None:
        """Another document was opened: its loaded weights do not carry over."""
        self.loaded = None

    def load(self, source: str, show: bool = True) -> dict | None:
        """Load *source* into the open graph; the report (None when refused)."""
        try:
            report, written = load_into(self.host.snapshot(), source)
        except (api.errors.WiregradError, OSError) as exc:
            self.fail({"where": "load_weights", "message": str(exc)}, "Cannot load weights")
            return None
        self.loaded, self.at = (str(written), f"loaded from {Path(source).name}"), time.time()
        self.use(str(written), Path(source).name)
        self.host.status(f"Loaded {len(report['matched'])} tensors from {Path(source).name}",
                         8000)
        if show:
            self.dialog = LoadReport(self.host.window, source, report)
            self.dialog.open()
        return report

    def ask(self) -> None:
        path = ask_file(self.host.window, "Load weights into this graph", FILTERS, False,
                        str(paths.runs_dir()))  # another run's weights or checkpoint
        if path:
            self.load(path)
