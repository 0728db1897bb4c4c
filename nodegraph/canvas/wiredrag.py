"""Dragging a wire from a port: a rubber wire, the ports it would be accepted on lit, the
reason by the cursor over a port it would be refused on, connect or refuse on drop (Esc
cancels). Picking up a wired input is :mod:`nodegraph.canvas.wiredetach`."""

from __future__ import annotations

import time

from PySide6.QtCore import QPointF, Qt, QTimer
from PySide6.QtGui import QPen
from PySide6.QtWidgets import QGraphicsPathItem

from nodegraph import theme
from nodegraph.canvas.items import NodeItem, PortItem, wire_path
from nodegraph.editing import edits
from nodegraph.editing.edits import IN_NODE, OUT_NODE, Refused

CHECK_BUDGET_S = 0.012  # shape checks per timer tick: about one frame


class WireDrag:
    """One drag gesture started on *port* (an output, or an input to rewire from).

    Only ports the drop would be accepted on light up: the cheap rules (direction, cycle,
    dtype) filter at once, the shape check (a validation of the wired graph) runs for the
    remaining ports a few at a time off a timer, so the canvas stays responsive. Hovering a
    port the wire may not plug into shows why next to the cursor."""

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
        self.reasons: dict[PortItem, str | None] = {}
        self.queue = [p for node in scene.nodes.values() for p in node.ports.values()
                      if self.plausible(p)]
        self.timer = QTimer()
        self.timer.timeout.connect(self._check_some)
        self._check_some()
        if self.queue:
            self.timer.start(0)

    def _endpoints(self, other: PortItem):
        if self.port.output:
            return self.port.node_id, self.port.name, other.node_id, other.name
        return other.node_id, other.name, self.port.node_id, self.port.name

    def plausible(self, other: PortItem) -> bool:
        """The cheap rules: an output meets an input of another node, no cycle, same dtype."""
        if other.output == self.port.output or other.node_id == self.port.node_id:
            return False
        src, sport, dst, dport = self._endpoints(other)
        ctl = self.scene.controller
        try:
            if src != IN_NODE and dst != OUT_NODE and edits.would_cycle(
                    ctl.model, ctl.scope, src, dst):
                return False
            if not ctl.read_only:
                edits.check_dtypes(ctl.model, ctl.catalog, ctl.scope, src, sport, dst, dport)
        except Refused:
            return False
        return True

    def refusal(self, other: PortItem) -> str | None:
        """Why a drop on *other* would be refused (dtype, cycle, shape, lock), or None."""
        if other not in self.reasons:
            if other.output == self.port.output:
                kind = "outputs" if other.output else "inputs"
                self.reasons[other] = f"connect an output to an input (both are {kind})"
            else:
                self.reasons[other] = self._wiring_refusal(*self._endpoints(other))
        return self.reasons[other]

    def _wiring_refusal(self, src, sport, dst, dport) -> str | None:
        return self.scene.controller.wiring_refusal(src, sport, dst, dport)

    def compatible(self, other: PortItem) -> bool:
        return self.refusal(other) is None

    def _check_some(self) -> None:
        """Shape-check queued ports for about one frame; light those a drop would wire."""
        t0 = time.perf_counter()
        while self.queue and time.perf_counter() - t0 < CHECK_BUDGET_S:
            port = self.queue.pop(0)
            if self.compatible(port):
                port.highlight = True
                port.update()
                self.lit.append(port)
        if not self.queue:
            self.timer.stop()

    def settle(self) -> None:
        """Finish every pending check now (tests; a drop does not need it)."""
        while self.queue:
            self._check_some()

    def move(self, pos: QPointF) -> None:
        a, b = (self.origin, pos) if self.port.output else (pos, self.origin)
        self.item.setPath(wire_path(a, b))
        target = self.scene._port_at(pos)
        reason = self.refusal(target) if target is not None and target is not self.port \
            else None
        if reason:
            self.scene.badge.show(reason, pos)
        else:
            self.scene.badge.hide()

    def cancel(self) -> None:
        """End the gesture without an edit: unlight the ports, drop the rubber wire."""
        self.timer.stop()
        self.queue = []
        self.scene.badge.hide()
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
            self.scene.refused.emit(self.refusal(target), pos)
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
