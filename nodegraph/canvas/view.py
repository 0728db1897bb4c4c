"""The canvas view: grid, zoom to the cursor, middle/space-drag pan, drops from the palette,
quick-add (Tab, double-click, wire dropped on empty canvas) and the refusal tooltip."""

from __future__ import annotations

import math

from PySide6.QtCore import QPoint, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QPainter, QPen
from PySide6.QtWidgets import QGraphicsView, QToolTip

from nodegraph import theme
from nodegraph.canvas.scene import GraphScene

NODE_MIME = "application/x-wiregrad-node-type"
MIN_ZOOM, MAX_ZOOM = 0.1, 3.0


class GraphView(QGraphicsView):
    quick_add = Signal(QPointF, object)  # scene position, wire info (dict) or None
    zoom_changed = Signal(float)

    def __init__(self, scene: GraphScene, parent=None) -> None:
        super().__init__(scene, parent)
        self.setRenderHints(QPainter.RenderHint.Antialiasing
                            | QPainter.RenderHint.TextAntialiasing
                            | QPainter.RenderHint.SmoothPixmapTransform)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.FullViewportUpdate)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setDragMode(QGraphicsView.DragMode.RubberBandDrag)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setAcceptDrops(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self._pan: QPoint | None = None
        self._space = False
        scene.refused.connect(self.show_refusal)
        scene.wire_dropped.connect(lambda info, pos: self.quick_add.emit(pos, info))
        scene.quick_add_requested.connect(lambda pos: self.quick_add.emit(pos, None))
        self.last_refusal = ""

    def zoom(self) -> float:
        return self.transform().m11()

    def set_zoom(self, factor: float) -> None:
        factor = min(max(factor, MIN_ZOOM), MAX_ZOOM)
        self.scale(factor / self.zoom(), factor / self.zoom())
        self.zoom_changed.emit(self.zoom())

    def zoom_by(self, steps: float) -> None:
        self.set_zoom(self.zoom() * math.pow(1.15, steps))

    def aspect(self) -> float:
        """The canvas's width / height (auto-layout wraps long chains to suit it)."""
        size = self.viewport().size()
        return size.width() / max(size.height(), 1)

    def graph_rect(self) -> QRectF:
        rect = QRectF()
        for item in self.scene().items():
            if item.parentItem() is None and item.isVisible():
                rect = rect.united(item.sceneBoundingRect())
        return rect if not rect.isNull() else QRectF(-200, -150, 400, 300)

    def fit(self) -> None:
        """Show the whole graph, no larger than 100 % (down to the smallest zoom)."""
        rect = self.graph_rect()
        self.resetTransform()
        self.fitInView(rect.adjusted(-40, -40, 40, 40), Qt.AspectRatioMode.KeepAspectRatio)
        if self.zoom() > 1.0 or self.zoom() < MIN_ZOOM:
            self.set_zoom(min(max(self.zoom(), MIN_ZOOM), 1.0))
        self.centerOn(rect.center())
        self.zoom_changed.emit(self.zoom())

    def drawBackground(self, painter: QPainter, rect: QRectF) -> None:  # noqa: N802
        painter.fillRect(rect, theme.BACKGROUND)
        step = 20.0 if self.zoom() >= 0.5 else 100.0
        for color, every in ((theme.GRID_MINOR, step), (theme.GRID_MAJOR, step * 5)):
            painter.setPen(QPen(color, 0))
            x = math.floor(rect.left() / every) * every
            while x < rect.right():
                painter.drawLine(QPointF(x, rect.top()), QPointF(x, rect.bottom()))
                x += every
            y = math.floor(rect.top() / every) * every
            while y < rect.bottom():
                painter.drawLine(QPointF(rect.left(), y), QPointF(rect.right(), y))
                y += every

    # ------------------------------------------------------------------ input

    def wheelEvent(self, event) -> None:  # noqa: N802
        self.zoom_by(event.angleDelta().y() / 120.0)

    def keyPressEvent(self, event) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = True
            self.viewport().setCursor(Qt.CursorShape.OpenHandCursor)
            return
        if event.key() == Qt.Key.Key_Tab:
            pos = self.mapToScene(self.mapFromGlobal(self.cursor().pos()))
            if not self.viewport().rect().contains(self.mapFromScene(pos)):
                pos = self.mapToScene(self.viewport().rect().center())
            self.quick_add.emit(pos, None)
            return
        super().keyPressEvent(event)

    def focusNextPrevChild(self, forward: bool) -> bool:  # noqa: N802 (keep Tab for quick-add)
        return False

    def keyReleaseEvent(self, event) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = False
            self.viewport().unsetCursor()
            return
        super().keyReleaseEvent(event)

    def mousePressEvent(self, event) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.MiddleButton or (
                self._space and event.button() == Qt.MouseButton.LeftButton):
            self._pan = event.position().toPoint()
            self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        if self._pan is not None:
            delta = event.position().toPoint() - self._pan
            self._pan = event.position().toPoint()
            self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - delta.x())
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() - delta.y())
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        if self._pan is not None:
            self._pan = None
            self.viewport().unsetCursor()
            return
        super().mouseReleaseEvent(event)

    # ------------------------------------------------------------------ drops

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if event.mimeData().hasFormat(NODE_MIME):
            event.acceptProposedAction()
        else:
            super().dragEnterEvent(event)

    def dragMoveEvent(self, event) -> None:  # noqa: N802
        if event.mimeData().hasFormat(NODE_MIME):
            event.acceptProposedAction()
        else:
            super().dragMoveEvent(event)

    def dropEvent(self, event) -> None:  # noqa: N802
        if not event.mimeData().hasFormat(NODE_MIME):
            return super().dropEvent(event)
        type_name = bytes(event.mimeData().data(NODE_MIME)).decode("utf-8")
        pos = self.mapToScene(event.position().toPoint())
        # The node's title bar lands under the cursor; dropped onto a wire, it goes into it.
        corner = (pos.x() - 100, pos.y() - 12)
        wire = self.scene().wire_at(pos)
        ctl = self.scene().controller
        node_id = ctl.insert_on_wire(wire, type_name, corner) if wire is not None \
            else ctl.add_node(type_name, corner)
        if node_id:
            self.scene().select_nodes([node_id])
        event.acceptProposedAction()

    def show_refusal(self, reason: str, scene_pos: QPointF) -> None:
        self.last_refusal = reason
        global_pos = self.viewport().mapToGlobal(self.mapFromScene(scene_pos))
        QToolTip.showText(global_pos, "✗ " + reason, self.viewport())
