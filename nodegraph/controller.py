"""The controller: owns the model and the undo stack, turns intents into commands, validates.

Views call the intent methods with ids; the controller builds ops (``edits``, ``grouping``,
``layout``), pushes one command per intent and re-validates through ``engine.api`` whenever the
structure changed (positions never need it).
"""

from __future__ import annotations

import copy
import itertools

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoStack

from engine import api
from nodegraph.commands import EditCommand, MoveCommand
from nodegraph.editing import edits, grouping, layout, sizes
from nodegraph.editing.edits import Refused
from nodegraph.editing.model import GraphModel, Op
from nodegraph.editing.specs import Catalog

_drags = itertools.count(1)
CURRENT = object()  # "the scope being edited" (a default that None — the root — cannot be)


def new_drag_id() -> int:
    return next(_drags)


def run_validation(doc: dict) -> dict:
    """``engine.api.validate`` that never raises: a crash becomes one diagnostic."""
    try:
        return api.validate(doc)
    except Exception as exc:  # noqa: BLE001 (the editor must stay up on any document)
        return {"ok": False, "nodes": [], "edges": [], "total_params": 0, "total_flops": 0,
                "diagnostics": [{"node": None, "port": None, "severity": "error",
                                 "message": f"validation failed: {exc}"}]}


class Scope:
    """One level of the breadcrumb: the root graph or the inside of a layer."""

    def __init__(self, label: str, model: GraphModel, scope, read_only: bool, node=None):
        self.label, self.model, self.scope, self.read_only = label, model, scope, read_only
        self.node = node


