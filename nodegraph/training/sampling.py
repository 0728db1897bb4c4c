"""The sampling dock: prompt, temperature / top-k / top-p / length / seed, Generate / Stop.

Generation runs in a QThread (``engine.api.sample_tokens``), so text streams in character by
character while the editor stays responsive. Each character is tinted by the probability the
model gave it; hovering it shows that probability and the top alternatives. After a run the
attention of every head over the prompt goes to the Debugger dock.
"""

from __future__ import annotations

import html

from PySide6.QtCore import QThread, Signal
from PySide6.QtGui import QColor, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTextEdit,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from engine import api

NO_WEIGHTS = "no trained weights: train first or open weights…"


def prob_color(p: float) -> QColor:
    """Red (unlikely) → amber → green (likely), translucent, for the text background."""
    p = max(0.0, min(1.0, p))
    if p < 0.5:
        r, g = 220, int(60 + 300 * p)
    else:
        r, g = int(220 - 300 * (p - 0.5)), 210
    return QColor(r, g, 70, 90)


class SampleThread(QThread):
    token = Signal(str, float, list)
    failed = Signal(str)
    attention = Signal(dict, str)

    def __init__(self, doc: dict, weights: dict | None, prompt: str, options: dict,
                 parent=None) -> None:
        super().__init__(parent)
        self.doc, self.weights, self.prompt, self.options = doc, weights, prompt, options
        self.cancel = False

    def run(self) -> None:
        try:
            sampler = api.sampler_for(self.doc, self.weights)
            for info in api.sample_tokens(sampler, self.prompt, **self.options):
                if self.cancel:
                    break
                self.token.emit(info["char"], info["p"], info["alternatives"])
            if not self.cancel:
                self.attention.emit(api.attention_maps(sampler, self.prompt), self.prompt)
        except Exception as exc:  # noqa: BLE001 (shown in the panel; the editor stays up)
            self.failed.emit(str(exc))


