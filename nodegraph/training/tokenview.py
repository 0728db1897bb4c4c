"""The tokenizer view: type text, see the tokens and ids the graph's tokenizer makes of it
(``engine.api.tokenize``), the pieces tinted in turn; text the tokenizer cannot encode (a
character outside a char model's vocabulary) gets the engine's message instead."""

from __future__ import annotations

import html
from collections.abc import Callable

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine import api

TINTS = ("#c9dcff", "#f5cfe4", "#cdeed4", "#f6e1b8")  # light, with dark text
EXPLAIN = ("Type text to see how this graph's tokenizer splits it. A BPE tokenizer is "
           "byte-level: any text encodes, a character it never saw becomes several byte "
           "tokens (shown as \\x..); a char tokenizer knows only its vocabulary.")


class TokenizerView(QWidget):
    """Text in; tokens (tinted in turn), their ids and a table out."""

    def __init__(self, doc: Callable[[], dict], base_dir: Callable[[], str | None] = lambda: None,
                 parent=None) -> None:
        super().__init__(parent)
        self.doc, self.base_dir = doc, base_dir
        self.tokens: list[dict] = []
        self.error = ""
        box = QVBoxLayout(self)
        box.setContentsMargins(4, 4, 4, 4)
        hint = QLabel(EXPLAIN)
        hint.setWordWrap(True)
        box.addWidget(hint)
        self.text = QPlainTextEdit()
        self.text.setPlaceholderText("Now is the winter of our discontent")
        self.text.setMaximumHeight(80)
        box.addWidget(self.text)
        self.pieces = QLabel("")
        self.pieces.setWordWrap(True)
        self.pieces.setTextFormat(Qt.TextFormat.RichText)
        box.addWidget(self.pieces)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["#", "token", "id"])
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setVisible(False)
        box.addWidget(self.table, 1)
        self.timer = QTimer(self)  # re-tokenise a moment after typing stops
        self.timer.setSingleShot(True)
        self.timer.setInterval(150)
        self.timer.timeout.connect(self.update_tokens)
        self.text.textChanged.connect(self.timer.start)

    def set_text(self, text: str) -> None:
        """Show *text* and its tokens now (no wait)."""
        self.text.setPlainText(text)
        self.timer.stop()
        self.update_tokens()

    def update_tokens(self) -> None:
        text = self.text.toPlainText()
        self.tokens, self.error = [], ""
        if text:
            try:
                self.tokens = api.tokenize(self.doc(), text, self.base_dir())
            except api.errors.WiregradError as exc:
                self.error = f"Cannot encode this text: {exc}"
        self._show()

    def _show(self) -> None:
        self.table.setRowCount(len(self.tokens))
        for row, t in enumerate(self.tokens):
            for col, value in enumerate((str(row), repr(t["token"]), str(t["id"]))):
                self.table.setItem(row, col, QTableWidgetItem(value))
        if self.error:
            self.pieces.setText(f"<span style='color:#e8a060'>{html.escape(self.error)}</span>")
            return
        spans = [f"<span style='background:{TINTS[i % len(TINTS)]}; color:#111'>"
                 f"{html.escape(t['token']).replace(' ', '&nbsp;').replace(chr(10), '⏎')}"
                 f"</span>" for i, t in enumerate(self.tokens)]
        count = f"{len(self.tokens)} token(s): " if self.tokens else ""
        self.pieces.setText(count + "".join(spans))