class Controller(QObject):
    validated = Signal(dict)
    scope_changed = Signal()
    message = Signal(str)
    document_replaced = Signal()

    def __init__(self, doc: dict, catalog: Catalog | None = None, parent=None) -> None:
        super().__init__(parent)
        self.catalog = catalog or Catalog()
        self.model = GraphModel(doc)
        self.stack = QUndoStack(self)
        self.stack.indexChanged.connect(lambda _i: self.revalidate())
        self.scopes = [Scope("graph", self.model, None, False)]
        self.validation: dict = {}
        self.guard = None  # while training: ops -> None or the reason they are refused
        self._validated_version = -1
        self.revalidate(force=True)

    # ------------------------------------------------------------------ state

    @property
    def current(self) -> Scope:
        return self.scopes[-1]

    @property
    def view_model(self) -> GraphModel:
        return self.current.model

    @property
    def scope(self):
        return self.current.scope

    @property
    def read_only(self) -> bool:
        return self.current.read_only

    def replace_document(self, doc: dict) -> None:
        """Open another document in place (undo history cleared)."""
        self.stack.clear()
        self.scopes = [Scope("graph", self.model, None, False)]
        self.model.reset(doc)
        self.stack.setClean()
        self.revalidate(force=True)
        self.scope_changed.emit()
        self.document_replaced.emit()

    def revalidate(self, force: bool = False) -> dict:
        if force or self.model.structure_version != self._validated_version:
            self._validated_version = self.model.structure_version
            self.validation = run_validation(self.model.doc)
            self.validated.emit(self.validation)
        return self.validation

    # ------------------------------------------------------------------ pushing

    def push(self, text: str, ops: list[Op]) -> bool:
        if not ops:
            return False
        if self.read_only:
            self.message.emit("This built-in layer is read-only; ungroup a copy to edit it.")
            return False
        reason = self.guard(ops) if self.guard is not None else None
        if reason:
            self.message.emit(reason)
            return False
        self.stack.push(EditCommand(self.model, text, ops))
        return True

    def _try(self, text: str, build) -> str | None:
        """Push the ops *build()* returns; a refusal's reason is returned and announced."""
        try:
            ops = build()
        except Refused as exc:
            self.message.emit(str(exc))
            return str(exc)
        self.push(text, ops)
        return None

    # ------------------------------------------------------------------ intents

    def add_node(self, type_name: str, pos, params: dict | None = None) -> str | None:
        if self.read_only:
            self.message.emit("This built-in layer is read-only; ungroup a copy to edit it.")
            return None
        node_id, ops = edits.add_node(self.model, self.catalog, self.scope, type_name, pos,
                                      params)
        self.push(f"Add {node_id}", ops)
        return node_id

    def inferred_sizes(self, type_name: str, shape: list | None) -> dict:
        """Size params a new *type_name* node takes from the *shape* wired into it."""
        return sizes.inferred_sizes(type_name, shape) if self.scope is None else {}

    def insert_on_wire(self, edge: dict, type_name: str, pos) -> str | None:
        """Put a new node into wire *edge* (one undo step); its input size (Linear
        ``in_features`` …) is read from the wire's inferred shape. Returns the node's id."""
        if self.read_only:
            self.message.emit("This built-in layer is read-only; ungroup a copy to edit it.")
            return None
        params = self.inferred_sizes(type_name, sizes.wire_shape(self.validation, edge))
        try:
            node_id, ops = edits.insert_on_wire(self.model, self.catalog, self.scope, edge,
                                                type_name, pos, params)
        except Refused as exc:
            self.message.emit(str(exc))
            return None
        return node_id if self.push(f"Insert {node_id}", ops) else None

    def remove(self, node_ids=(), edges_=(), frame_ids=()) -> None:
        node_ids = [n for n in node_ids if n not in (edits.IN_NODE, edits.OUT_NODE)]
        ops = edits.remove(self.model, self.scope, node_ids, list(edges_))
        if frame_ids:
            ops += edits.update_frames(self.model, {f: {"deleted": True} for f in frame_ids})
        self.push("Delete", ops)

    def connection_ops(self, src, sport, dst, dport) -> list[Op]:
        """Ops for a wire, refused (``Refused``) on dtype, cycle or new shape errors."""
        if self.read_only:
            raise Refused("this built-in layer is read-only")
        ops = edits.connect(self.model, self.catalog, self.scope, src, sport, dst, dport)
        if self.scope is None:
            self._check_shapes(ops, dst)
        return ops

    def _check_shapes(self, ops: list[Op], dst: str) -> None:
        before = {d["message"] for d in self.validation.get("diagnostics", [])
                  if d.get("node") == dst and d.get("severity") == "error"}
        trial = GraphModel(self.model.doc)
        trial.apply_all(ops)
        result = run_validation(trial.doc)
        new = [d["message"] for d in result["diagnostics"] if d.get("node") == dst
               and d.get("severity") == "error" and d["message"] not in before
               and "not connected" not in d["message"]]
        if new:
            raise Refused(f"shape mismatch: {new[0]}")

    def connect(self, src, sport, dst, dport) -> str | None:
        """Wire src.sport → dst.dport; returns None, or the reason it was refused."""
        return self._try(f"Connect {src}.{sport} → {dst}.{dport}",
                         lambda: self.connection_ops(src, sport, dst, dport))

    def move_wire_ops(self, edge: dict, dst, dport) -> list[Op]:
        """Ops re-plugging *edge* into dst.dport, refused (``Refused``) like a new wire."""
        if self.read_only:
            raise Refused("this built-in layer is read-only")
        ops = edits.move_wire(self.model, self.catalog, self.scope, edge, dst, dport)
        if self.scope is None:
            self._check_shapes(ops, dst)
        return ops

    def move_wire(self, edge: dict, dst, dport) -> str | None:
        """Re-plug *edge* into dst.dport in one step; returns None, or the refusal's reason."""
        src, sport = edge["src"]["node"], edge["src"]["port"]
        return self._try(f"Move wire {src}.{sport} → {dst}.{dport}",
                         lambda: self.move_wire_ops(edge, dst, dport))

    def wiring_refusal(self, src, sport, dst, dport, moving: dict | None = None) -> str | None:
        """Why wiring src.sport → dst.dport (or moving the wire *moving* there) would be
        refused — dtype, cycle, shape, a live run's lock — or None; changes nothing."""
        try:
            ops = (self.connection_ops(src, sport, dst, dport) if moving is None
                   else self.move_wire_ops(moving, dst, dport))
        except Refused as exc:
            return str(exc)
        return self.guard(ops) if self.guard is not None else None

    def disconnect(self, edge: dict) -> None:
        self.push("Disconnect", edits.remove_edges(self.model, self.scope, [edge]))

    def set_param(self, node_id: str, name: str, value, scope=CURRENT) -> None:
        """Set a param (one undo step) in the scope being edited, or in *scope* if given."""
        scope = self.scope if scope is CURRENT else scope
        self.push(f"Set {node_id}.{name}",
                  edits.set_param(self.model, scope, node_id, name, value))

    def set_training(self, key: str, value) -> None:
        """One setting of the document's ``training`` block (one undo step)."""
        self.push(f"Set training {key}", edits.set_training(self.model, key, value))

    def set_trainable(self, node_id: str, trainable: bool) -> None:
        """Freeze or unfreeze a node's parameters (one undo step)."""
        self.push(f"{'Unfreeze' if trainable else 'Freeze'} {node_id}",
                  edits.set_trainable(self.model, self.scope, node_id, trainable))

    def set_title(self, node_id: str, title: str) -> None:
        self.push(f"Rename {node_id}", edits.set_title(self.model, self.scope, node_id, title))

    def move(self, positions: dict, drag: int, frames: dict | None = None) -> None:
        """Move nodes (id → (x, y)) and frames (id → rect); one *drag* merges into one step."""
        if self.read_only:
            return
        ops = edits.move(self.model, self.scope, positions)
        if frames:
            ops += edits.update_frames(self.model, {k: {"rect": list(r)}
                                                    for k, r in frames.items()})
        if ops:
            keys = frozenset(positions) | frozenset(frames or ())
            self.stack.push(MoveCommand(self.model, ops, drag, keys))

    def add_frame(self, rect, title="Comment") -> str:
        frame_id, ops = edits.add_frame(self.model, rect, title)
        self.push("Add frame", ops)
        return frame_id

    def set_frame(self, frame_id: str, **fields) -> None:
        self.push("Edit frame", edits.update_frames(self.model, {frame_id: fields}))

    def group(self, ids) -> str | None:
        try:
            gid, ops = grouping.group(self.model, self.catalog, self.scope, ids)
        except Refused as exc:
            self.message.emit(str(exc))
            return None
        self.push("Group into layer", ops)
        return gid

    def ungroup(self, node_id: str) -> str | None:
        return self._try(f"Ungroup {node_id}",
                         lambda: grouping.ungroup(self.model, self.catalog, self.scope, node_id))

    def paste(self, frag: dict, offset=(40.0, 40.0)) -> list[str]:
        ids, ops = grouping.paste(self.model, self.scope, copy.deepcopy(frag), offset)
        return ids if self.push("Paste", ops) else []

    def auto_layout(self, aspect: float = layout.ASPECT) -> None:
        """Lay the scope out; a long chain wraps to suit *aspect* (the canvas's w / h)."""
        self.push("Auto-layout", layout.auto_layout(self.model, self.catalog, self.scope,
                                                    aspect))

    # ------------------------------------------------------------------ layer scopes

    def can_enter(self, node_id: str) -> bool:
        node = self.view_model.node(node_id, self.scope)
        return self.catalog.layer_definition(node["type"], self.model.doc) is not None

    def enter(self, node_id: str) -> bool:
        """Show the inside of layer node *node_id* (read-only for built-in layers)."""
        node = self.view_model.node(node_id, self.scope)
        name = node["type"]
        ldef = self.catalog.layer_definition(name, self.model.doc)
        if ldef is None:
            return False
        builtin = self.catalog.builtin_layer(name) or name not in self.model.doc.get("layers", {})
        if builtin or self.read_only:
            view = GraphModel({"nodes": ldef.get("nodes", []), "edges": ldef.get("edges", []),
                               "inputs": ldef.get("inputs", []),
                               "outputs": ldef.get("outputs", []), "layers": {}})
            self.scopes.append(Scope(name, view, None, True, node_id))
        else:
            self.scopes.append(Scope(name, self.model, name, False, node_id))
        self.scope_changed.emit()
        return True

    def leave(self, depth: int | None = None) -> None:
        """Go back up to breadcrumb level *depth* (0 = the graph; None = one level up)."""
        depth = len(self.scopes) - 2 if depth is None else depth
        if 0 <= depth < len(self.scopes) - 1:
            del self.scopes[depth + 1:]
            self.scope_changed.emit()

    def layer_ports(self) -> tuple[list[dict], list[dict]] | None:
        """(inputs, outputs) of the layer being shown, or None at the root."""
        if len(self.scopes) == 1:
            return None
        body = self.view_model.body(self.scope) if self.scope else self.view_model.doc
        return body.get("inputs", []), body.get("outputs", [])

    def save_layer_to_library(self, node_id: str) -> str | None:
        node = self.view_model.node(node_id, self.scope)
        ldef = self.catalog.layer_definition(node["type"], self.model.doc)
        if ldef is None or self.catalog.builtin_layer(node["type"]):
            self.message.emit(f"{node_id} is not a user layer")
            return None
        path = api.save_user_layer(node["type"], ldef)
        self.catalog.reload()
        self.message.emit(f"Saved layer {node['type']} to {path}")
        return path
