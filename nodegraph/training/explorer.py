"""The embedding explorer: what a text model's token embeddings learned.

A 2-D PCA map of the embedding table (one labelled point per token, zoomable; pyqtgraph), a
search box (a word or token is highlighted and centred) and its k nearest tokens by cosine
similarity (``engine.api.embedding_neighbours``, the function behind ``wiregrad embeddings``);
clicking a neighbour jumps to it. The panel only shows plain data: the document and the
weights it is given (the shipped ones, loaded ones, or a run's) come from
:mod:`nodegraph.training.explorer_route`.
"""

from __future__ import annotations

import html

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from engine import api

BG = "#1e2127"
POINT = (120, 150, 200, 150)
QUERY = (250, 200, 60)
NEAR = (110, 230, 140)
HINT = ("Open a text model (char_gpt, word_gpt) or a seq2seq graph (seq2seq_dates) with "
        "weights to explore its token embeddings.")


def shown(label: str) -> str:
    """A token as the map and the list show it: whitespace and empty tokens escaped, a BPE
    piece's leading space as ``·`` (so ``' king'`` reads ``·king``)."""
    if not label or label.isspace():
        return repr(label)[1:-1] or "''"
    return "·" + label[1:] if label.startswith(" ") else label


class EmbeddingExplorer(QWidget):
    """Map, search box and nearest-neighbours list over one document's embedding table."""

    selected = Signal(int)  # the token now highlighted

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.doc: dict | None = None
        self.weights: dict | None = None
        self.map: dict | None = None
        self.report: dict | None = None
        self.labels: list[pg.TextItem] = []
        self.label_names: list[str] = []  # the texts of :attr:`labels`
        self.marked: dict[int, tuple] = {}  # label index → its highlight colour
        self.source_label = ""
        self._build()

    def _build(self) -> None:
        box = QVBoxLayout(self)
        box.setContentsMargins(4, 4, 4, 4)
        self.info = QLabel(HINT)
        self.info.setWordWrap(True)
        box.addWidget(self.info)
        row = QHBoxLayout()
        self.search_box = QLineEdit()
        self.search_box.setPlaceholderText("a word or token, e.g. king")
        self.search_box.returnPressed.connect(lambda: self.search(self.search_box.text()))
        self.k_box = QSpinBox()
        self.k_box.setRange(1, 50)
        self.k_box.setValue(10)
        self.k_box.setPrefix("k = ")
        self.find_button = QPushButton("Find")
        self.find_button.clicked.connect(lambda: self.search(self.search_box.text()))
        self.table_box = QComboBox()  # a seq2seq graph's source / target tables
        self.table_box.setToolTip("Which token table: the encoder's (source) or the "
                                  "decoder's (target)")
        self.table_box.setVisible(False)
        self.table_box.currentTextChanged.connect(self._table_changed)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setToolTip("Read the latest weights again (a run's, loaded or the "
                                       "document's)")
        row.addWidget(self.search_box, 1)
        row.addWidget(self.table_box)
        row.addWidget(self.k_box)
        row.addWidget(self.find_button)
        row.addWidget(self.refresh_button)
        box.addLayout(row)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #e8a060")
        box.addWidget(self.message)
        self.split = split = QSplitter(Qt.Orientation.Horizontal)
        self.plot = pg.PlotWidget(background=BG)
        self.plot.showGrid(x=True, y=True, alpha=0.15)
        self.scatter = pg.ScatterPlotItem(size=5, pen=None, brush=pg.mkBrush(*POINT))
        self.near_item = pg.ScatterPlotItem(size=9, pen=pg.mkPen(20, 20, 20),
                                            brush=pg.mkBrush(*NEAR))
        self.query_item = pg.ScatterPlotItem(size=14, symbol="star", pen=pg.mkPen(20, 20, 20),
                                             brush=pg.mkBrush(*QUERY))
        for item in (self.scatter, self.near_item, self.query_item):
            self.plot.addItem(item)
        self.near_item.setZValue(10)
        self.query_item.setZValue(11)
        self.scatter.sigClicked.connect(self._point_clicked)
        split.addWidget(self.plot)
        self.list = QListWidget()
        self.list.itemClicked.connect(self._item_clicked)
        self.list.itemActivated.connect(self._item_clicked)
        split.addWidget(self.list)
        split.setSizes([520, 220])
        box.addWidget(split, 1)

    # ------------------------------------------------------------------ data

    def clear(self, text: str = HINT) -> None:
        """Show nothing but *text* (no document, no weights, or no embedding table)."""
        self.doc = self.weights = self.map = self.report = None
        self._set_tables([], "")
        self.info.setText(text)
        self.message.setText("")
        self.list.clear()
        self._draw()

    def set_source(self, doc: dict, weights: dict | None, label: str) -> bool:
        """Explore *doc*'s embedding table in *weights* (named *label*); False (and a message)
        when the graph has none or the weights lack it."""
        if weights is None:
            self.clear(f"{HINT} This graph has no weights yet: train it or load weights.")
            return False
        table = self.table_box.currentText() or None
        try:
            try:
                found = api.embedding_map(doc, weights, table)
            except api.errors.WiregradError:
                if table is None:
                    raise
                found = api.embedding_map(doc, weights)  # another graph: its first table
        except api.errors.WiregradError as exc:
            self.clear(f"No embedding map: {exc}")
            return False
        keep = self.report["query"]["token"] if self.report else None
        self.doc, self.weights, self.map, self.report = doc, weights, found, None
        self.source_label = label
        self._set_tables(found["tables"], found["table"])
        kind = "BPE" if found["tokenizer"] == "bpe" else found["tokenizer"]
        self.info.setText(f"<b>{html.escape(found['weight'])}</b> — {found['vocab_size']} "
                          f"{kind} tokens, PCA to 2-D · weights: {html.escape(label)}")
        self.message.setText("")
        self.list.clear()
        self._draw()
        if keep is not None and keep < found["vocab_size"]:
            self.select_token(keep)  # a refresh keeps the token in view
        return True

    def _set_tables(self, names: list[str], current: str) -> None:
        self.table_box.blockSignals(True)
        if [self.table_box.itemText(i) for i in range(self.table_box.count())] != names:
            self.table_box.clear()
            self.table_box.addItems(names)
        self.table_box.setCurrentText(current)
        self.table_box.blockSignals(False)
        self.table_box.setVisible(len(names) > 1)

    def _table_changed(self, _name: str) -> None:
        if self.doc is not None and self.weights is not None:  # keeps the token in view
            self.set_source(self.doc, self.weights, self.source_label)

    def _draw(self) -> None:
        """Points and labels of :attr:`map`; the label items are kept (and only moved) while
        the tokens stay the same — a live run's refresh re-creates none of them."""
        self.near_item.setData([], [])
        self.query_item.setData([], [])
        names = [shown(label) for label in self.map["labels"]] if self.map else []
        fresh = names != self.label_names  # other tokens: fit the view (else keep the zoom)
        if fresh:
            for text in self.labels:
                self.plot.removeItem(text)
            self.labels = [pg.TextItem(name, color=(200, 204, 212), anchor=(0.5, 1.1))
                           for name in names]
            for text in self.labels:
                self.plot.addItem(text)
            self.label_names, self.marked = names, {}
        if self.map is None:
            self.scatter.setData([], [])
            return
        xy = np.asarray(self.map["xy"], dtype=np.float64)
        self.scatter.setData(x=xy[:, 0], y=xy[:, 1], data=list(range(len(xy))))
        self._mark(None, [])
        for (x, y), text in zip(xy, self.labels):
            text.setPos(float(x), float(y))
        if fresh:
            self.plot.getViewBox().autoRange(items=[self.scatter])

    def _mark(self, query: int | None, near: list[int]) -> None:
        """Colour the labels of *query* and *near* (and only re-colour those that change)."""
        want = {i: QUERY if i == query else NEAR for i in [*near, *(
            [query] if query is not None else [])]}
        for i in set(self.marked) | set(want):
            if i >= len(self.labels) or self.marked.get(i) == want.get(i):
                continue
            text, color = self.labels[i], want.get(i)
            text.setColor(pg.mkColor(*(color or (200, 204, 212))))
            text.fill = pg.mkBrush(20, 22, 27, 230) if color else pg.mkBrush(None)
            text.setZValue(13 if i == query else 12 if color else 0)
            text.update()
        self.marked = want

    # ------------------------------------------------------------------ queries

    def resizeEvent(self, event) -> None:  # noqa: N802
        """Map beside the list when wide, above it when narrow (a side dock)."""
        super().resizeEvent(event)
        wide = self.width() >= 640
        self.split.setOrientation(Qt.Orientation.Horizontal if wide else
                                  Qt.Orientation.Vertical)

    def search(self, text: str) -> bool:
        """Highlight and centre *text* (a word or a token) with its nearest neighbours."""
        if self.search_box.text() != text:
            self.search_box.setText(text)
        return self._query(text.strip("\n") if text.strip() else "")

    def select_token(self, token: int) -> bool:
        """Highlight and centre token id *token* with its nearest neighbours."""
        return self._query(int(token))

    def _query(self, what: str | int) -> bool:
        if self.doc is None or self.weights is None:
            self.message.setText("nothing to search: this graph has no embedding map")
            return False
        try:
            report = api.embedding_neighbours(self.doc, self.weights, what, self.k_box.value(),
                                              self.map["table"])
        except api.errors.WiregradError as exc:
            self.message.setText(str(exc))
            return False
        self.message.setText("")
        self.report = report
        self._show_report(report)
        self.selected.emit(report["query"]["token"])
        return True

    def _show_report(self, report: dict) -> None:
        q = report["query"]
        self.list.clear()
        head = QListWidgetItem(f"{shown(q['label'])}  (id {q['token']}) — nearest by cosine:")
        head.setFlags(Qt.ItemFlag.NoItemFlags)
        self.list.addItem(head)
        for n in report["neighbours"]:
            item = QListWidgetItem(f"{n['similarity']:+.3f}   {shown(n['label'])}")
            item.setData(Qt.ItemDataRole.UserRole, n["token"])
            item.setToolTip(f"{n['label']!r} — token id {n['token']}; click to jump to it")
            self.list.addItem(item)
        xy = np.asarray(self.map["xy"], dtype=np.float64)
        ids = [n["token"] for n in report["neighbours"]]
        self.near_item.setData(x=xy[ids, 0], y=xy[ids, 1])
        self.query_item.setData(x=[xy[q["token"], 0]], y=[xy[q["token"], 1]])
        self._mark(q["token"], ids)
        self.centre_on(q["token"])

    def centre_on(self, token: int) -> None:
        """Centre the map on *token*, zoomed so that its listed neighbours are in view (at
        least 1/40, at most half of the whole map each way)."""
        xy = np.asarray(self.map["xy"], dtype=np.float64)
        span = np.maximum(np.ptp(xy, axis=0), 1e-9)
        near = [n["token"] for n in self.report["neighbours"]] if self.report else []
        reach = np.abs(xy[near] - xy[token]).max(axis=0) * 1.15 if near else span / 12
        half = np.clip(reach, span / 40, span / 2)
        x, y = xy[token]
        self.plot.setXRange(x - half[0], x + half[0], padding=0)
        self.plot.setYRange(y - half[1], y + half[1], padding=0)

    def view_centre(self) -> tuple[float, float]:
        """The centre of the map's visible range (tests)."""
        (x0, x1), (y0, y1) = self.plot.viewRange()
        return (x0 + x1) / 2, (y0 + y1) / 2

    def neighbour_ids(self) -> list[int]:
        """The token ids in the neighbours list, in order."""
        return [self.list.item(i).data(Qt.ItemDataRole.UserRole)
                for i in range(1, self.list.count())]

    def _item_clicked(self, item: QListWidgetItem) -> None:
        token = item.data(Qt.ItemDataRole.UserRole)
        if token is not None:
            self.search_box.setText(self.map["labels"][token].strip() or
                                    shown(self.map["labels"][token]))
            self.select_token(int(token))

    def _point_clicked(self, _item, points, *_args) -> None:
        if len(points):
            self.select_token(int(points[0].data()))
