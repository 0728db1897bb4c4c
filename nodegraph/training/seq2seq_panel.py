"""The sampling dock on a sequence-to-sequence graph: an input → output panel.

Type a source and press Enter (or Decode): the engine encodes it once and decodes the output
(``engine.api.decode_pairs``; greedy by default, a beam width, or sampling at a temperature).
Each output token is tinted by the probability the model gave it, hovering shows the
alternatives, and the cross-attention map beside it shows, for the chosen decoder block and
head, how much each output token (row) looked at each input character (column).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QThread, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from engine import api
from nodegraph.training.heatmaps import BG, header, probability_map

EXAMPLE = "3rd of March, 1987"
NO_WEIGHTS = "no trained weights: train first or open weights…"


def _shown(c: str) -> str:
    return "␣" if c == " " else "⏎" if c == "\n" else c


class DecodeThread(QThread):
    """``api.decode_pairs`` off the UI thread: the editor stays responsive on a big model."""

    done = Signal(dict)
    failed = Signal(str)

    def __init__(self, doc: dict, path: str, text: str, options: dict, parent=None) -> None:
        super().__init__(parent)
        self.doc, self.path, self.text, self.options = doc, path, text, options

    def run(self) -> None:
        try:
            weights = api.load_weights_file(self.path)
            self.done.emit(api.decode_pairs(self.doc, weights, self.text, **self.options))
        except Exception as exc:  # noqa: BLE001 (shown in the panel; the editor stays up)
            self.failed.emit(str(exc))


class CrossAttentionView(QWidget):
    """One heat map per decoder block and head: rows = output tokens, columns = input."""

    HINT = "Decode an input to see where each output token looked in it."

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        self.layer = QComboBox()
        self.head = QComboBox()
        self.layer.setToolTip("decoder block (its cross-attention)")
        self.head.setToolTip("attention head")
        self.layer.currentTextChanged.connect(lambda _t: self._draw())
        self.head.currentIndexChanged.connect(lambda _i: self._draw())
        self.info = header(box, self.HINT, self.layer, self.head)
        self.canvas = pg.GraphicsLayoutWidget()
        self.canvas.setBackground(BG)
        box.addWidget(self.canvas, 1)
        self.maps: dict[str, np.ndarray] = {}
        self.rows: list[str] = []
        self.cols: list[str] = []
        self.image: pg.ImageItem | None = None

    def clear(self) -> None:
        self.maps, self.rows, self.cols = {}, [], []
        for combo in (self.layer, self.head):
            combo.blockSignals(True)
            combo.clear()
            combo.blockSignals(False)
        self.canvas.clear()
        self.image = None
        self.info.setText(self.HINT)

    def show_maps(self, maps: dict, rows: list[str], cols: list[str]) -> None:
        """*maps*: block → (heads, len(rows), len(cols)) probabilities (rows sum to 1)."""
        layer, head = self.layer.currentText(), self.head.currentIndex()
        self.maps, self.rows, self.cols = maps, rows, cols
        heads = max((m.shape[0] for m in maps.values()), default=0)
        for combo, items in ((self.layer, list(maps)),
                             (self.head, [f"head {h}" for h in range(heads)])):
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(items)
            combo.blockSignals(False)
        if layer in maps:
            self.layer.setCurrentText(layer)
        if 0 <= head < heads:
            self.head.setCurrentIndex(head)
        self.info.setText("Cross-attention: row = output token, column = input character "
                          "(each row sums to 1).")
        self._draw()

    def current(self) -> np.ndarray | None:
        """The map on show (len(rows), len(cols)), or None."""
        maps = self.maps.get(self.layer.currentText())
        h = self.head.currentIndex()
        return None if maps is None or not 0 <= h < maps.shape[0] else maps[h]

    def _draw(self) -> None:
        self.canvas.clear()
        self.image = None
        m = self.current()
        if m is None:
            return
        p = self.canvas.addPlot()
        p.setTitle(f"{self.layer.currentText()} · {self.head.currentText()}", size="8pt",
                   color="#c8ccd4")
        p.setMouseEnabled(False, False)
        self.image = probability_map(p, m)
        p.getAxis("bottom").setTicks([[(i + 0.5, _shown(c)) for i, c in enumerate(self.cols)]])
        p.getAxis("left").setTicks([[(i + 0.5, _shown(c)) for i, c in enumerate(self.rows)]])


class Seq2SeqPanel(QWidget):
    """Input → output decoding for a seq2seq graph (shown by the sampling dock)."""

    decoded = Signal(dict)
    use_run_weights = Signal()

    def __init__(self, sampling, view_class, parent=None) -> None:
        """*sampling*: the SamplingPanel (its document, weights, seed and Open button);
        *view_class*: its TokenView (passed in, so this module does not import it back)."""
        super().__init__(parent)
        self.sampling = sampling
        self.result: dict | None = None
        self.thread: DecodeThread | None = None
        box = QVBoxLayout(self)
        box.setContentsMargins(4, 4, 4, 4)
        top = QHBoxLayout()
        self.input = QLineEdit(EXAMPLE)
        self.input.setPlaceholderText("source text, e.g. " + EXAMPLE)
        self.input.returnPressed.connect(self.decode)
        self.decode_button = QPushButton("Decode")
        self.decode_button.clicked.connect(self.decode)
        self.beam = QSpinBox(minimum=1, maximum=16, value=1)
        self.beam.setPrefix("beam ")
        self.beam.setToolTip("beam width: 1 = greedy (the likeliest token at each step)")
        self.temperature = QDoubleSpinBox(decimals=2, minimum=0.0, maximum=5.0,
                                          singleStep=0.1, value=0.0)
        self.temperature.setSpecialValueText("T 0 (greedy)")
        self.temperature.setToolTip("0 = greedy or beam search; above 0 samples each token "
                                    "(beam must be 1)")
        for label, w in (("Input", self.input),):
            top.addWidget(QLabel(label))
            top.addWidget(w, 1)
        for w in (self.beam, self.temperature, self.decode_button):
            top.addWidget(w)
        box.addLayout(top)
        side = QHBoxLayout()
        self.source = QLabel(NO_WEIGHTS)
        self.open_button = QPushButton("Open weights…")
        self.open_button.clicked.connect(sampling.open_button.click)
        self.run_button = QPushButton("Use the current run's weights")
        self.run_button.clicked.connect(self.use_run_weights)
        side.addWidget(self.source, 1)
        side.addWidget(self.open_button)
        side.addWidget(self.run_button)
        box.addLayout(side)
        split = QSplitter(Qt.Orientation.Horizontal)
        left = QWidget()
        lbox = QVBoxLayout(left)
        lbox.setContentsMargins(0, 0, 0, 0)
        lbox.addWidget(QLabel("Output (background: the probability of each token)"))
        self.output = view_class()
        font = self.output.font()
        font.setPointSizeF(font.pointSizeF() * 1.5)
        self.output.setFont(font)
        lbox.addWidget(self.output, 1)
        split.addWidget(left)
        self.attention = CrossAttentionView()
        split.addWidget(self.attention)
        split.setSizes([300, 500])
        box.addWidget(split, 1)
        self.status = QLabel("")
        self.status.setStyleSheet("color: #a9afb9;")
        box.addWidget(self.status)

    def set_source(self, text: str, tip: str) -> None:
        self.source.setText(text)
        self.source.setToolTip(tip)

    @property
    def busy(self) -> bool:
        """True from Decode until its result (or error) is shown."""
        return self.thread is not None

    def decode(self) -> bool:
        """Start decoding the input with the dock's weights in a thread; False (and a status
        line) when it cannot start. The result or the error reaches the panel afterwards."""
        path = self.sampling.weights_path
        if self.busy:
            return False
        if path is None:
            self.status.setText(NO_WEIGHTS)
            return False
        beam, temperature = self.beam.value(), self.temperature.value()
        if beam > 1 and temperature > 0:
            self.status.setText("beam search finds the likeliest output: set the temperature "
                                "to 0, or the beam to 1 to sample")
            return False
        options = {"beam": beam, "temperature": temperature, "seed": self.sampling.seed.value()}
        self.thread = DecodeThread(self.sampling.doc_provider(), path, self.input.text(),
                                   options, self)
        self.thread.done.connect(self.show_result)
        self.thread.failed.connect(lambda m: self.status.setText(f"decoding failed: {m}"))
        self.thread.finished.connect(self._finished)
        self.decode_button.setEnabled(False)
        self.status.setText("decoding…")
        self.thread.start()
        return True

    def _finished(self) -> None:
        if self.thread is not None:
            self.thread.deleteLater()
        self.thread = None
        self.decode_button.setEnabled(True)

    def show_result(self, result: dict) -> None:
        self.result = result
        self.output.start("", greedy=False)
        for t in result["tokens"]:
            self.output.append_token(t["token"], t["p"], t["alternatives"])
        rows = [t["token"] for t in result["tokens"]]
        self.attention.show_maps(result["cross_attention"], rows, result["input_tokens"])
        how = ("greedy" if self.beam.value() == 1 and self.temperature.value() == 0 else
               f"beam {self.beam.value()}" if self.beam.value() > 1 else
               f"sampled at T {self.temperature.value():g}")
        least = min((t["p"] for t in result["tokens"]), default=1.0)
        self.status.setText(f"{len(result['tokens'])} tokens ({how}); least likely token "
                            f"p = {least:.1%}. Hover a token for the alternatives.")
        self.decoded.emit(result)

    def shutdown(self) -> None:
        """Wait for a decode in flight; its result is dropped (the document may change)."""
        if self.thread is not None:
            self.thread.done.disconnect(self.show_result)
            self.thread.wait(5000)

    def reset(self) -> None:
        self.shutdown()
        self.result = None
        self.output.start("")
        self.attention.clear()
        self.status.setText("")


def pairs_html(data: dict) -> str:
    """The Predictions tab's view of a seq2seq run: validation pairs and their decoded outputs,
    wrong ones marked ✗ in red with the expected target beside them."""
    import html

    pairs = data.get("pairs") or []
    if not pairs:
        return html.escape(data.get("note") or "no validation pairs to decode yet")
    rows = []
    for p in pairs:
        src, out, tgt = (html.escape(p[k]) for k in ("source", "output", "target"))
        if p["correct"]:
            rows.append(f"<tr><td>{src}</td><td>→</td><td style='color:#7fd18b'>{out}</td>"
                        f"<td style='color:#7fd18b'>✓</td><td></td></tr>")
        else:
            rows.append(f"<tr><td>{src}</td><td>→</td><td style='color:#ef6b6b'>{out or '∅'}"
                        f"</td><td style='color:#ef6b6b'>✗</td>"
                        f"<td style='color:#a9afb9'>expected {tgt}</td></tr>")
    share = data.get("exact_match")
    head = (f"Step {data.get('step', 0)}: {len(pairs)} validation pairs decoded greedily"
            + (f" · {share:.0%} exact" if share is not None else ""))
    return (f"{head}<table cellspacing='0' cellpadding='3' style='font-family:monospace'>"
            + "".join(rows) + "</table>")
