"""The canvas scene: mirrors model events into items and turns mouse gestures into intents.

Positions come from the model (``ui.pos``); dragging nodes pushes merged move commands and the
items follow the model's events. Nodes inside a layer without saved positions are laid out
for display only.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtWidgets import QGraphicsScene

from nodegraph.canvas.items import EdgeItem, FrameItem, NodeItem
from nodegraph.canvas.refusal import RefusalBadge
from nodegraph.canvas.wiredetach import start_drag
from nodegraph.canvas.wiredrag import WireDrag
from nodegraph.controller import Controller, new_drag_id
from nodegraph.editing import events as ev
from nodegraph.editing import layout
from nodegraph.editing.doctext import doc_text
from nodegraph.editing.edits import IN_NODE, OUT_NODE
from nodegraph.editing.model import edge_key
from nodegraph.editing.specs import node_geometry, node_size

GRID = 10.0


def snap(v: float) -> float:
    return round(v / GRID) * GRID


class GraphScene(QGraphicsScene):
    refused = Signal(str, QPointF)  # reason, scene position
    wire_dropped = Signal(dict, QPointF)  # {"node", "port", "output"}, scene position
    quick_add_requested = Signal(QPointF)
    enter_requested = Signal(str)

    def __init__(self, controller: Controller, parent=None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.nodes: dict[str, NodeItem] = {}
        self.edges: dict[tuple, EdgeItem] = {}
        self.frames: dict[str, FrameItem] = {}
        self.display_pos: dict[str, tuple[float, float]] = {}
        self._model = None
        self._drag = None
        self.wire: WireDrag | None = None
        self._edge_info: dict = {}
        self.badge = RefusalBadge(self)  # why a wire is refused, by the cursor
        self.refused.connect(self.badge.show_for_a_while)
        self.setSceneRect(QRectF(-5000, -5000, 10000, 10000))
        controller.scope_changed.connect(self.rebuild)
        controller.validated.connect(self.refresh_status)
        self.rebuild()

    # ------------------------------------------------------------------ mirroring

    def rebuild(self) -> None:
        if self._model is not None:
            self._model.unsubscribe(self.on_event)
        self._model = self.controller.view_model
        self._model.subscribe(self.on_event)
        self.clearSelection()
        self.clear()
        self.badge.forget()
        self.nodes, self.edges, self.frames = {}, {}, {}
        self.display_pos = {}
        body = self._body()
        if any("pos" not in n.get("ui", {}) for n in body.get("nodes", [])):
            self.display_pos = layout.positions(self._model, self.controller.catalog,
                                                self.controller.scope)
        for node in body.get("nodes", []):
            self._add_node_item(node["id"])
        self._add_pseudo_nodes()
        for edge in self._all_edges():
            self._add_edge_item(edge)
        if self.controller.scope is None and len(self.controller.scopes) == 1:
            for frame in self._model.frames():
                self._add_frame_item(frame)
        self.refresh_status(self.controller.validation)

    def _body(self) -> dict:
        return self._model.body(self.controller.scope)

    def _all_edges(self) -> list[dict]:
        edges = list(self._body().get("edges", []))
        if self.controller.layer_ports() is not None:
            for out in self._body().get("outputs", []):
                edges.append({"src": {"node": out["node"], "port": out["port"]},
                              "dst": {"node": OUT_NODE, "port": out["name"]}})
        return edges

    def on_event(self, event: ev.Event) -> None:
        if getattr(event, "scope", self.controller.scope) != self.controller.scope:
            return
        match event:
            case ev.Reset():
                self.rebuild()
            case ev.LayerChanged(name=name) if name == self.controller.scope:
                self.rebuild()
            case ev.NodeAdded(id=node_id):
                self._add_node_item(node_id)
            case ev.NodeRemoved(id=node_id):
                item = self.nodes.pop(node_id, None)
                if item is not None:
                    self.removeItem(item)
            case ev.EdgeAdded(edge=edge):
                self._add_edge_item(edge)
                self._refresh_node(edge["dst"]["node"])
            case ev.EdgeRemoved(edge=edge):
                item = self.edges.pop(edge_key(edge), None)
                if item is not None:
                    self.removeItem(item)
                if edge["dst"]["node"] in self.nodes:
                    self._refresh_node(edge["dst"]["node"])
            case ev.ParamChanged(id=node_id):
                self._refresh_node(node_id)
            case ev.UiChanged(id=node_id, key=key):
                self._refresh_node(node_id, key == "pos")
            case ev.ExtraChanged(key="frames"):
                self._sync_frames()

    def _node_pos(self, node: dict) -> tuple[float, float]:
        pos = node.get("ui", {}).get("pos")
        if pos is None:
            return self.display_pos.get(node["id"], (0.0, 0.0))
        return float(pos[0]), float(pos[1])

    def _add_node_item(self, node_id: str) -> None:
        item = NodeItem(node_id)
        self.nodes[node_id] = item
        self.addItem(item)
        self._refresh_node(node_id)

    def _refresh_node(self, node_id: str, pos_only: bool = False) -> None:
        item = self.nodes.get(node_id)
        if item is None or node_id in (IN_NODE, OUT_NODE):
            return
        node = self._model.node(node_id, self.controller.scope)
        if not pos_only:
            spec, ins, outs, lines, size = node_geometry(
                self.controller.catalog, self.controller.model.doc, node,
                self._body().get("edges", []))
            title = node.get("ui", {}).get("title") or node_id
            item.set_data(title, node["type"], spec["category"] if spec else None, ins, outs,
                          lines, size, doc_text(spec["summary"]) if spec else "unknown node type")
        item.setPos(*self._node_pos(node))
        self._update_wires(node_id)

    def _add_pseudo_nodes(self) -> None:
        ports = self.controller.layer_ports()
        if ports is None:
            return
        inputs, outputs = ports
        rect = self._nodes_rect()
        for pid, plist, output, x in ((IN_NODE, inputs, True, rect.left() - 320),
                                      (OUT_NODE, outputs, False, rect.right() + 120)):
            item = NodeItem(pid)
            item.pseudo = True
            ports_ = [{"name": p["name"], "dtype": p.get("dtype", "float")} for p in plist]
            size = node_size(len(ports_), len(ports_), 0)
            item.set_data("layer inputs" if output else "layer outputs", "", None,
                          [] if output else ports_, ports_ if output else [], [], size)
            item.setPos(x, rect.center().y() - size[1] / 2)
            self.nodes[pid] = item
            self.addItem(item)

    def _nodes_rect(self) -> QRectF:
        rect = QRectF()
        for item in self.nodes.values():
            rect = rect.united(item.sceneBoundingRect())
        return rect if not rect.isNull() else QRectF(0, 0, 200, 100)

    def _add_edge_item(self, edge: dict) -> None:
        item = EdgeItem(edge)
        self.edges[item.key] = item
        self.addItem(item)
        self._place_edge(item)
        self._label_edge(item)

    def _place_edge(self, item: EdgeItem) -> None:
        src, dst = self.nodes.get(item.key[0]), self.nodes.get(item.key[2])
        if src is None or dst is None:
            item.setVisible(False)
            return
        item.setVisible(True)
        item.set_ends(src.port_scene_pos(item.key[1], True),
                      dst.port_scene_pos(item.key[3], False))

    def _update_wires(self, node_id: str) -> None:
        touched = set()
        for key, item in self.edges.items():
            if node_id in (key[0], key[2]):
                self._place_edge(item)
                touched.add(key)
        if touched:
            self.declutter(touched)

    def _label_edge(self, item: EdgeItem) -> None:
        info = self._edge_info.get(item.key) if self._at_root() else None
        item.set_label(info["label"] if info else "", info["dtype"] if info else "any")

    def _at_root(self) -> bool:
        return len(self.controller.scopes) == 1

    # ------------------------------------------------------------------ validation

    def refresh_status(self, result: dict) -> None:
        self._edge_info = {edge_key(e): e for e in result.get("edges", [])}
        counts = {n["id"]: n for n in result.get("nodes", [])}
        diags: dict[str, list[dict]] = {}
        for d in result.get("diagnostics", []):
            diags.setdefault(d.get("node"), []).append(d)
        root = self._at_root()
        for node_id, item in self.nodes.items():
            if item.pseudo:
                continue
            info = counts.get(node_id) if root else None
            footer = ""
            if info and info.get("param_count"):
                footer = f"{info['param_count']:,} params"
            ds = diags.get(node_id, []) if root else []
            item.set_status(footer, [d["message"] for d in ds if d["severity"] == "error"],
                            [d["message"] for d in ds if d["severity"] != "error"])
        for item in self.edges.values():
            self._label_edge(item)
        self.declutter()

    def declutter(self, only: set | None = None) -> None:
        """Move wire labels off nodes and off each other (all wires, or those in *only*)."""
        nodes = [i.sceneBoundingRect().adjusted(2, 10, -10, -2) for i in self.nodes.values()]
        placed = [e.label_rect() for k, e in self.edges.items()
                  if only is not None and k not in only and e.label]
        for key, item in self.edges.items():
            if item.label and item.isVisible() and (only is None or key in only):
                item.relabel(nodes + placed)
                placed.append(item.label_rect())

    # ------------------------------------------------------------------ frames

    def _add_frame_item(self, frame: dict) -> None:
        item = FrameItem(frame["id"])
        item.set_frame(frame["rect"], frame.get("title", ""))
        self.frames[frame["id"]] = item
        self.addItem(item)

    def _sync_frames(self) -> None:
        if not self._at_root():
            return
        frames = {f["id"]: f for f in self._model.frames()}
        for fid in list(self.frames):
            if fid not in frames:
                self.removeItem(self.frames.pop(fid))
        for fid, frame in frames.items():
            if fid in self.frames:
                self.frames[fid].set_frame(frame["rect"], frame.get("title", ""))
            else:
                self._add_frame_item(frame)

    # ------------------------------------------------------------------ selection helpers

    def selected_node_ids(self) -> list[str]:
        return [i.node_id for i in self.selectedItems()
                if isinstance(i, NodeItem) and not i.pseudo]

    def selected_edges(self) -> list[dict]:
        return [i.edge for i in self.selectedItems() if isinstance(i, EdgeItem)
                and OUT_NODE != i.key[2]]

    def selected_frame_ids(self) -> list[str]:
        return [i.frame_id for i in self.selectedItems() if isinstance(i, FrameItem)]

    def select_nodes(self, ids) -> None:
        self.clearSelection()
        for nid in ids:
            if nid in self.nodes:
                self.nodes[nid].setSelected(True)

    # ------------------------------------------------------------------ mouse

    def wire_at(self, pos: QPointF) -> dict | None:
        """The stored wire under *pos* (not a layer's output pseudo-wire), or None."""
        for item in self.items(pos):
            if isinstance(item, EdgeItem) and item.key[2] != OUT_NODE:
                return dict(item.edge)
        return None

    def _port_at(self, pos: QPointF):
        from nodegraph.canvas.items import PortItem

        for item in self.items(pos):
            if isinstance(item, PortItem):
                return item
        return None

    def mousePressEvent(self, event) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton:
            port = self._port_at(event.scenePos())
            if port is not None:
                self.wire = start_drag(self, port)
                event.accept()
                return
        super().mousePressEvent(event)
        if event.button() == Qt.MouseButton.LeftButton:
            self._start_move(event.scenePos())

    def _start_move(self, pos: QPointF) -> None:
        under = [i for i in self.items(pos) if isinstance(i, (NodeItem, FrameItem))]
        if not under or self.controller.read_only:
            return
        nodes = {i.node_id: (i.pos().x(), i.pos().y()) for i in self.selectedItems()
                 if isinstance(i, NodeItem) and not i.pseudo}
        frames = {}
        for item in self.selectedItems():
            if isinstance(item, FrameItem):
                r = item.sceneBoundingRect().adjusted(2, 2, -2, -2)
                frames[item.frame_id] = (r.x(), r.y(), r.width(), r.height())
                for nid, node in self.nodes.items():  # a frame carries the nodes inside it
                    if not node.pseudo and r.contains(node.sceneBoundingRect().center()):
                        nodes.setdefault(nid, (node.pos().x(), node.pos().y()))
        if nodes or frames:
            self._drag = {"id": new_drag_id(), "start": pos, "nodes": nodes, "frames": frames}

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        if self.wire is not None:
            self.wire.move(event.scenePos())
            return
        if self._drag is not None and event.buttons() & Qt.MouseButton.LeftButton:
            d = event.scenePos() - self._drag["start"]
            dx, dy = snap(d.x()), snap(d.y())
            nodes = {k: (x + dx, y + dy) for k, (x, y) in self._drag["nodes"].items()}
            frames = {k: (r[0] + dx, r[1] + dy, r[2], r[3])
                      for k, r in self._drag["frames"].items()}
            self.controller.move(nodes, self._drag["id"], frames)
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        if self.wire is not None:
            wire, self.wire = self.wire, None
            wire.finish(event.scenePos())
            return
        self._drag = None
        super().mouseReleaseEvent(event)

    def keyPressEvent(self, event) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Escape and self.wire is not None:
            wire, self.wire = self.wire, None
            wire.cancel()
            event.accept()
            return
        super().keyPressEvent(event)

    def mouseDoubleClickEvent(self, event) -> None:  # noqa: N802
        under = [i for i in self.items(event.scenePos()) if isinstance(i, NodeItem)]
        if under and not under[0].pseudo:
            self.enter_requested.emit(under[0].node_id)
            return
        if not under:
            self.quick_add_requested.emit(event.scenePos())
            return
        super().mouseDoubleClickEvent(event)
