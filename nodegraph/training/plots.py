"""Live training plots (pyqtgraph): loss (train, smoothed, validation), metrics, learning rate,
global gradient norm and throughput; x-axis by step or wall time; log-scale toggle; a smoothing
slider; hover read-outs; overlays of other runs; PNG export.

Nothing here reads the pipe: :meth:`TrainingPlots.refresh` redraws from a run's columns and is
called by the dock's QTimer only when new records arrived.
"""

from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGraphicsItem,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from nodegraph.training.runs import RunData
from nodegraph.training.visible import on_screen

BG = (30, 32, 36)
OVERLAY_COLORS = [(255, 196, 64), (200, 120, 240), (90, 220, 200), (240, 110, 150),
                  (160, 200, 90)]
GROUPS = ("loss", "metrics", "lr", "grad", "speed")
METRIC_COLORS = [(110, 230, 140), (240, 170, 80), (200, 120, 240), (90, 220, 200)]
# Live plots redraw together at most this often, and only while on screen: the five share
# one canvas, so one redraw is one paint of it (a round robin of one plot per 100 ms painted
# it ~18 times a second, ~7 ms each, 2/3 of the GUI's CPU while a CNN trained). Once a second
# (every fifth tick of the training UI's 200 ms timer): at every 0.4 s the paints were ~1/3 of
# the GUI's CPU while char-GPT trained, and each ms of it stalls one of the worker's batch parts.
PLOT_S = 0.95


def nice_ceiling(v: float) -> float:
    """The smallest of 1, 2, 5 × 10^k at or above *v* (x-ranges that change rarely)."""
    if not v > 0:
        return 1.0
    exp = 10.0 ** np.floor(np.log10(v))
    for m in (1.0, 2.0, 5.0, 10.0):
        if m * exp >= v:
            return float(m * exp)
    return float(10 * exp)


def nice_range(lo: float, hi: float) -> tuple[float, float]:
    """[*lo*, *hi*] widened to multiples of a 1-2-5 step of about a fifth of its span: a
    y-range that moves only now and then while the curves grow (each move re-renders the
    axis text)."""
    if hi <= lo:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    step = nice_ceiling((hi - lo) / 5.0)
    return (float(np.floor(lo / step) * step), float(np.ceil(hi / step) * step))


def smooth(y: np.ndarray, amount: float) -> np.ndarray:
    """A trailing moving average over ``1 + amount·100`` points (NaN-free input)."""
    window = 1 + int(round(amount * 100))
    if window <= 1 or len(y) < 2:
        return y
    c = np.cumsum(np.insert(y, 0, 0.0))
    out = np.empty_like(y)
    w = min(window, len(y))
    out[:w] = c[1: w + 1] / np.arange(1, w + 1)
    out[w:] = (c[w + 1:] - c[1: len(y) - w + 1]) / w
    return out


class Hover:
    """A vertical line and a read-out of every curve's value nearest the mouse."""

    def __init__(self, plot: pg.PlotItem) -> None:
        self.plot = plot
        self.line = pg.InfiniteLine(angle=90, pen=pg.mkPen((200, 200, 200, 90)))
        self.label = pg.TextItem(color=(230, 232, 236), anchor=(0, 0),
                                 fill=pg.mkBrush(24, 26, 30, 220))
        for item in (self.line, self.label):
            item.setZValue(100)
            plot.addItem(item, ignoreBounds=True)
            item.hide()
        plot.scene().sigMouseMoved.connect(self.moved)
        self.text = ""

    def moved(self, pos) -> None:
        vb = self.plot.vb
        if not self.plot.sceneBoundingRect().contains(pos):
            self.line.hide()
            self.label.hide()
            return
        x = vb.mapSceneToView(pos).x()
        self.show_at(x)

    def show_at(self, x: float) -> str:
        lines = []
        for curve in self.plot.listDataItems():
            xs, ys = curve.xData, curve.yData
            if xs is None or len(xs) == 0 or not curve.name():
                continue
            i = int(np.clip(np.searchsorted(xs, x), 0, len(xs) - 1))
            if i > 0 and abs(xs[i - 1] - x) < abs(xs[i] - x):
                i -= 1
            lines.append(f"{curve.name()}: {ys[i]:.4g} @ {xs[i]:.4g}")
        self.text = "\n".join(lines)
        if lines:
            vr = self.plot.vb.viewRange()
            self.line.setPos(x)
            self.label.setText(self.text)
            self.label.setPos(x, vr[1][1])
            self.line.show()
            self.label.show()
        return self.text


