"""Dragging a wire from a port: a rubber wire, compatible ports lit, connect or refuse on drop
(Esc cancels). Picking up a wired input is :mod:`nodegraph.canvas.wiredetach`."""

from __future__ import annotations

from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QPen
from PySide6.QtWidgets import QGraphicsPathItem

from nodegraph import theme
from nodegraph.canvas.items import NodeItem, PortItem, wire_path
from nodegraph.editing.edits import IN_NODE, OUT_NODE, Refused


class WireDrag:
    """One drag gesture started on *port* (an output, or an input to rewire from)."""

    def __init__(self, scene, port: PortItem) -> None:
        self.scene = scene
        self.port = port
        self.origin = port.scenePos()
        self.item = QGraphicsPathItem()
        pen = QPen(theme.dtype_color(port.dtype), 2.0, Qt.PenStyle.DashLine)
        self.item.setPen(pen)
        self.item.setZValue(5)
        scene.addItem(self.item)
        self.lit: list[PortItem] = []
        self._light()

    def _endpoints(self, other: PortItem):
        if self.port.output:
            return self.port.node_id, self.port.name, other.node_id, other.name
        return other.node_id, other.name, self.port.node_id, self.port.name

    def compatible(self, other: PortItem) -> bool:
        if other.output == self.port.output or other.node_id == self.port.node_id:
            return False
        src, sport, dst, dport = self._endpoints(other)
        try:
            from nodegraph.editing import edits

            ctl = self.scene.controller
            if src != IN_NODE and dst != OUT_NODE and edits.would_cycle(
                    ctl.model, ctl.scope, src, dst):
                return False
            if not ctl.read_only:
                edits.check_dtypes(ctl.model, ctl.catalog, ctl.scope, src, sport, dst, dport)
        except Refused:
            return False
        return True

    def _light(self) -> None:
        for node in self.scene.nodes.values():
            for port in node.ports.values():
                if self.compatible(port):
                    port.highlight = True
                    port.update()
                    self.lit.append(port)

    def move(self, pos: QPointF) -> None:
        a, b = (self.origin, pos) if self.port.output else (pos, self.origin)
        self.item.setPath(wire_path(a, b))

    def cancel(self) -> None:
        """End the gesture without an edit: unlight the ports, drop the rubber wire."""
        for port in self.lit:
            port.highlight = False
            port.update()
        self.lit = []
        if self.item.scene() is not None:
            self.scene.removeItem(self.item)

    def finish(self, pos: QPointF) -> None:
        self.cancel()
        target = self.scene._port_at(pos)
        if target is None:
            if not any(isinstance(i, NodeItem) for i in self.scene.items(pos)):
                self.dropped_on_canvas(pos)
            return
        if target is self.port:
            return
        if target.output == self.port.output:
            kind = "outputs" if target.output else "inputs"
            self.scene.refused.emit(f"connect an output to an input (both are {kind})", pos)
            return
        reason = self.wire_to(target)
        if reason:
            self.scene.refused.emit(reason, pos)

    def dropped_on_canvas(self, pos: QPointF) -> None:
        """Offer the quick-add list of nodes that accept this wire."""
        self.scene.wire_dropped.emit(
            {"node": self.port.node_id, "port": self.port.name,
             "output": self.port.output, "dtype": self.port.dtype}, pos)

    def wire_to(self, target: PortItem) -> str | None:
        """Connect to *target*; None, or the reason the wire is refused."""
        return self.scene.controller.connect(*self._endpoints(target))
