"""Graphics items: nodes with typed ports, labelled bezier wires, frames. They paint what the
scene tells them and hold no saved state (positions come from the model)."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFontMetricsF, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsItem

from nodegraph import theme
from nodegraph.editing.specs import FOOTER_H, HEADER_H, NODE_WIDTH, ROW_H

PORT_R = 5.0


def _elide(fm: QFontMetricsF, text: str, width: float) -> str:
    return fm.elidedText(text, Qt.TextElideMode.ElideRight, width)


class PortItem(QGraphicsItem):
    """A port circle; the scene starts wires from it and highlights compatible ones."""

    def __init__(self, parent: NodeItem, name: str, dtype: str, output: bool) -> None:
        super().__init__(parent)
        self.node_id, self.name, self.dtype, self.output = parent.node_id, name, dtype, output
        self.highlight = False
        self.setAcceptHoverEvents(True)
        self.hovered = False
        self.setZValue(2)
        self.setToolTip(f"{name} ({dtype})")

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt API)
        r = PORT_R + 4
        return QRectF(-r, -r, 2 * r, 2 * r)

    def hoverEnterEvent(self, event) -> None:  # noqa: N802
        self.hovered = True
        self.update()

    def hoverLeaveEvent(self, event) -> None:  # noqa: N802
        self.hovered = False
        self.update()

    def paint(self, painter: QPainter, option, widget=None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        r = PORT_R + (2 if self.hovered or self.highlight else 0)
        if self.highlight:
            painter.setPen(QPen(theme.HIGHLIGHT, 2.5))
        else:
            painter.setPen(QPen(theme.NODE_BORDER, 1.2))
        painter.setBrush(theme.dtype_color(self.dtype))
        painter.drawEllipse(QPointF(0, 0), r, r)


class NodeItem(QGraphicsItem):
    """A node: coloured header (title, type), port rows, key params, parameter count."""

    def __init__(self, node_id: str) -> None:
        super().__init__()
        self.node_id = node_id
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable)
        self.setAcceptHoverEvents(True)
        self.setZValue(1)
        self.title = node_id
        self.type_name = ""
        self.category = None
        self.inputs: list[dict] = []
        self.outputs: list[dict] = []
        self.lines: list[str] = []
        self.size = (NODE_WIDTH, 80.0)
        self.footer = ""
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.shapes: dict[str, str] = {}
        self.ports: dict[tuple[str, bool], PortItem] = {}
        self.pseudo = False
        self.doc_line = ""

    def set_data(self, title, type_name, category, inputs, outputs, lines, size, doc_line=""):
        self.prepareGeometryChange()
        self.title, self.type_name, self.category = title, type_name, category
        self.inputs, self.outputs, self.lines, self.size = inputs, outputs, lines, size
        self.doc_line = doc_line
        for port in self.ports.values():
            port.setParentItem(None)
            if port.scene():
                port.scene().removeItem(port)
        self.ports = {}
        for i, p in enumerate(inputs):
            item = PortItem(self, p["name"], p["dtype"], False)
            item.setPos(self.port_offset(i, False))
            self.ports[(p["name"], False)] = item
        for i, p in enumerate(outputs):
            item = PortItem(self, p["name"], p["dtype"], True)
            item.setPos(self.port_offset(i, True))
            self.ports[(p["name"], True)] = item
        self._update_tooltip()
        self.update()

    def set_status(self, footer: str, errors: list[str], warnings: list[str]) -> None:
        self.footer, self.errors, self.warnings = footer, errors, warnings
        self._update_tooltip()
        self.update()

    def _update_tooltip(self) -> None:
        parts = [f"<b>{self.title}</b> — {self.type_name}"]
        if self.doc_line:
            parts.append(self.doc_line)
        parts += [f"<span style='color:#e44848'>error: {m}</span>" for m in self.errors]
        parts += [f"<span style='color:#e8aa3c'>warning: {m}</span>" for m in self.warnings]
        self.setToolTip("<br>".join(parts))

    def port_offset(self, index: int, output: bool) -> QPointF:
        return QPointF(self.size[0] if output else 0.0, HEADER_H + index * ROW_H + ROW_H / 2 + 3)

    def port_scene_pos(self, name: str, output: bool) -> QPointF:
        item = self.ports.get((name, output))
        if item is None:
            return self.mapToScene(QPointF(self.size[0] if output else 0.0, HEADER_H / 2))
        return item.scenePos()

    def boundingRect(self) -> QRectF:  # noqa: N802
        return QRectF(-2, -10, self.size[0] + 12, self.size[1] + 12)

    def body_rect(self) -> QRectF:
        return QRectF(0, 0, self.size[0], self.size[1])

    def paint(self, painter: QPainter, option, widget=None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.TextAntialiasing)
        w, h = self.size
        body = QRectF(0, 0, w, h)
        selected = self.isSelected()
        border = QPen(theme.SELECTED if selected else theme.NODE_BORDER, 2.0 if selected else 1.0)
        if self.errors and not selected:
            border = QPen(theme.ERROR, 1.6)
        painter.setPen(border)
        painter.setBrush(theme.NODE_BODY)
        painter.drawRoundedRect(body, 6, 6)
        header = QPainterPath()
        header.addRoundedRect(QRectF(0.5, 0.5, w - 1, HEADER_H), 6, 6)
        header.addRect(QRectF(0.5, HEADER_H - 6, w - 1, 6))
        color = theme.category_color(self.category)
        if self.pseudo:
            color = QColor(80, 84, 94)
        painter.fillPath(header.simplified(), color)
        painter.setPen(theme.TEXT)
        bold = theme.ui_font(9.5, True)
        painter.setFont(bold)
        fm = QFontMetricsF(bold)
        title = _elide(fm, self.title, w * 0.55)
        painter.drawText(QRectF(8, 0, w - 16, HEADER_H), Qt.AlignmentFlag.AlignVCenter, title)
        small = theme.ui_font(8.0)
        painter.setFont(small)
        sfm = QFontMetricsF(small)
        painter.setPen(QColor(235, 238, 245, 200))
        type_w = w - 24 - fm.horizontalAdvance(title)
        painter.drawText(QRectF(8, 0, w - 16, HEADER_H),
                         Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight,
                         _elide(sfm, self.type_name, type_w))
        self._paint_ports(painter, small, sfm)
        self._paint_summary(painter, small, sfm)
        if self.errors or self.warnings:
            self._paint_badge(painter)

    def _paint_ports(self, painter, font, fm) -> None:
        w = self.size[0]
        painter.setPen(theme.TEXT)
        for i, p in enumerate(self.inputs):
            y = HEADER_H + i * ROW_H + 3
            painter.drawText(QRectF(10, y, w / 2 - 10, ROW_H), Qt.AlignmentFlag.AlignVCenter,
                             _elide(fm, p["name"], w / 2 - 12))
        for i, p in enumerate(self.outputs):
            y = HEADER_H + i * ROW_H + 3
            painter.drawText(QRectF(w / 2, y, w / 2 - 10, ROW_H),
                             Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight,
                             _elide(fm, p["name"], w / 2 - 12))

    def _paint_summary(self, painter, font, fm) -> None:
        w, h = self.size
        rows = max(len(self.inputs), len(self.outputs), 1)
        y = HEADER_H + rows * ROW_H + 5
        if self.lines:
            painter.setPen(QPen(QColor(255, 255, 255, 22), 1))
            painter.drawLine(QPointF(6, y - 1), QPointF(w - 6, y - 1))
        painter.setPen(theme.TEXT_DIM)
        for line in self.lines:
            painter.drawText(QRectF(10, y, w - 20, ROW_H), Qt.AlignmentFlag.AlignVCenter,
                             _elide(fm, line, w - 20))
            y += ROW_H
        if self.footer:
            painter.setPen(QColor(190, 196, 206))
            painter.drawText(QRectF(10, h - FOOTER_H - 2, w - 20, FOOTER_H),
                             Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight,
                             self.footer)

    def _paint_badge(self, painter) -> None:
        color = theme.ERROR if self.errors else theme.WARNING
        center = QPointF(self.size[0] - 2, -2)
        painter.setPen(QPen(theme.NODE_BORDER, 1.5))
        painter.setBrush(color)
        painter.drawEllipse(center, 9, 9)
        painter.setPen(QColor(255, 255, 255))
        painter.setFont(theme.ui_font(9, True))
        painter.drawText(QRectF(center.x() - 9, center.y() - 9, 18, 18),
                         Qt.AlignmentFlag.AlignCenter, "!")


class EdgeItem(QGraphicsItem):
    """An antialiased bezier wire from an output to an input, labelled with its shape."""

    def __init__(self, edge: dict) -> None:
        super().__init__()
        self.edge = edge
        self.key = (edge["src"]["node"], edge["src"]["port"], edge["dst"]["node"],
                    edge["dst"]["port"])
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable)
        self.setZValue(0)
        self.path = QPainterPath()
        self.label = ""
        self.dtype = "any"
        self.label_box = QRectF()
        self.crowded = False

    def set_ends(self, a: QPointF, b: QPointF) -> None:
        self.prepareGeometryChange()
        self.path = wire_path(a, b)
        self._place_label()

    def set_label(self, label: str, dtype: str) -> None:
        self.prepareGeometryChange()
        self.label, self.dtype = label, dtype
        self.setToolTip(f"{self.key[0]}.{self.key[1]} → {self.key[2]}.{self.key[3]}"
                        + (f"<br>{label} ({dtype})" if label else ""))
        self._place_label()

    def _place_label(self, avoid: list[QRectF] | None = None) -> None:
        """Put the label on the wire where it hides no node and no other label: the middle,
        then points nearer the input (long wires pass other nodes), then elsewhere."""
        if not self.label:
            self.label_box = QRectF()
            return
        fm = QFontMetricsF(theme.ui_font(8.0))
        w, h = fm.horizontalAdvance(self.label) + 10, fm.height() + 4
        start, end = self.path.pointAtPercent(0.0), self.path.pointAtPercent(1.0)
        targets = [None]
        if end.x() - start.x() > 2 * w + 40:
            targets += [end.x() - w / 2 - 16, end.x() - w * 1.5 - 24, start.x() + w / 2 + 16]
        targets += [0.3, 0.7, 0.2, 0.8, 0.4, 0.6]
        first = None
        for target in targets:
            point = self._point_for(target)
            box = QRectF(point.x() - w / 2, point.y() - h / 2, w, h)
            first = first or box
            if not avoid or not any(box.intersects(r) for r in avoid):
                self.label_box = box
                self.crowded = False
                return
        self.label_box = first
        self.crowded = bool(avoid)  # no free spot: drawn as a dot, the shape is in the tooltip

    def _point_for(self, target) -> QPointF:
        if target is None:
            return self.path.pointAtPercent(0.5)
        if isinstance(target, float) and target < 1.0:
            return self.path.pointAtPercent(target)
        lo, hi = 0.0, 1.0  # x grows along the wire: bisect for the target x
        for _ in range(24):
            t = (lo + hi) / 2
            lo, hi = (t, hi) if self.path.pointAtPercent(t).x() < target else (lo, t)
        return self.path.pointAtPercent(lo)

    def relabel(self, avoid: list[QRectF]) -> None:
        self.prepareGeometryChange()
        self._place_label(avoid)
        self.update()

    def label_rect(self) -> QRectF:
        return self.label_box

    def boundingRect(self) -> QRectF:  # noqa: N802
        return self.path.boundingRect().adjusted(-4, -4, 4, 4).united(self.label_box)

    def shape(self) -> QPainterPath:
        from PySide6.QtGui import QPainterPathStroker

        stroker = QPainterPathStroker()
        stroker.setWidth(10)
        out = stroker.createStroke(self.path)
        out.addRect(self.label_box)
        return out

    def paint(self, painter: QPainter, option, widget=None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        color = theme.SELECTED if self.isSelected() else theme.dtype_color(self.dtype)
        painter.setPen(QPen(color, 2.2, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(self.path)
        if self.label and self.crowded:
            painter.setPen(QPen(color, 1))
            painter.setBrush(color)
            painter.drawEllipse(self.path.pointAtPercent(0.5), 3, 3)
        elif self.label:
            painter.setPen(QPen(color.darker(130), 1))
            painter.setBrush(QBrush(theme.LABEL_BG))
            painter.drawRoundedRect(self.label_box, 4, 4)
            painter.setPen(theme.TEXT)
            painter.setFont(theme.ui_font(8.0))
            painter.drawText(self.label_box, Qt.AlignmentFlag.AlignCenter, self.label)


def wire_path(a: QPointF, b: QPointF) -> QPainterPath:
    dx = max(abs(b.x() - a.x()) * 0.5, 40.0)
    path = QPainterPath(a)
    path.cubicTo(QPointF(a.x() + dx, a.y()), QPointF(b.x() - dx, b.y()), b)
    return path


class FrameItem(QGraphicsItem):
    """A titled rectangle (comment / frame); dragging its title moves the nodes inside."""

    def __init__(self, frame_id: str) -> None:
        super().__init__()
        self.frame_id = frame_id
        self.rect = QRectF(0, 0, 300, 200)
        self.title = ""
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable)
        self.setZValue(-1)

    def set_frame(self, rect: list[float], title: str) -> None:
        self.prepareGeometryChange()
        self.rect = QRectF(0, 0, max(rect[2], 40), max(rect[3], 30))
        self.setPos(rect[0], rect[1])
        self.title = title
        self.update()

    def boundingRect(self) -> QRectF:  # noqa: N802
        return self.rect.adjusted(-2, -2, 2, 2)

    def paint(self, painter: QPainter, option, widget=None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        pen = QPen(theme.SELECTED if self.isSelected() else theme.FRAME_BORDER, 1.5)
        painter.setPen(pen)
        painter.setBrush(theme.FRAME_FILL)
        painter.drawRoundedRect(self.rect, 8, 8)
        painter.setPen(theme.TEXT)
        painter.setFont(theme.ui_font(11, True))
        painter.drawText(self.rect.adjusted(10, 6, -10, 0),
                         Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft, self.title)
