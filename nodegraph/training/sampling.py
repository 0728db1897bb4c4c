"""The sampling dock: prompt, temperature / top-k / top-p / length / seed, Generate / Stop.

Generation runs in a QThread (``engine.api.sample_tokens``), so text streams in token by token
(characters, or word pieces for a BPE model) while the editor stays responsive. Each token's
text is one span, tinted by the probability the model gave it; a word-piece model's spans
alternate between two shades so token boundaries show. Hovering a span shows its token's text,
id, probability and the top alternatives. After a run the attention of every head over the
prompt goes to the Debugger dock.
"""

from __future__ import annotations

import bisect
import html
from dataclasses import dataclass

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
    token = Signal(dict)  # engine.api.sample_tokens's record of one token
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
                self.token.emit(info)
            if not self.cancel:
                self.attention.emit(api.attention_maps(sampler, self.prompt), self.prompt)
        except Exception as exc:  # noqa: BLE001 (shown in the panel; the editor stays up)
            self.failed.emit(str(exc))


@dataclass
class Span:
    """The text one or more tokens added (several when a character was split over byte-level
    tokens: the first ones add nothing until the last completes it)."""

    start: int  # document positions [start, end)
    end: int
    text: str
    tokens: list[tuple[str, int, float, list]]  # (label, id, p, alternatives) per token


def _shown(label: str) -> str:
    """A token's text as a tooltip shows it: quoted, newlines and tabs escaped."""
    return html.escape(repr(label), quote=False)