class TokenView(QTextEdit):
    """Generated text; characters coloured by probability; hover shows the alternatives."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setReadOnly(True)
        self.setFont(self._mono())
        self.viewport().setMouseTracking(True)
        self.tokens: dict[int, tuple[str, float, list]] = {}  # document position → info
        self.greedy = False  # temperature 0: every character is the most likely one

    @staticmethod
    def _mono():
        from PySide6.QtGui import QFontDatabase

        return QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)

    def start(self, prompt: str, greedy: bool = False) -> None:
        self.clear()
        self.tokens = {}
        self.greedy = greedy
        cursor = self.textCursor()
        fmt = QTextCharFormat()
        fmt.setFontWeight(700)
        cursor.insertText(prompt, fmt)

    def append_token(self, char: str, p: float, alternatives: list) -> None:
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        self.tokens[cursor.position()] = (char, p, alternatives)
        fmt = QTextCharFormat()
        if not self.greedy:  # greedy picks have no sampling probability to show
            fmt.setBackground(prob_color(p))
        cursor.insertText(char, fmt)
        self.ensureCursorVisible()

    def generated_text(self) -> str:
        return "".join(self.tokens[k][0] for k in sorted(self.tokens))

    def describe(self, position: int) -> str | None:
        info = self.tokens.get(position)
        if info is None:
            return None
        char, p, alts = info
        if self.greedy:
            return (f"<b>{html.escape(repr(char))}</b> greedy (temperature 0): the model's "
                    f"most likely next character")
        shown = ", ".join(f"{html.escape(repr(c))} {q:.1%}" for c, q in alts)
        return f"<b>{html.escape(repr(char))}</b> p = {p:.1%}<br>alternatives: {shown}"

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        pos = event.position().toPoint()
        cursor = self.cursorForPosition(pos)
        text = None
        for candidate in (cursor.position(), cursor.position() - 1):
            c = QTextCursor(self.document())
            c.setPosition(max(candidate, 0))
            rect = self.cursorRect(c)
            if candidate in self.tokens and rect.left() <= pos.x() + 1:
                text = self.describe(candidate)
                break
        if text:
            QToolTip.showText(event.globalPosition().toPoint(), text, self.viewport())
        else:
            QToolTip.hideText()
        super().mouseMoveEvent(event)


class SamplingPanel(QWidget):
    attention_ready = Signal(dict, str)
    use_run_weights = Signal()
    generation_done = Signal()  # after the last character of a run has reached the view

    def __init__(self, doc_provider, parent=None) -> None:
        super().__init__(parent)
        self.doc_provider = doc_provider
        self.weights_path: str | None = None
        self.weights_label = ""
        self.thread: SampleThread | None = None
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        self.lm_part = QWidget()  # a language model's controls; a seq2seq graph's below
        outer.addWidget(self.lm_part, 1)
        box = QVBoxLayout(self.lm_part)
        box.setContentsMargins(4, 4, 4, 4)
        top = QHBoxLayout()
        self.prompt = QLineEdit("ROMEO:")
        self.prompt.setPlaceholderText("prompt")
        top.addWidget(QLabel("Prompt"))
        top.addWidget(self.prompt, 1)
        self.generate_button = QPushButton("Generate")
        self.stop_button = QPushButton("Stop")
        self.generate_button.clicked.connect(self.generate)
        self.stop_button.clicked.connect(self.stop)
        top.addWidget(self.generate_button)
        top.addWidget(self.stop_button)
        box.addLayout(top)
        row = QHBoxLayout()
        form = QFormLayout()
        self.temperature = QDoubleSpinBox(decimals=2, minimum=0.0, maximum=5.0, singleStep=0.1,
                                          value=0.8)
        self.temperature.setSpecialValueText("0 (greedy)")
        self.temperature.setToolTip("0 = greedy: always the most likely character")
        self.top_k = QSpinBox(minimum=0, maximum=10_000, value=0)
        self.top_k.setSpecialValueText("all")
        self.top_p = QDoubleSpinBox(decimals=2, minimum=0.01, maximum=1.0, singleStep=0.05,
                                    value=1.0)
        self.length = QSpinBox(minimum=1, maximum=100_000, value=300)
        self.seed = QSpinBox(minimum=0, maximum=2**31 - 1, value=0)
        for label, w in (("temperature", self.temperature), ("top-k", self.top_k),
                         ("top-p", self.top_p), ("length", self.length), ("seed", self.seed)):
            form.addRow(label, w)
        row.addLayout(form)
        side = QVBoxLayout()
        self.source = QLabel(NO_WEIGHTS)
        self.source.setWordWrap(True)
        side.addWidget(self.source)
        self.open_button = QPushButton("Open weights…")
        self.run_button = QPushButton("Use the current run's weights")
        self.run_button.clicked.connect(self.use_run_weights)
        side.addWidget(self.open_button)
        side.addWidget(self.run_button)
        side.addStretch(1)
        row.addLayout(side, 1)
        self.output = TokenView()
        row.addWidget(self.output, 3)
        box.addLayout(row, 1)
        self.status = QLabel("")
        self.status.setStyleSheet("color: #a9afb9;")
        box.addWidget(self.status)
        self._set_running(False)
        from nodegraph.training.seq2seq_panel import Seq2SeqPanel

        self.seq2seq = Seq2SeqPanel(self, TokenView)
        self.seq2seq.use_run_weights.connect(self.use_run_weights)
        outer.addWidget(self.seq2seq, 1)
        self.seq2seq.hide()

    def refresh_mode(self) -> bool:
        """Show the input → output panel on a seq2seq graph, else the prompt panel."""
        seq = api.is_seq2seq(self.doc_provider())
        self.lm_part.setVisible(not seq)
        self.seq2seq.setVisible(seq)
        return seq

    # ------------------------------------------------------------------ weights

    def set_weights(self, path: str | None, label: str = "") -> None:
        self.weights_path = path
        self.weights_label = label or (path or "")
        self.source.setText(f"weights: {self.weights_label}" if path else NO_WEIGHTS)
        self.source.setToolTip(path or "")
        self.seq2seq.set_source(self.source.text(), path or "")
        self.refresh_mode()

    def options(self) -> dict:
        return {"n": self.length.value(), "temperature": self.temperature.value(),
                "top_k": self.top_k.value(), "top_p": self.top_p.value(),
                "seed": self.seed.value()}

    # ------------------------------------------------------------------ generation

    def generate(self) -> bool:
        if self.busy:
            return False
        doc = self.doc_provider()
        if self.refresh_mode():
            return self.seq2seq.decode()
        if not api.is_language_model(doc):
            self.status.setText("this graph has no text_corpus data node: sampling needs a "
                                "character-level language model")
            return False
        if self.weights_path is None:
            self.status.setText(NO_WEIGHTS)
            return False
        try:
            weights = api.load_weights_file(self.weights_path)
        except Exception as exc:  # noqa: BLE001
            self.status.setText(f"cannot read the weights: {exc}")
            return False
        prompt = self.prompt.text()
        self.output.start(prompt, greedy=self.temperature.value() == 0)
        self.status.setText("generating…")
        self.thread = SampleThread(doc, weights, prompt, self.options(), self)
        self.thread.token.connect(self.output.append_token)
        self.thread.failed.connect(lambda m: self.status.setText(f"sampling failed: {m}"))
        self.thread.attention.connect(self.attention_ready)
        self.thread.finished.connect(self._finished)
        self._set_running(True)
        self.thread.start()
        return True

    def stop(self) -> None:
        if self.thread is not None:
            self.thread.cancel = True

    def _finished(self) -> None:
        if not self.status.text().startswith("sampling failed"):
            n = len(self.output.tokens)
            if self.output.greedy:
                self.status.setText(f"{n} characters generated greedily (temperature 0): each "
                                    f"is the model's most likely next character.")
            else:
                self.status.setText(f"{n} characters generated. Background: the probability "
                                    f"the model gave each character (red unlikely → green "
                                    f"likely); hover one for the alternatives.")
        self._set_running(False)
        self.generation_done.emit()

    @property
    def busy(self) -> bool:
        """True from Generate until every streamed character has been shown.

        The worker thread can stop running while its last queued characters still wait in the
        event loop; ``_finished`` is delivered after them, so this flag is the reliable one.
        """
        return self._running

    def _set_running(self, running: bool) -> None:
        self._running = running
        self.generate_button.setEnabled(not running)
        self.stop_button.setEnabled(running)

    def reset(self) -> None:
        """Forget the previous document's text (File ▸ New / Open): stop and clear."""
        self.stop()
        if self.thread is not None:
            self.thread.wait(5000)
        self.output.start("")
        self.status.setText("")
        self.seq2seq.reset()
        self.refresh_mode()

    def shutdown(self) -> None:
        self.seq2seq.shutdown()
        if self.thread is not None:
            self.thread.cancel = True
            self.thread.wait(5000)
