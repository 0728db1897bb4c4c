"""Picking a wire up by its input end (as in Blender and ComfyUI).

Pressing on a wired input detaches that wire: it hangs from its source output while the old
wire is dimmed. Dropping it on another input moves it (one undo step, replacing that input's
wire), on empty canvas deletes it; dropping it back, on a node body, or Esc keeps it as it was.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF

from nodegraph.canvas.items import EdgeItem, PortItem
from nodegraph.canvas.wiredrag import WireDrag
from nodegraph.editing.edits import OUT_NODE, wire_into

GHOST_OPACITY = 0.25


def start_drag(scene, port: PortItem) -> WireDrag:
    """The drag a press on *port* starts: a detach from a wired, editable input, else a wire."""
    ctl = scene.controller
    if port.output or ctl.read_only or port.node_id == OUT_NODE:
        return WireDrag(scene, port)
    edge = wire_into(ctl.view_model, ctl.scope, port.node_id, port.name)
    if edge is None:
        return WireDrag(scene, port)
    src = scene.nodes.get(edge["src"]["node"])
    source = src.ports.get((edge["src"]["port"], True)) if src is not None else None
    ghost = scene.edges.get((edge["src"]["node"], edge["src"]["port"], port.node_id, port.name))
    if source is None or ghost is None:
        return WireDrag(scene, port)
    return DetachDrag(scene, source, port, edge, ghost)


class DetachDrag(WireDrag):
    """A drag of the stored *edge* from its *source* output, picked up at input *plug*."""

    def __init__(self, scene, source: PortItem, plug: PortItem, edge: dict,
                 ghost: EdgeItem) -> None:
        self.plug, self.edge, self.ghost = plug, edge, ghost
        super().__init__(scene, source)
        ghost.setOpacity(GHOST_OPACITY)
        self.move(plug.scenePos())

    def cancel(self) -> None:
        super().cancel()
        self.ghost.setOpacity(1.0)

    def dropped_on_canvas(self, pos: QPointF) -> None:
        self.scene.controller.disconnect(self.edge)

    def _wiring_refusal(self, src, sport, dst, dport) -> str | None:
        if (dst, dport) == (self.plug.node_id, self.plug.name):
            return None  # dropping it back keeps it
        return self.scene.controller.wiring_refusal(src, sport, dst, dport, moving=self.edge)

    def wire_to(self, target: PortItem) -> str | None:
        if target is self.plug:
            return None
        return self.scene.controller.move_wire(self.edge, target.node_id, target.name)
