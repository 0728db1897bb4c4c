"""The Qt-free editable document: the graph dict plus primitive, invertible edits and events.

Every change goes through :meth:`GraphModel.apply`, which takes a primitive operation (a tuple)
and returns its inverse, so undo is exact by construction. Nodes are addressed by id and edges
by their key ``(source node, source port, destination node, destination port)`` — never by list
index — and an insertion names the node or edge it goes before (``None``: at the end), so an
undone deletion lands exactly where it was. Views subscribe with :meth:`GraphModel.subscribe`
and mirror the typed events of :mod:`nodegraph.editing.events`; they never own saved state.

A *scope* names the graph body being edited: ``None`` for the document itself, or the name of a
layer definition in ``doc["layers"]`` (entering a layer edits its inside).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from nodegraph.editing import events as ev

MISSING = object()  # "absent" marker for keys that are deleted or created by an edit

Op = tuple
EdgeKey = tuple[str, str, str, str]
Listener = Callable[[ev.Event], None]


def edge_key(edge: dict) -> EdgeKey:
    """The edge's identity: (source node, source port, destination node, destination port)."""
    return (edge["src"]["node"], edge["src"]["port"], edge["dst"]["node"], edge["dst"]["port"])


class ModelError(Exception):
    """An edit that does not apply to the current document (a bug or a stale intent)."""