class TokenView(QTextEdit):
    """Generated text, one span per token; tinted by probability, and for word pieces
    (``word_pieces``) in alternating shades so token boundaries show; hovering a span shows
    its token's text, id, probability and the alternatives."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setReadOnly(True)
        self.setFont(self._mono())
        self.viewport().setMouseTracking(True)
        self.tokens: dict[int, tuple[str, float, list]] = {}  # span start → text, p, alts
        self.spans: list[Span] = []
        self.greedy = False  # temperature 0: every token is the most likely one
        self.word_pieces = False  # a subword model: alternate tints at token boundaries
        self._pending: list[tuple[str, int, float, list]] = []

    @staticmethod
    def _mono():
        from PySide6.QtGui import QFontDatabase

        return QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)

    def start(self, prompt: str, greedy: bool = False, word_pieces: bool = False) -> None:
        self.clear()
        self.tokens, self.spans, self._pending = {}, [], []
        self.greedy, self.word_pieces = greedy, word_pieces
        cursor = self.textCursor()
        fmt = QTextCharFormat()
        fmt.setFontWeight(700)
        cursor.insertText(prompt, fmt)

    def append_token(self, char: str, p: float, alternatives: list, token: str | None = None,
                     token_id: int = -1) -> None:
        """Add the text *char* of one token (its label *token*, id *token_id*)."""
        self._pending.append((char if token is None else token, token_id, p, alternatives))
        if char == "":  # part of a character: it shows with the token that completes it
            return
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        start = cursor.position()
        fmt = QTextCharFormat()
        tint = self._tint(p, len(self.spans) % 2 == 1)
        if tint is not None:
            fmt.setBackground(tint)
        cursor.insertText(char, fmt)
        self.spans.append(Span(start, cursor.position(), char, self._pending))
        self.tokens[start] = (char, p, alternatives)
        self._pending = []
        self.ensureCursorVisible()

    def _tint(self, p: float, odd: bool) -> QColor | None:
        """The span's background: the probability's colour (not when greedy); for word
        pieces every other span a shade stronger (or, greedy, a faint blue)."""
        if self.greedy:
            return QColor(120, 150, 210, 60) if self.word_pieces and odd else None
        color = prob_color(p)
        if self.word_pieces:
            color.setAlpha(140 if odd else 70)
        return color

    def generated_text(self) -> str:
        return "".join(span.text for span in self.spans)

    @property
    def token_count(self) -> int:
        """Tokens generated: a span holds several when a character was split over byte-level
        tokens, and a character left unfinished at the end has tokens but no span."""
        return sum(len(span.tokens) for span in self.spans) + len(self._pending)

    def span_at(self, position: int) -> Span | None:
        """The span holding the character at document *position*."""
        i = bisect.bisect_right([s.start for s in self.spans], position) - 1
        if i >= 0 and self.spans[i].start <= position < self.spans[i].end:
            return self.spans[i]
        return None

    def describe(self, position: int) -> str | None:
        span = self.span_at(position)
        if span is None:
            return None
        lines = [self._describe_token(*t) for t in span.tokens]
        return f"<nobr>{'<br>'.join(lines)}</nobr>"  # a tooltip wraps rich text narrowly

    def _describe_token(self, label: str, token_id: int, p: float, alts: list) -> str:
        name = "token" if self.word_pieces else "character"
        head = f"<b>{_shown(label)}</b>"
        if token_id >= 0:
            head += f" · {name} id {token_id}"
        shown = ", ".join(f"{_shown(c)} {q:.1%}" for c, q in alts)
        if self.greedy:
            return (f"{head} · greedy (temperature 0): the model's most likely next {name}, "
                    f"p = {p:.1%}<br>next likeliest: {shown}")
        return f"{head} · p = {p:.1%}<br>alternatives: {shown}"

    def position_under(self, point) -> int:
        """The document position of the character under viewport *point*."""
        cursor = self.cursorForPosition(point)
        position = cursor.position()
        if position > 0 and self.cursorRect(cursor).left() > point.x() + 1:
            return position - 1  # the cursor sits after the character the point is on
        return position

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        point = event.position().toPoint()
        text = self.describe(self.position_under(point))
        if text:
            QToolTip.showText(event.globalPosition().toPoint(), text, self.viewport())
        else:
            QToolTip.hideText()
        super().mouseMoveEvent(event)


def _word_pieces(doc: dict) -> bool:
    """True when the document's language model reads subword tokens (not characters)."""
    text = next((n for n in doc.get("nodes", []) if n.get("type") == "text_corpus"), None)
    return text is not None and text.get("params", {}).get("tokenizer", "char") != "char"


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
        self.status.setWordWrap(True)  # the whole explanation, not cut at the dock's edge
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
        self.output.start(prompt, greedy=self.temperature.value() == 0,
                          word_pieces=_word_pieces(doc))
        self.status.setText("generating…")
        self.thread = SampleThread(doc, weights, prompt, self.options(), self)
        self.thread.token.connect(self._token)
        self.thread.failed.connect(lambda m: self.status.setText(f"sampling failed: {m}"))
        self.thread.attention.connect(self.attention_ready)
        self.thread.finished.connect(self._finished)
        self._set_running(True)
        self.thread.start()
        return True

    def _token(self, info: dict) -> None:
        self.output.append_token(info["char"], info["p"], info["alternatives"], info["token"],
                                 info["id"])

    def stop(self) -> None:
        if self.thread is not None:
            self.thread.cancel = True

    def _finished(self) -> None:
        if not self.status.text().startswith("sampling failed"):
            n = self.output.token_count
            what = "word pieces" if self.output.word_pieces else "characters"
            one = "token" if self.output.word_pieces else "character"
            shades = (" Alternating shades mark where one token ends and the next begins."
                      if self.output.word_pieces else "")
            if self.output.greedy:
                self.status.setText(f"{n} {what} generated greedily (temperature 0): each "
                                    f"is the model's most likely next {one}; hover one for "
                                    f"its id and probability.{shades}")
            else:
                self.status.setText(f"{n} {what} generated. Background: the probability "
                                    f"the model gave each {one} (red unlikely → green "
                                    f"likely); hover one for its id and the alternatives."
                                    f"{shades}")
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
