"""The training debugger in the editor: wire tooltips with the statistics of the tensor each wire
carried on the last batch, wires coloured by gradient norm, and a Debugger dock with the
selected node's histograms, weight images and embedding PCA, and attention heatmaps per head.

The numbers come from the worker (``inspection`` messages) or the sampling thread; this module
only draws them.
"""

from __future__ import annotations

import html
import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import (
    QComboBox,
    QGraphicsPathItem,
    QLabel,
    QScrollArea,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from nodegraph.editing import events as ev
from nodegraph.training.heatmaps import BG, header, probability_map

HEAT = pg.ColorMap([0.0, 0.5, 1.0], [(60, 110, 240), (250, 220, 70), (235, 50, 50)])


def stats_html(s: dict) -> str:
    shape = "×".join(str(d) for d in s["shape"]) or "scalar"
    g = s.get("grad_norm")
    rows = [f"shape {shape} ({s.get('dtype', '')})",
            f"mean {s['mean']:.4g} · std {s['std']:.4g}",
            f"min {s['min']:.4g} · max {s['max']:.4g}",
            f"grad norm {g:.4g}" if g is not None else "grad norm –"]
    return "<br>".join(rows)


def edge_key_of(s: dict) -> tuple:
    return (s["src"], s["sport"], s["dst"], s["dport"])


class EdgeOverlay:
    """Tooltips with tensor statistics on wires, and the gradient-norm heat map."""

    def __init__(self, scene) -> None:
        self.scene = scene
        self.stats: dict[tuple, dict] = {}
        self.step = 0
        self.heat = False
        self.items: dict[tuple, QGraphicsPathItem] = {}
        self.range: tuple[float, float] | None = None
        scene.controller.scope_changed.connect(self._forget)
        # after the scene (subscribed first) has mirrored an edit, halos follow its wires
        scene.controller.model.subscribe(self._on_event)

    def _on_event(self, event) -> None:
        if isinstance(event, ev.Reset):  # another document: the scene deleted the halos
            self.items, self.stats = {}, {}
        if self.items:
            self.apply()

    def _forget(self) -> None:
        self.items = {}  # the scene deleted them with its other items
        self.apply()

    def update(self, edges: list[dict], step: int) -> None:
        self.stats = {edge_key_of(s): s for s in edges}
        self.step = step
        self.apply()

    def clear(self) -> None:
        self.stats = {}
        self.apply()

    def tooltip(self, key: tuple) -> str:
        item = self.scene.edges.get(key)
        base = f"{key[0]}.{key[1]} → {key[2]}.{key[3]}"
        if item is not None and item.label:
            base += f"<br>{item.label} ({item.dtype})"
        s = self.stats.get(key)
        if s is None:
            return base
        return (base + f"<br><b>last batch (step {self.step})</b><br>" + stats_html(s))

    def set_heat(self, on: bool) -> None:
        self.heat = on
        self.apply()

    def color_for(self, norm: float) -> QColor:
        lo, hi = self.range or (0.0, 1.0)
        v = math.log10(max(norm, 1e-30))
        t = 0.5 if hi <= lo else (v - lo) / (hi - lo)
        return HEAT.map(float(np.clip(t, 0, 1)), mode="qcolor")

    def apply(self) -> None:
        root = len(self.scene.controller.scopes) == 1
        for key, item in self.scene.edges.items():
            item.setToolTip(self.tooltip(key) if root else item.toolTip())
        norms = [s["grad_norm"] for s in self.stats.values() if s.get("grad_norm")]
        logs = [math.log10(max(n, 1e-30)) for n in norms]
        self.range = (min(logs), max(logs)) if logs else None
        for key in list(self.items):
            if not self.heat or key not in self.stats or key not in self.scene.edges:
                self.scene.removeItem(self.items.pop(key))
        if not (self.heat and root):
            return
        for key, s in self.stats.items():
            edge = self.scene.edges.get(key)
            if edge is None or s.get("grad_norm") is None:
                continue
            overlay = self.items.get(key)
            if overlay is None:
                overlay = QGraphicsPathItem()  # a halo under the wire, its label stays legible
                overlay.setZValue(-0.5)
                overlay.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
                self.scene.addItem(overlay)
                self.items[key] = overlay
            color = self.color_for(s["grad_norm"])
            color.setAlpha(210)
            overlay.setPen(QPen(color, 7.0, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
            overlay.setPath(edge.path)
            overlay.setToolTip(self.tooltip(key))


class NodePanel(QWidget):
    """Histograms of a node's weights, activations and gradients; weight images; PCA."""

    HINT = ("Select a node to see its weights (the document's own before a run); while or "
            "after training, its activations and gradients on the last batch too.")

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        self.title = QLabel(self.HINT)
        self.title.setWordWrap(True)
        box.addWidget(self.title)
        self.canvas = pg.GraphicsLayoutWidget()
        self.canvas.setBackground(BG)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.canvas)
        box.addWidget(scroll, 1)
        self.detail: dict | None = None
        self.pca_item = None  # the embedding PCA's scatter (one point per token)

    def show_detail(self, detail: dict | None, step: int = 0, source: str | None = None
                    ) -> None:
        """*detail* from a run at *step*, or (*source* given) from a weights file."""
        self.detail = detail
        self.pca_item = None
        self.canvas.clear()
        if not detail:
            self.title.setText(self.HINT)
            return
        n_w, n_a = len(detail["weights"]), len(detail["activations"])
        when = f"step {step}" if source is None else html.escape(source)
        self.title.setText(f"<b>{html.escape(detail['node'])}</b> — {when}: "
                           f"{n_w} weight tensor(s), {n_a} activation(s)")
        row = 0
        if "pca" in detail:  # an embedding table: its map of the tokens comes first
            self._pca(row, detail["pca"])
            row += 4
        for name, w in detail["weights"].items():
            short = name.split(".", 1)[-1] if "." in name else name
            self._hist(row, 0, f"{short} {('×'.join(map(str, w['shape'])))}", w["hist"],
                       (100, 170, 240))
            if "grad_hist" in w:
                self._hist(row, 1, f"grad (norm {w.get('grad_norm', 0):.2g})",
                           w["grad_hist"], (240, 170, 80))
            row += 1
            if "image" in w:
                self._image(row, 0, f"{short} as an image", w["image"])
                row += 1
        for port, a in detail["activations"].items():
            self._hist(row, 0, f"output {port} {'×'.join(map(str, a['shape']))}",
                       a["hist"], (110, 230, 140))
            row += 1
        self.canvas.setMinimumHeight(130 * row)

    def _hist(self, row: int, col: int, title: str, hist: dict, color) -> pg.PlotItem:
        p = self.canvas.addPlot(row=row, col=col)
        p.setTitle(title, size="8pt", color="#c8ccd4")
        if hist["counts"]:
            edges = np.asarray(hist["edges"])
            p.addItem(pg.BarGraphItem(x0=edges[:-1], x1=edges[1:], height=hist["counts"],
                                      brush=pg.mkBrush(*color, 200), pen=None))
        return p

    def _image(self, row: int, col: int, title: str, image: np.ndarray) -> None:
        p = self.canvas.addPlot(row=row, col=col, colspan=2)
        p.setTitle(title, size="8pt", color="#c8ccd4")
        p.invertY(True)
        p.setAspectLocked(False)
        item = pg.ImageItem(np.asarray(image).T)
        lim = float(np.abs(image).max()) or 1.0
        item.setColorMap(pg.colormap.get("CET-D1"))
        item.setLevels((-lim, lim))
        p.addItem(item)

    def _pca(self, row: int, pca: dict) -> None:
        p = self.canvas.addPlot(row=row, col=0, colspan=2, rowspan=4)
        p.setTitle(f"PCA of {pca['weight']} (one point per token)", size="8pt",
                             color="#c8ccd4")
        xy = np.asarray(pca["xy"])
        self.pca_item = p.plot(xy[:, 0], xy[:, 1], pen=None, symbol="o", symbolSize=4,
                               symbolBrush=(200, 120, 240))
        for (x, y), label in zip(xy, pca["labels"]):
            text = pg.TextItem(repr(label)[1:-1] if label.isspace() or not label else label,
                               color=(230, 232, 236), anchor=(0.5, 1.0))
            text.setPos(float(x), float(y))
            p.addItem(text)


class AttentionPanel(QWidget):
    """An attention heatmap per head for the sampling prompt (rows: query, columns: key)."""

    HINT = "Generate text in the Sampling dock to see attention over the prompt."

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        self.layer = QComboBox()
        self.layer.currentTextChanged.connect(lambda _t: self._draw())
        self.info = header(box, self.HINT, self.layer)
        self.canvas = pg.GraphicsLayoutWidget()
        self.canvas.setBackground(BG)
        self.canvas.setMinimumHeight(420)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.canvas)
        box.addWidget(scroll, 1)
        self.maps: dict[str, np.ndarray] = {}
        self.prompt = ""

    def clear(self) -> None:
        self.maps, self.prompt = {}, ""
        self.layer.clear()
        self.canvas.clear()
        self.info.setText(self.HINT)

    def show_maps(self, maps: dict[str, np.ndarray], prompt: str) -> None:
        self.maps, self.prompt = maps, prompt
        self.layer.blockSignals(True)
        self.layer.clear()
        self.layer.addItems(list(maps))
        self.layer.blockSignals(False)
        shown = prompt[:40].replace("\n", "⏎")
        self.info.setText(f"Attention over “{shown}”: row = query position, column = "
                          f"attended position (each row sums to 1).")
        self._draw()

    def _draw(self) -> None:
        self.canvas.clear()
        maps = self.maps.get(self.layer.currentText())
        if maps is None:
            return
        heads = maps.shape[0]
        cols = min(heads, 2)
        chars = ["⏎" if c == "\n" else "␣" if c.isspace() else c
                 for c in self.prompt[: maps.shape[1]]]
        every = max(1, (len(chars) + 7) // 8)
        ticks = [[(i, c) for i, c in enumerate(chars) if i % every == 0]]
        for h in range(heads):
            p = self.canvas.addPlot(row=h // cols, col=h % cols)
            p.setTitle(f"head {h}", size="8pt", color="#c8ccd4")
            p.setAspectLocked(True)
            probability_map(p, maps[h])
            shifted = [[(i + 0.5, c) for i, c in ticks[0]]]
            p.getAxis("bottom").setTicks(shifted)
            p.getAxis("left").setTicks(shifted)


class InspectDock(QTabWidget):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        from nodegraph.training.predictions import PredictionsPanel

        self.node = NodePanel()
        self.attention = AttentionPanel()
        self.predictions = PredictionsPanel()
        self.addTab(self.node, "Node")
        self.addTab(self.attention, "Attention")
        self.addTab(self.predictions, "Predictions")

    def reset(self) -> None:
        """Forget the previous document's views (File ▸ New / Open)."""
        self.node.show_detail(None)
        self.attention.clear()
        self.predictions.reset()
