"""The README shot of the word GPT's sampling panel: a continuation streamed as word pieces in
alternating shades, with the hover tooltip of one piece (its text, id, probability and the
alternatives) painted below right of the pointer, where a desktop shows it.
``python tools/screenshots.py sampling-word_gpt`` writes it into the README's screenshots
folder; a plain test run only into its tmp folder."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QImage, QMouseEvent, QPainter, QTextCursor
from PySide6.QtWidgets import QApplication, QWidget

from tests.gui.guihelp import save_screenshot

pytestmark = pytest.mark.gui

PROMPT, N, SEED = "ROMEO:\nBut soft, what light", 60, 5


def _tooltip() -> QWidget | None:
    """The tooltip window Qt is showing (a top-level ``QTipLabel``), if any."""
    return next((w for w in QApplication.topLevelWidgets()
                 if w.metaObject().className() == "QTipLabel" and w.isVisible()), None)


def _hover(view, position: int) -> QPoint:
    """A mouse move onto the character at *position* of the output view; the point (global)."""
    cursor = QTextCursor(view.document())
    cursor.setPosition(position)
    rect = view.cursorRect(cursor)
    point = QPointF(rect.left() + 3, rect.center().y())
    view.mouseMoveEvent(QMouseEvent(QMouseEvent.Type.MouseMove, point,
                                    view.viewport().mapToGlobal(point), Qt.MouseButton.NoButton,
                                    Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier))
    return view.viewport().mapToGlobal(point.toPoint())


class _Composite:
    """*widget*'s picture with the *overlay* window's painted at *at* (widget coordinates):
    ``widget.grab()`` leaves out other top-level windows such as a tooltip."""

    def __init__(self, widget: QWidget, overlay: QWidget, at: QPoint) -> None:
        self.widget, self.overlay, self.at = widget, overlay, at

    def grab(self):
        picture = self.widget.grab()
        painter = QPainter(picture)
        painter.drawPixmap(self.at, self.overlay.grab())
        painter.end()
        return picture


def test_screenshot_word_pieces_with_a_hover_tooltip(make_window, qtbot, tmp_path):
    win = make_window("word_gpt", size=(1100, 900))
    panel = win.training.sampling
    assert panel.weights_path and panel.weights_path.endswith("word_gpt.safetensors")
    dock = win.training.docks[1]
    dock.raise_()
    panel.prompt.setText(PROMPT)
    panel.length.setValue(N)
    panel.seed.setValue(SEED)
    panel.temperature.setValue(0.8)
    panel.top_p.setValue(0.9)
    assert panel.generate()
    qtbot.waitUntil(lambda: not panel.busy, timeout=120_000)
    view = panel.output
    assert view.word_pieces and len(view.spans) == N
    status = panel.status  # its explanation of the shades shows whole
    assert status.fontMetrics().horizontalAdvance(status.text()) > status.width()  # > a line
    lines = 2 * status.fontMetrics().height()  # so it wraps, and the panel gives it room
    qtbot.waitUntil(lambda: lines <= status.heightForWidth(status.width()) <= status.height(),
                    timeout=5_000)
    middle = [s for s in view.spans[len(view.spans) // 4:] if len(s.text.strip()) > 3]
    piece = max(middle, key=lambda s: s.tokens[0][2])  # a likely piece: a telling tooltip
    pointer = _hover(view, piece.start + 2)
    qtbot.waitUntil(lambda: _tooltip() is not None, timeout=5_000)
    tip = _tooltip()
    assert tip is not None and f"token id {piece.tokens[0][1]}" in tip.text()
    assert tip.height() < 3 * tip.fontMetrics().height() + 16  # two lines, none wrapped
    # the dock (the panel is the subject) with the tooltip where a desktop shows it, below
    # right of the pointer (Qt moves it to fit the offscreen platform's smaller screen)
    at = pointer - dock.mapToGlobal(QPoint(0, 0)) + QPoint(2, 16)
    at.setX(min(at.x(), dock.width() - tip.width()))
    path = save_screenshot(_Composite(dock, tip, at), "sampling-word_gpt", tmp_path)
    shot, alone = QImage(str(path)), dock.grab().toImage()
    inside = at + QPoint(tip.width() // 2, tip.height() // 2)
    assert shot.size() == alone.size() and shot.rect().contains(inside)
    assert shot.pixel(inside) != alone.pixel(inside)  # the tooltip is in the picture
