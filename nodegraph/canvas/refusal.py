"""Why a wire is refused, shown next to the cursor on the canvas: while a dragged wire hovers
a port it may not plug into, and for a few seconds after a refused drop (docs: "the reason
shows by the cursor"). A scene item, so it is drawn with the canvas and does not depend on the
platform's tooltips."""

from __future__ import annotations

import contextlib

from PySide6.QtCore import QPointF, QRectF, Qt, QTimer
from PySide6.QtGui import QBrush, QColor, QFontMetricsF, QPainter, QPen
from PySide6.QtWidgets import QGraphicsItem

from nodegraph import theme

SHOW_MS = 4000
MAX_WIDTH = 300.0  # long reasons wrap (pixels: the badge ignores the zoom)
OFFSET = QPointF(14.0, 12.0)  # below right of the cursor, clear of the port it points at


class BadgeItem(QGraphicsItem):
    """"✗ reason" on a dark red plate; ignores the mouse and the view's zoom."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = "✗ " + text
        self.font = theme.ui_font(9.0)
        self.setZValue(20)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        text = QFontMetricsF(self.font).boundingRect(
            QRectF(0, 0, MAX_WIDTH, 1000), int(Qt.TextFlag.TextWordWrap), self.text)
        self.rect = QRectF(0, 0, text.width() + 14, text.height() + 8)

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt API)
        return self.rect

    def paint(self, painter: QPainter, option, widget=None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QPen(theme.ERROR, 1.0))
        painter.setBrush(QBrush(QColor(60, 22, 24, 235)))
        painter.drawRoundedRect(self.rect, 4, 4)
        painter.setFont(self.font)
        painter.setPen(theme.TEXT)
        painter.drawText(self.rect.adjusted(7, 4, -7, -4), int(Qt.TextFlag.TextWordWrap),
                         self.text)


class RefusalBadge:
    """The one refusal badge of a scene."""

    def __init__(self, scene) -> None:
        self.scene = scene
        self.item: BadgeItem | None = None
        self.timer = QTimer()
        self.timer.setSingleShot(True)
        self.timer.timeout.connect(self.hide)

    @property
    def text(self) -> str:
        """The reason shown ("" when hidden)."""
        return self.item.text[2:] if self.item is not None else ""

    def show(self, reason: str, pos: QPointF, for_ms: int | None = None) -> None:
        """Show *reason* by scene position *pos* (until :meth:`hide`, or for *for_ms*)."""
        if self.item is None or self.item.text != "✗ " + reason:
            self.hide()
            self.item = BadgeItem(reason)
            self.scene.addItem(self.item)
        self.item.setPos(pos + OFFSET)
        if for_ms:
            self.timer.start(for_ms)
        else:
            self.timer.stop()

    def show_for_a_while(self, reason: str, pos: QPointF) -> None:
        self.show(reason, pos, SHOW_MS)

    def hide(self) -> None:
        if self.item is not None:
            with contextlib.suppress(RuntimeError):  # the scene cleared it (rebuild)
                if self.item.scene() is self.scene:
                    self.scene.removeItem(self.item)
        self.item = None

    def forget(self) -> None:
        """The scene deleted every item (rebuild)."""
        self.item = None
