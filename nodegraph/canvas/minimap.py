"""The minimap: the whole scene in a corner of the canvas; click or drag to move the view."""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QGraphicsView

from nodegraph import theme


class Minimap(QGraphicsView):
    def __init__(self, view: QGraphicsView) -> None:
        super().__init__(view.scene(), view)
        self.main = view
        self.setInteractive(False)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.setStyleSheet("border: 1px solid #555a63; background: #1b1d21;")
        self.setFixedSize(220, 150)
        self.setBackgroundBrush(QColor(27, 29, 33))

    def refit(self) -> None:
        rect = QRectF()
        for item in self.scene().items():
            if item.parentItem() is None and item.isVisible():
                rect = rect.united(item.sceneBoundingRect())
        if not rect.isNull():
            self.fitInView(rect.adjusted(-80, -80, 80, 80), Qt.AspectRatioMode.KeepAspectRatio)

    def place(self) -> None:
        parent = self.main.viewport()
        self.move(parent.width() - self.width() - 12, parent.height() - self.height() - 12)

    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:  # noqa: N802
        seen = self.main.mapToScene(self.main.viewport().rect()).boundingRect()
        painter.setPen(QPen(theme.SELECTED, 0))
        painter.setBrush(QColor(255, 196, 64, 30))
        painter.drawRect(seen)

    def mousePressEvent(self, event) -> None:  # noqa: N802
        self.main.centerOn(self.mapToScene(event.position().toPoint()))
        self.viewport().update()

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        if event.buttons() & Qt.MouseButton.LeftButton:
            self.mousePressEvent(event)