class GraphModel:
    """Wraps a graph document; all mutation goes through :meth:`apply`."""

    def __init__(self, doc: dict) -> None:
        self.doc = copy.deepcopy(doc)
        self.doc.setdefault("nodes", [])
        self.doc.setdefault("edges", [])
        self.doc.setdefault("layers", {})
        self.doc.setdefault("extra", {})
        self._listeners: list[Listener] = []
        self.structure_version = 0  # bumped by every edit that can change validation

    # ------------------------------------------------------------------ events

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _emit(self, event: ev.Event) -> None:
        for listener in list(self._listeners):
            listener(event)

    def reset(self, doc: dict) -> None:
        """Replace the whole document (open, recover); not undoable by itself."""
        self.doc = copy.deepcopy(doc)
        for key, empty in (("nodes", []), ("edges", []), ("layers", {}), ("extra", {})):
            self.doc.setdefault(key, empty)
        self.structure_version += 1
        self._emit(ev.Reset())

    # ------------------------------------------------------------------ reading

    def body(self, scope: str | None) -> dict:
        if scope is None:
            return self.doc
        try:
            return self.doc["layers"][scope]
        except KeyError:
            raise ModelError(f"no layer definition '{scope}' in the document") from None

    def nodes(self, scope: str | None = None) -> list[dict]:
        return self.body(scope).setdefault("nodes", [])

    def edges(self, scope: str | None = None) -> list[dict]:
        return self.body(scope).setdefault("edges", [])

    def node(self, node_id: str, scope: str | None = None) -> dict:
        for node in self.nodes(scope):
            if node["id"] == node_id:
                return node
        raise ModelError(f"no node '{node_id}'")

    def has_node(self, node_id: str, scope: str | None = None) -> bool:
        return any(n["id"] == node_id for n in self.nodes(scope))

    def node_index(self, node_id: str, scope: str | None = None) -> int:
        for i, node in enumerate(self.nodes(scope)):
            if node["id"] == node_id:
                return i
        raise ModelError(f"no node '{node_id}'")

    def node_after(self, node_id: str, scope: str | None = None) -> str | None:
        """The id of the node listed right after *node_id*, or None when it is the last."""
        nodes = self.nodes(scope)
        i = self.node_index(node_id, scope)
        return nodes[i + 1]["id"] if i + 1 < len(nodes) else None

    def edge(self, key: EdgeKey, scope: str | None = None) -> dict:
        return self.edges(scope)[self.edge_index(key, scope)]

    def has_edge(self, key: EdgeKey, scope: str | None = None) -> bool:
        return any(edge_key(e) == tuple(key) for e in self.edges(scope))

    def edge_index(self, key: EdgeKey, scope: str | None = None) -> int:
        for i, edge in enumerate(self.edges(scope)):
            if edge_key(edge) == tuple(key):
                return i
        raise ModelError(f"no wire {key[0]}.{key[1]} -> {key[2]}.{key[3]}")

    def pos(self, node_id: str, scope: str | None = None) -> tuple[float, float]:
        p = self.node(node_id, scope).get("ui", {}).get("pos", [0, 0])
        return float(p[0]), float(p[1])

    def frames(self) -> list[dict]:
        return self.doc.get("extra", {}).get("frames", [])

    def snapshot(self) -> dict:
        return copy.deepcopy(self.doc)

    # ------------------------------------------------------------------ editing

    def apply(self, op: Op) -> Op:
        """Apply one primitive edit and return the edit that undoes it exactly."""
        kind = op[0]
        handler = getattr(self, "_op_" + kind, None)
        if handler is None:
            raise ModelError(f"unknown edit '{kind}'")
        inverse = handler(*op[1:])
        if kind != "set_ui" or op[3] != "pos":
            self.structure_version += 1
        return inverse

    def apply_all(self, ops: list[Op]) -> list[Op]:
        """Apply *ops* in order; returns their inverses in undo order (reversed)."""
        inverses = []
        try:
            for op in ops:
                inverses.append(self.apply(op))
        except Exception:
            for inv in reversed(inverses):  # leave the document as it was
                self.apply(inv)
            raise
        return list(reversed(inverses))

    def _op_insert_node(self, scope, node, before: str | None = None) -> Op:
        node = copy.deepcopy(node)
        if self.has_node(node["id"], scope):
            raise ModelError(f"duplicate node id '{node['id']}'")
        nodes = self.nodes(scope)
        index = len(nodes) if before is None else self.node_index(before, scope)
        nodes.insert(index, node)
        self._emit(ev.NodeAdded(scope, node["id"]))
        return ("delete_node", scope, node["id"])

    def _op_delete_node(self, scope, node_id: str) -> Op:
        after = self.node_after(node_id, scope)
        node = self.nodes(scope).pop(self.node_index(node_id, scope))
        self._emit(ev.NodeRemoved(scope, node_id))
        return ("insert_node", scope, node, after)

    def _op_insert_edge(self, scope, edge, before: EdgeKey | None = None) -> Op:
        edge = copy.deepcopy(edge)
        key = edge_key(edge)
        if self.has_edge(key, scope):
            raise ModelError(f"duplicate wire {key[0]}.{key[1]} -> {key[2]}.{key[3]}")
        edges = self.edges(scope)
        index = len(edges) if before is None else self.edge_index(before, scope)
        edges.insert(index, edge)
        self._emit(ev.EdgeAdded(scope, edge))
        return ("delete_edge", scope, key)

    def _op_delete_edge(self, scope, key: EdgeKey) -> Op:
        edges = self.edges(scope)
        index = self.edge_index(key, scope)
        after = edge_key(edges[index + 1]) if index + 1 < len(edges) else None
        edge = edges.pop(index)
        self._emit(ev.EdgeRemoved(scope, edge))
        return ("insert_edge", scope, edge, after)

    def _set_key(self, holder: dict, key: str, value: Any) -> Any:
        old = holder.get(key, MISSING)
        if value is MISSING:
            holder.pop(key, None)
        else:
            holder[key] = copy.deepcopy(value)
        return old

    def _set_in(self, node: dict, holder: str, key: str, value: Any, drop: bool) -> tuple:
        had = holder in node
        old = self._set_key(node.setdefault(holder, {}), key, value)
        if drop and not node[holder]:
            del node[holder]
        return old, not had

    def _op_set_param(self, scope, node_id, name, value, drop_if_empty=False) -> Op:
        node = self.node(node_id, scope)
        old, created = self._set_in(node, "params", name, value, drop_if_empty)
        self._emit(ev.ParamChanged(scope, node_id, name))
        return ("set_param", scope, node_id, name, old, created)

    def _op_set_ui(self, scope, node_id, key, value, drop_if_empty=False) -> Op:
        node = self.node(node_id, scope)
        old, created = self._set_in(node, "ui", key, value, drop_if_empty)
        self._emit(ev.UiChanged(scope, node_id, key))
        return ("set_ui", scope, node_id, key, old, created)

    def _op_set_field(self, scope, node_id, key, value) -> Op:
        """A node's own field (``trainable``); MISSING removes it."""
        node = self.node(node_id, scope)
        old = self._set_key(node, key, value)
        self._emit(ev.ParamChanged(scope, node_id, key))
        return ("set_field", scope, node_id, key, old)

    def _op_noop(self) -> Op:
        return ("noop",)

    def _op_set_layer(self, name, definition) -> Op:
        old = self._set_key(self.doc.setdefault("layers", {}), name, definition)
        self._emit(ev.LayerChanged(name))
        return ("set_layer", name, old)

    def _op_set_layer_key(self, name, key, value) -> Op:
        old = self._set_key(self.doc["layers"][name], key, value)
        self._emit(ev.LayerChanged(name))
        return ("set_layer_key", name, key, old)

    def _op_set_extra(self, key, value) -> Op:
        old = self._set_key(self.doc.setdefault("extra", {}), key, value)
        self._emit(ev.ExtraChanged(key))
        return ("set_extra", key, old)

    def _op_set_training(self, key, value, drop_if_empty=False) -> Op:
        created = "training" not in self.doc
        old = self._set_key(self.doc.setdefault("training", {}), key, value)
        if drop_if_empty and not self.doc["training"]:
            del self.doc["training"]
        self._emit(ev.TrainingChanged(key))
        return ("set_training", key, old, created)

    def _op_set_meta(self, key, value) -> Op:
        old = self._set_key(self.doc.setdefault("meta", {}), key, value)
        self._emit(ev.MetaChanged(key))
        return ("set_meta", key, old)
