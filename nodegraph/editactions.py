"""Edit-menu and canvas actions (a collaborator of ``MainWindow``, not a mixin): clipboard,
delete, groups and layers, frames, quick-add, validation and focusing a node.

It sees the window only through what it is given: the controller, the scene, the view, a
status callback, a parent widget for the quick-add popup and two window callbacks (refresh the
palette after a layer is saved; raise the diagnostics list)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QPointF, QRectF
from PySide6.QtGui import QCursor
from PySide6.QtWidgets import QApplication, QWidget

from nodegraph.canvas.items import NodeItem
from nodegraph.canvas.quickadd import QuickAdd
from nodegraph.canvas.scene import GraphScene
from nodegraph.canvas.view import GraphView
from nodegraph.controller import Controller
from nodegraph.editing import grouping
from nodegraph.editing.sizes import output_shape


class EditActions:
    def __init__(self, controller: Controller, scene: GraphScene, view: GraphView,
                 status: Callable[..., None], parent: QWidget,
                 palette_changed: Callable[[], None] = lambda: None,
                 show_diagnostics: Callable[[], None] = lambda: None) -> None:
        self.controller, self.scene, self.view = controller, scene, view
        self.status, self.parent = status, parent
        self.palette_changed, self.show_diagnostics = palette_changed, show_diagnostics
        self.quick_add_popup: QuickAdd | None = None

    # ------------------------------------------------------------------ clipboard

    def copy(self) -> bool:
        ids = self.scene.selected_node_ids()
        if not ids:
            return False
        frag = grouping.fragment(self.controller.view_model, self.controller.catalog,
                                 self.controller.scope, ids)
        QApplication.clipboard().setText(grouping.fragment_text(frag))
        self.status(f"Copied {len(ids)} node(s)", 3000)
        return True

    def cut(self) -> None:
        if self.copy():
            self.delete()

    def cursor_scene_pos(self) -> QPointF | None:
        """Where the mouse pointer is on the canvas, or None when it is not over it."""
        viewport = self.view.viewport()
        local = viewport.mapFromGlobal(QCursor.pos())
        return self.view.mapToScene(local) if viewport.rect().contains(local) else None

    def paste(self, at: QPointF | None = None) -> list[str]:
        """Paste the clipboard's nodes with their top-left corner at *at* (default: the mouse
        pointer when it is over the canvas, else beside the copied nodes)."""
        frag = grouping.parse_fragment(QApplication.clipboard().text())
        if frag is None:
            self.status("The clipboard holds no Wiregrad nodes", 3000)
            return []
        at = at if at is not None else self.cursor_scene_pos()
        ids = self.controller.paste(frag, self._offset_to(frag, at))
        self.scene.select_nodes(ids)
        return ids

    @staticmethod
    def _offset_to(frag: dict, at: QPointF | None) -> tuple[float, float]:
        positions = [n.get("ui", {}).get("pos") for n in frag["nodes"]]
        positions = [p for p in positions if p]
        if at is None or not positions:
            return (40.0, 40.0)
        left, top = min(p[0] for p in positions), min(p[1] for p in positions)
        return (round(at.x() - left, 1), round(at.y() - top, 1))

    def duplicate(self) -> list[str]:
        ids = self.scene.selected_node_ids()
        if not ids:
            return []
        frag = grouping.fragment(self.controller.view_model, self.controller.catalog,
                                 self.controller.scope, ids)
        new = self.controller.paste(frag)
        self.scene.select_nodes(new)
        return new

    def delete(self) -> None:
        self.controller.remove(self.scene.selected_node_ids(), self.scene.selected_edges(),
                               self.scene.selected_frame_ids())

    def select_all(self) -> None:
        for item in self.scene.items():
            if item.parentItem() is None:
                item.setSelected(True)

    # ------------------------------------------------------------------ layers

    def group(self) -> str | None:
        gid = self.controller.group(self.scene.selected_node_ids())
        if gid:
            self.scene.select_nodes([gid])
        return gid

    def _selected_layer(self) -> str | None:
        ids = self.scene.selected_node_ids()
        if len(ids) == 1 and self.controller.can_enter(ids[0]):
            return ids[0]
        self.status("Select one layer node first", 4000)
        return None

    def ungroup(self) -> None:
        node_id = self._selected_layer()
        if node_id:
            self.controller.ungroup(node_id)

    def save_layer(self) -> None:
        node_id = self._selected_layer()
        if node_id and self.controller.save_layer_to_library(node_id):
            self.palette_changed()

    def enter_layer(self, node_id: str) -> None:
        if self.controller.can_enter(node_id):
            self.controller.enter(node_id)

    # ------------------------------------------------------------------ frames

    def add_frame(self) -> str:
        rect = QRectF()
        for nid in self.scene.selected_node_ids():
            rect = rect.united(self.scene.nodes[nid].sceneBoundingRect())
        if rect.isNull():
            c = self.view.mapToScene(self.view.viewport().rect().center())
            rect = QRectF(c.x() - 150, c.y() - 100, 300, 200)
        else:
            rect = rect.adjusted(-30, -50, 30, 30)
        return self.controller.add_frame((rect.x(), rect.y(), rect.width(), rect.height()))

    # ------------------------------------------------------------------ quick-add

    def open_quick_add(self, scene_pos: QPointF, wire: dict | None) -> QuickAdd:
        popup = QuickAdd(self.controller.catalog, wire, self.parent)
        popup.chosen.connect(lambda name, port: self.quick_add_chosen(name, port, scene_pos,
                                                                     wire))
        popup.move(self.view.viewport().mapToGlobal(self.view.mapFromScene(scene_pos)))
        if not self.view.viewport().rect().contains(self.view.mapFromScene(scene_pos)):
            popup.move(QCursor.pos())
        popup.show()
        self.quick_add_popup = popup
        return popup

    def quick_add_chosen(self, type_name: str, port: str | None, pos: QPointF,
                         wire: dict | None) -> str | None:
        if wire is not None and not wire["output"]:
            pos = QPointF(pos.x() - 200, pos.y())
        pos = self._in_view(pos)
        params = {}
        if wire is not None and wire["output"]:  # sizes from the shape the wire carries
            shape = output_shape(self.controller.validation, wire["node"], wire["port"])
            params = self.controller.inferred_sizes(type_name, shape)
        node_id = self.controller.add_node(type_name, (pos.x(), pos.y()), params)
        if node_id and wire is not None and port is not None:
            if wire["output"]:
                self.controller.connect(wire["node"], wire["port"], node_id, port)
            else:
                self.controller.connect(node_id, port, wire["node"], wire["port"])
        if node_id:
            self.scene.select_nodes([node_id])
        return node_id

    def _in_view(self, pos: QPointF, size=(200.0, 90.0)) -> QPointF:
        """*pos* (a new node's top-left) moved so that the node lies inside the visible canvas."""
        seen = self.view.mapToScene(self.view.viewport().rect()).boundingRect()
        x = min(max(pos.x(), seen.left() + 10), seen.right() - size[0] - 10)
        y = min(max(pos.y(), seen.top() + 10), seen.bottom() - size[1] - 10)
        return QPointF(x, y)

    def add_from_palette(self, type_name: str) -> None:
        c = self.view.mapToScene(self.view.viewport().rect().center())
        node_id = self.controller.add_node(type_name, (c.x() - 100, c.y() - 40))
        if node_id:
            self.scene.select_nodes([node_id])

    # ------------------------------------------------------------------ validation

    def validate(self) -> None:
        result = self.controller.revalidate(force=True)
        errors = sum(1 for d in result["diagnostics"] if d["severity"] == "error")
        if errors:
            self.status(f"{errors} error(s): see the diagnostics list", 6000)
            self.show_diagnostics()
        else:
            self.status(f"Valid: {result['total_params']:,} parameters, "
                        f"{result['total_flops']:,} FLOPs per example", 6000)

    def focus_node(self, node_id: str | None) -> None:
        if node_id is None:
            return
        if len(self.controller.scopes) > 1:
            self.controller.leave(0)
        item = self.scene.nodes.get(node_id)
        if isinstance(item, NodeItem):
            self.scene.select_nodes([node_id])
            self.view.centerOn(item.sceneBoundingRect().center())
