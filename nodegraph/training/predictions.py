"""The Debugger dock's Predictions tab: what the model predicts while it trains.

* 2-D classifiers: the decision boundary (the model on a grid over the data, tinted by class
  and confidence) with the validation points (x = misclassified);
* regression: predicted and true values of every validation example;
* image classifiers: validation images titled with the predicted class, and a confusion matrix;
* Run ▸ Predict on File: the model's outputs for the user's own file (a table, or text).

The numbers come from the worker (``predictions`` messages) and ``engine.api.predict_file``
(in a QThread); this module only draws them.
"""

from __future__ import annotations

import html

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QThread, Signal
from PySide6.QtWidgets import (
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine import api

BG = (30, 32, 36)
CLASS_COLORS = [(66, 135, 245), (245, 130, 48), (60, 180, 75), (230, 25, 75), (145, 30, 180),
                (70, 220, 220), (240, 50, 230), (210, 245, 60)]
TITLE = "#c8ccd4"
MIN_VIEW_H = 300  # a view never gets smaller than this: the tab scrolls instead
THUMB_W = 130  # an image of the grid with its title, in pixels
CONFUSION_H = 300


def class_color(k: int) -> tuple[int, int, int]:
    return CLASS_COLORS[k % len(CLASS_COLORS)]


def boundary_image(classes: np.ndarray, confidence: np.ndarray, n_classes: int) -> np.ndarray:
    """(H, W, 3) uint8: each cell's class colour, faded towards the background when unsure."""
    palette = np.array([class_color(k) for k in range(n_classes)], np.float32)
    chance = 1.0 / max(n_classes, 1)
    sure = np.clip((confidence - chance) / max(1.0 - chance, 1e-6), 0.0, 1.0)[..., None]
    alpha = 0.18 + 0.5 * sure
    bg = np.array(BG, np.float32)
    return (bg + (palette[classes] - bg) * alpha).astype(np.uint8)


class PredictThread(QThread):
    done = Signal(dict)
    failed = Signal(str)

    def __init__(self, kwargs: dict, parent=None) -> None:
        super().__init__(parent)
        self.kwargs = kwargs

    def run(self) -> None:
        try:
            self.done.emit(api.predict_file(**self.kwargs))
        except Exception as exc:  # noqa: BLE001 (shown in the panel; the editor stays up)
            self.failed.emit(getattr(exc, "message", None) or str(exc))


class PredictionsPanel(QWidget):
    predict_file_requested = Signal()
    HINT = "Train a model to see its predictions on the validation data here, live."

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        self.info = QLabel(self.HINT)
        self.info.setWordWrap(True)
        box.addWidget(self.info)
        # the views keep a readable size and scroll in a small dock instead of being squashed
        self.canvas = pg.GraphicsLayoutWidget()
        self.canvas.setBackground(BG)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll.setWidget(self.canvas)
        box.addWidget(self.scroll, 1)
        lower = QVBoxLayout()
        lower.setContentsMargins(0, 0, 0, 0)
        self.file_button = QPushButton("Predict on File…")
        self.file_button.setToolTip("Run the model on your own CSV / .npy / image file, or "
                                    "continue a text file with a language model")
        self.file_button.clicked.connect(self.predict_file_requested)
        lower.addWidget(self.file_button)
        self.file_status = QLabel("")
        self.file_status.setWordWrap(True)
        lower.addWidget(self.file_status)
        self.results = QStackedWidget()
        self.table = QTableWidget(0, 0)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.results.addWidget(self.table)
        self.results.addWidget(self.text)
        self.results.setMaximumHeight(170)
        self.results.hide()  # until a file was predicted on
        lower.addWidget(self.results)
        box.addLayout(lower)
        self.data: dict | None = None
        self.task: str | None = None
        self.image: np.ndarray | None = None  # the decision boundary as drawn (RGB)
        self.curve = None  # regression: predicted values
        self.truth = None
        self.confusion: np.ndarray | None = None
        self.grid_titles: list[str] = []
        self.file_result: dict | None = None
        self.thread: PredictThread | None = None
        self._items: dict = {}

    # ------------------------------------------------------------------ live views

    def reset(self) -> None:
        """Forget the previous document's predictions (File ▸ New / Open)."""
        self.canvas.clear()
        self.scroll.show()
        self._items = {}
        self.data = self.task = self.image = self.curve = self.truth = None
        self.confusion, self.grid_titles, self.file_result = None, [], None
        self.info.setText(self.HINT)
        self.file_status.setText("")
        self.table.setRowCount(0)
        self.table.setColumnCount(0)
        self.text.clear()
        self.results.hide()
        self.canvas.setMinimumHeight(MIN_VIEW_H)

    def show_predictions(self, data: dict) -> None:
        self.data = data
        task = data.get("task")
        if task != self.task:
            self.canvas.clear()
            self._items = {}
            self.task = task
            self.canvas.setMinimumHeight(MIN_VIEW_H)
            self.scroll.setVisible(task != "seq2seq")  # its pairs are the text above
        if task == "boundary":
            self._boundary(data)
        elif task == "regression":
            self._regression(data)
        elif task == "images":
            self._images(data)
        elif task == "seq2seq":  # decoded validation pairs, wrong ones marked
            from nodegraph.training.seq2seq_panel import pairs_html

            self.info.setText(pairs_html(data))
        else:
            self.info.setText(html.escape(data.get("note") or "no prediction view"))

    def _boundary(self, d: dict) -> None:
        k = d["n_classes"]
        self.image = boundary_image(np.asarray(d["classes"]), np.asarray(d["confidence"]), k)
        x0, x1, y0, y1 = d["extent"]
        if not self._items:
            p = self.canvas.addPlot()
            p.setAspectLocked(True)
            p.showGrid(x=False, y=False)
            img = pg.ImageItem(axisOrder="row-major")
            p.addItem(img)
            ok = pg.ScatterPlotItem(size=7, pen=pg.mkPen(15, 15, 18, width=1))
            bad = pg.ScatterPlotItem(size=9, symbol="x", pen=None)
            p.addItem(ok)
            p.addItem(bad)
            p.addLegend(offset=(6, 6), labelTextColor=TITLE)
            for c, name in enumerate(d["class_names"]):
                p.legend.addItem(pg.ScatterPlotItem(brush=pg.mkBrush(*class_color(c)), size=8),
                                 html.escape(name))
            self._items = {"plot": p, "image": img, "ok": ok, "bad": bad}
            p.setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0.02)
        it = self._items
        it["image"].setImage(self.image, levels=(0, 255))
        it["image"].setRect(pg.QtCore.QRectF(x0, y0, x1 - x0, y1 - y0))
        pts, labels, pred = (np.asarray(d[k]) for k in ("points", "labels", "predicted"))
        right = pred == labels
        brushes = [pg.mkBrush(*class_color(int(c))) for c in labels]
        it["ok"].setData(pos=pts[right], brush=[b for b, r in zip(brushes, right) if r])
        wrong = ~right
        it["bad"].setData(pos=pts[wrong], brush=[b for b, w in zip(brushes, wrong) if w])
        it["plot"].setTitle(f"decision boundary · step {d['step']} · validation accuracy "
                            f"{d['accuracy']:.1%}", size="9pt", color=TITLE)
        self.info.setText("Background: the class the model predicts at each point (brighter = "
                          "more confident). Dots: validation points in their true class "
                          "colour; × = misclassified.")

    def _regression(self, d: dict) -> None:
        true, pred = np.asarray(d["true"]), np.asarray(d["pred"])
        x = d.get("x")
        if not self._items:
            p = self.canvas.addPlot()
            p.addLegend(offset=(6, 6), labelTextColor=TITLE)
            truth = p.plot([], [], pen=None, symbol="o", symbolSize=4, symbolPen=None,
                           symbolBrush=(170, 175, 185, 160), name="true")
            curve = p.plot([], [], pen=pg.mkPen(245, 130, 48, width=2), name="predicted")
            self._items = {"plot": p, "truth": truth, "curve": curve}
            p.setLabel("bottom", d.get("x_label") or "true value")
            p.setLabel("left", "target" if x is not None else "predicted")
        it = self._items
        if x is not None:
            order = np.argsort(x)
            it["truth"].setData(x, true)
            it["curve"].setData(np.asarray(x)[order], pred[order])
        else:  # several inputs: predicted against true, the diagonal is perfect
            it["truth"].setData(true, true)
            it["curve"].setData(true, pred, pen=None, symbol="o", symbolSize=4,
                                symbolBrush=(245, 130, 48))
        self.curve, self.truth = it["curve"], it["truth"]
        mse = d.get("mse")
        it["plot"].setTitle(f"predicted vs true · step {d['step']}"
                            + (f" · validation MSE {mse:.4g}" if mse is not None else ""),
                            size="9pt", color=TITLE)
        self.info.setText(f"{len(true)} validation examples: grey = true target, orange = "
                          "the model's prediction.")

    def _images(self, d: dict) -> None:
        names, k = d["class_names"], d["n_classes"]
        images = np.asarray(d["images"])
        if not self._items:
            cols = int(np.clip(self.scroll.viewport().width() // THUMB_W, 2, 6))
            rows = -(-len(images) // cols)
            self.canvas.setMinimumHeight(rows * (THUMB_W + 34) + CONFUSION_H)
            views = []
            grid = self.canvas.addLayout(row=0, col=0)
            for i in range(len(images)):
                v = grid.addViewBox(row=(i // cols) * 2 + 1, col=i % cols, lockAspect=True)
                v.invertY(True)
                v.setMinimumHeight(THUMB_W - 24)
                img = pg.ImageItem(axisOrder="row-major")
                v.addItem(img)
                label = grid.addLabel("", row=(i // cols) * 2, col=i % cols, size="8pt")
                views.append((img, label))
            conf = self.canvas.addPlot(row=1, col=0)
            conf.setMinimumHeight(CONFUSION_H - 20)
            conf.invertY(True)
            conf.setAspectLocked(True)
            conf.setLabel("left", "true class")
            conf.setLabel("bottom", "predicted class")
            ticks = [[(i + 0.5, n[:8]) for i, n in enumerate(names)]]
            conf.getAxis("bottom").setTicks(ticks)
            conf.getAxis("left").setTicks(ticks)
            cimg = pg.ImageItem(axisOrder="row-major")
            cimg.setColorMap(pg.colormap.get("viridis"))
            conf.addItem(cimg)
            texts = []
            for r in range(k):
                for c in range(k):
                    t = pg.TextItem("", color=(240, 240, 240), anchor=(0.5, 0.5))
                    t.setPos(c + 0.5, r + 0.5)
                    conf.addItem(t)
                    texts.append(t)
            self._items = {"views": views, "conf": conf, "cimg": cimg, "texts": texts}
        it = self._items
        self.grid_titles = []
        for (img, label), im, p, t, q in zip(it["views"], images, d["grid_pred"],
                                             d["grid_true"], d["grid_prob"]):
            img.setImage(im, levels=(0.0, 1.0))
            title = f"{names[int(p)]} {q:.0%}"
            self.grid_titles.append(title)
            color = "#7ddc8a" if int(p) == int(t) else "#ff6b6b"
            label.setText(title if int(p) == int(t) else f"{title}<br>(is {names[int(t)]})",
                          color=color, size="8pt")
        self.confusion = np.asarray(d["confusion"])
        it["cimg"].setImage(self.confusion.astype(np.float32),
                            levels=(0, max(1, int(self.confusion.max()))))
        for t, v in zip(it["texts"], self.confusion.ravel()):
            t.setText(str(int(v)))
        it["conf"].setTitle(f"confusion · step {d['step']}<br>{d['evaluated']} validation "
                            f"images · accuracy {d['accuracy']:.1%}", size="9pt", color=TITLE)
        self.info.setText("Validation images titled with the predicted class and its "
                          "probability (red: wrong, with the true class). Below: the "
                          "confusion matrix (row = true class, column = predicted).")

    # ------------------------------------------------------------------ the user's file

    def predict(self, **kwargs) -> bool:
        """Run ``api.predict_file(**kwargs)`` in a thread; the result lands in the table."""
        if self.thread is not None and self.thread.isRunning():
            return False
        self.file_status.setText(f"predicting on {kwargs['path']}…")
        self.file_result = None
        self.thread = PredictThread(kwargs, self)
        self.thread.done.connect(self.show_file_result)
        self.thread.failed.connect(self.show_file_error)
        self.thread.start()
        return True

    def show_file_error(self, message: str) -> None:
        self.file_result = {"kind": "error", "message": message}
        self.file_status.setText(f"<span style='color:#ff6b6b'>Cannot predict: "
                                 f"{html.escape(message)}</span>")

    def show_file_result(self, result: dict) -> None:
        self.file_result = result
        where = f"weights: {html.escape(str(result.get('weights')))}"
        if result["kind"] == "text":
            self.results.show()
            self.results.setCurrentWidget(self.text)
            self.text.setPlainText(result["prompt"][-300:] + result["continuation"])
            self.file_status.setText(f"Continued {html.escape(result['file'])} by "
                                     f"{len(result['continuation'])} characters ({where})")
            return
        self.results.show()
        self.results.setCurrentWidget(self.table)
        cols, rows = result["columns"], result["rows"]
        self.table.clear()
        self.table.setColumnCount(len(cols))
        self.table.setRowCount(len(rows))
        self.table.setHorizontalHeaderLabels(cols)
        for r, row in enumerate(rows):
            for c, v in enumerate(row):
                self.table.setItem(r, c, QTableWidgetItem(str(v)))
        more = f" (first {len(rows)} shown)" if result["count"] > len(rows) else ""
        self.file_status.setText(f"{result['count']} prediction(s) for "
                                 f"{html.escape(result['file'])}{more} ({where})")

    def shutdown(self) -> None:
        if self.thread is not None:
            self.thread.wait(5000)