class TrainingPlots(QWidget):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.addLayout(self._toolbar())
        self.canvas = pg.GraphicsLayoutWidget()
        self.canvas.setBackground(BG)
        box.addWidget(self.canvas, 1)
        self.loss = self._plot(0, 0, "loss", colspan=2)
        self.metrics = self._plot(0, 2, "metrics")
        self.lr = self._plot(1, 0, "learning rate")
        self.grad = self._plot(1, 1, "grad norm")
        self.speed = self._plot(1, 2, "throughput (examples/s)")
        self.curves = {
            "loss_raw": self.loss.plot(pen=pg.mkPen((100, 170, 240, 70), width=1)),
            "loss": self.loss.plot(pen=pg.mkPen((100, 170, 240), width=2), name="train"),
            "val_loss": self.loss.plot(pen=pg.mkPen((240, 110, 90), width=2), symbol="o",
                                       symbolSize=5, symbolBrush=(240, 110, 90),
                                       name="validation"),
            "lr": self.lr.plot(pen=pg.mkPen((110, 230, 140), width=2), name="lr"),
            "grad_norm": self.grad.plot(pen=pg.mkPen((240, 170, 80), width=1.5),
                                        name="grad norm"),
            "speed": self.speed.plot(pen=pg.mkPen((200, 120, 240), width=1.5),
                                     name="examples/s"),
        }
        self.metric_curves: dict[str, pg.PlotDataItem] = {}
        self.overlay_curves: list[pg.PlotDataItem] = []
        self.hovers = {name: Hover(p) for name, p in self.plots().items()}
        self.run: RunData | None = None
        self.overlays: list[RunData] = []
        self._drawn = (-1, -1, None)
        self._drawn_at = -PLOT_S  # time.monotonic() of the last live redraw
        self._lr_top = 0.0
        self._pending: list[str] = []
        self._x_top: dict[str, float] = {}
        self._y_range: dict[str, tuple[float, float]] = {}
        self._manual_y: set[str] = set()  # plots the user zoomed or panned (y left to them)
        for group, plot in self.plots().items():
            plot.vb.sigRangeChangedManually.connect(
                lambda mask, g=group: mask[1] and self._manual_y.add(g))
            plot.autoBtn.clicked.connect(lambda *_, g=group: self._give_back_y(g))
        self._speed_title = ""


    def _toolbar(self) -> QHBoxLayout:
        row = QHBoxLayout()
        row.setContentsMargins(4, 2, 4, 2)
        row.addWidget(QLabel("x-axis"))
        self.x_axis = QComboBox()
        self.x_axis.addItems(["step", "wall time (s)"])
        self.x_axis.currentIndexChanged.connect(lambda _i: (self._reset_x(),
                                                            self.refresh(force=True)))
        row.addWidget(self.x_axis)
        self.log = QCheckBox("log loss")
        self.log.toggled.connect(self._set_log)
        row.addWidget(self.log)
        row.addWidget(QLabel("smoothing"))
        self.smoothing = QSlider(Qt.Orientation.Horizontal)
        self.smoothing.setRange(0, 99)
        self.smoothing.setValue(60)
        self.smoothing.setMaximumWidth(140)
        self.smoothing.valueChanged.connect(lambda _v: self.refresh(force=True))
        row.addWidget(self.smoothing)
        row.addStretch(1)
        self.png_button = QPushButton("Export PNG…")
        self.csv_button = QPushButton("Export CSV…")
        row.addWidget(self.png_button)
        row.addWidget(self.csv_button)
        return row

    def _plot(self, row: int, col: int, title: str, colspan: int = 1) -> pg.PlotItem:
        p = self.canvas.addPlot(row=row, col=col, colspan=colspan, title=title)
        p.showGrid(x=True, y=True, alpha=0.15)
        p.setClipToView(True)
        p.setDownsampling(auto=True, mode="peak")
        if title in ("loss", "metrics"):
            p.addLegend(offset=(-10, 5), labelTextSize="8pt")
        p.titleLabel.setText(title, size="9pt", color="#c8ccd4")
        p.layout.setRowFixedHeight(0, 18)
        for side in ("left", "bottom"):  # the axes (text, grid) repaint from a pixmap unless
            # they changed: replaying their pictures cost the GUI ~8 ms per axis per redraw
            p.getAxis(side).setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        return p

    def plots(self) -> dict[str, pg.PlotItem]:
        return {"loss": self.loss, "metrics": self.metrics, "lr": self.lr, "grad": self.grad,
                "speed": self.speed}

    def _set_log(self, on: bool) -> None:
        self.loss.setLogMode(y=on)  # pyqtgraph turns autorange back on: ranges set anew
        self._y_range.pop("loss", None)
        self._x_top.pop("loss", None)
        self.refresh(force=True)

    # ------------------------------------------------------------------ data

    def show_run(self, run: RunData | None, overlays: list[RunData] | None = None) -> None:
        self.run = run
        self.overlays = [r for r in (overlays or []) if r is not run]
        self.refresh(force=True)

    def _reset_x(self) -> None:
        self._x_top = {}

    def _x(self, cols: dict) -> np.ndarray:
        return cols["wall"].view() if self.x_axis.currentIndex() == 1 else cols["step"].view()

    def refresh(self, force: bool = False, now: float | None = None) -> bool:
        """Redraw from the run's columns when something changed; True when it drew.

        Live updates (not *force*) draw every plot at once, at most every :data:`PLOT_S`
        (*now*: ``time.monotonic()`` by default) and only while the plots are on screen;
        what is pending is drawn when they come back (:meth:`draw_pending`). *force* draws
        now.
        """
        run = self.run
        key = (run.id if run else -1, run.version if run else -1,
               tuple(r.id for r in self.overlays))
        if key != self._drawn or force:
            self._drawn = key
            self._pending = list(GROUPS)
        if not self._pending:
            return False
        now = time.monotonic() if now is None else now
        if not force and (now - self._drawn_at < PLOT_S or not on_screen(self)):
            return False
        self._drawn_at = now
        groups, self._pending = self._pending, []
        for group in groups:
            self._draw_group(group, run)
        return True

    def draw_pending(self) -> None:
        """Back on screen (shown, or its dock raised): draw what arrived while hidden."""
        if self._pending:
            self.refresh(force=True)

    def showEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().showEvent(event)
        self.draw_pending()

    def _fit_x(self, group: str, x: np.ndarray, run: RunData) -> None:
        """A fixed x-range rounded up to 1-2-5 steps: the axis (costly text) is redrawn only
        when the range jumps, not at every new point."""
        ends = [x[-1] if len(x) else 0.0]
        if group == "loss":
            ends += [self._x(r.train)[-1] for r in self.overlays if len(r.train["step"])]
        top = nice_ceiling(max(ends))
        plot = {"lr": self.lr, "grad": self.grad, "speed": self.speed, "loss": self.loss,
                "metrics": self.metrics}[group]
        if self._x_top.get(group) != top:
            self._x_top[group] = top
            plot.setXRange(0.0, top, padding=0.02)

    def _give_back_y(self, group: str) -> None:
        """The plot's autorange button: its y-range follows the curves again."""
        self._manual_y.discard(group)
        self._y_range.pop(group, None)
        self.refresh(force=True)

    def _fit_y(self, group: str) -> None:
        """A y-range over the plot's curves widened to :func:`nice_range` steps, set only when
        it moves: pyqtgraph's autorange moved it — and re-rendered the axis text, ~9 ms an
        axis — at every live redraw (most of the GUI's CPU while training). A plot the user
        zoomed or panned is left alone until its autorange button is pressed."""
        plot = self.plots()[group]
        if group in self._manual_y:
            return
        ys = [np.asarray(c.yData, dtype=np.float64) for c in plot.listDataItems()
              if c.yData is not None and len(c.yData)]
        data = np.concatenate(ys) if ys else np.empty(0)
        if group == "loss" and self.log.isChecked():
            data = np.log10(data[data > 0])
        data = data[np.isfinite(data)]
        if not len(data):
            return
        span = nice_range(float(data.min()), float(data.max()))
        if self._y_range.get(group) != span:
            self._y_range[group] = span
            plot.setYRange(*span, padding=0.02)

    @property
    def up_to_date(self) -> bool:
        return not self._pending

    def _draw_group(self, group: str, run: RunData | None) -> None:
        if run is None:
            for curve in self.curves.values():
                curve.setData([], [])
            if group == "loss":
                self._draw_overlays()
            return
        x = self._x(run.train)
        self._fit_x(group, x, run)
        if group == "loss":
            amount = self.smoothing.value() / 100.0
            loss = run.train["loss"].view()
            self.curves["loss_raw"].setData(x, loss)
            self.curves["loss"].setData(x, smooth(loss, amount))
            ex = self._x(run.evals)
            self.curves["val_loss"].setData(ex, run.evals["val_loss"].view()
                                            if "val_loss" in run.evals else np.zeros(len(ex)))
            self._draw_overlays()
            self._fit_y(group)
        elif group == "metrics":
            self._draw_metrics(run, self._x(run.evals))
            self._fit_y(group)
        elif group == "lr":
            lr = run.train["lr"].view()
            self.curves["lr"].setData(x, lr)
            top = float(np.nanmax(lr)) * 1.15 if len(lr) else 0.0
            if top and top != self._lr_top:  # a relayout costs: only when the range changes
                self._lr_top = top
                self.lr.setYRange(0.0, top, padding=0)
        elif group == "grad":
            self.curves["grad_norm"].setData(x, run.train["grad_norm"].view())
            self._fit_y(group)
        elif group == "speed":
            tokens = run.train["tokens_per_s"].view()
            speed = tokens if len(tokens) and np.isfinite(tokens).any() else \
                run.train["examples_per_s"].view()
            title = "throughput (tokens/s)" if speed is tokens else "throughput (examples/s)"
            if title != self._speed_title:
                self._speed_title = title
                self.speed.titleLabel.setText(title, size="9pt", color="#c8ccd4")
            self.curves["speed"].setData(x, smooth(speed, 0.2))
            self._fit_y(group)

    def _draw_metrics(self, run: RunData, ex: np.ndarray) -> None:
        for i, name in enumerate(run.metric_names()):
            curve = self.metric_curves.get(name)
            if curve is None:
                color = METRIC_COLORS[i % len(METRIC_COLORS)]
                curve = self.metrics.plot(pen=pg.mkPen(color, width=2), symbol="o",
                                          symbolSize=5, symbolBrush=color, name=name)
                self.metric_curves[name] = curve
            curve.setData(ex, run.evals[name].view())
        for name in list(self.metric_curves):
            if name not in run.metric_names():
                self.metrics.removeItem(self.metric_curves.pop(name))

    def _draw_overlays(self) -> None:
        for curve in self.overlay_curves:
            self.loss.removeItem(curve)
        self.overlay_curves = []
        amount = self.smoothing.value() / 100.0
        for i, run in enumerate(self.overlays):
            color = OVERLAY_COLORS[i % len(OVERLAY_COLORS)]
            pen = pg.mkPen(color, width=1.5, style=Qt.PenStyle.DashLine)
            curve = self.loss.plot(self._x(run.train), smooth(run.train["loss"].view(), amount),
                                   pen=pen, name=f"{run.name} (train)")
            self.overlay_curves.append(curve)
            if "val_loss" in run.evals and len(run.evals["step"]):
                vcurve = self.loss.plot(self._x(run.evals), run.evals["val_loss"].view(),
                                        pen=None, symbol="t", symbolSize=6, symbolBrush=color,
                                        name=f"{run.name} (val)")
                self.overlay_curves.append(vcurve)

    def curve_data(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = self.curves[name].xData, self.curves[name].yData
        return (np.asarray(xs if xs is not None else []),
                np.asarray(ys if ys is not None else []))

    def export_png(self, path: str) -> bool:
        return self.canvas.grab().save(path)
