"""While a run is live the graph's structure is locked: the controller refuses edits other than
moves, titles, frames and hot parameters, undo/redo is paused, and the inspector enables only
the hot parameters (it asks :meth:`EditLock.may_edit`). Edits of hot parameters are forwarded
to the running trainer as ``{node id: {param: value}}``.

Which parameters are hot is declared once, on the op spec (``Param.hot``), and read here from
the catalog (:func:`nodegraph.editing.specs.hot_params`): the optimizer's rate, decay and
clipping, dropout's ``p``, batch norm's ``momentum``, and layer params passed on to them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal

from nodegraph.controller import Controller
from nodegraph.editing import events as ev

LOCKED = "Training is running: the graph's structure is locked (Stop to edit it)"
FREE_EDITS = ("set_ui", "set_extra", "noop")


class EditLock(QObject):
    hot_edit = Signal(dict)  # {node id: {param: value}} changed while the lock is engaged
    changed = Signal(bool)  # engaged (True) or released (False)

    def __init__(self, controller: Controller, undo_actions: Callable[[], dict] = dict,
                 parent=None) -> None:
        """*undo_actions* returns ``{"undo": action, "redo": action}``, paused while a run is
        live (asked when the lock engages: the menus are built after the training UI)."""
        super().__init__(parent)
        self.controller = controller
        self.undo_actions = undo_actions
        self.active = False
        self.sent: dict[str, dict] = {}
        controller.model.subscribe(self._on_event)

    # ------------------------------------------------------------------ rules

    def _node(self, scope, node_id) -> dict | None:
        try:
            return self.controller.model.node(node_id, scope)
        except Exception:  # noqa: BLE001 (a stale id: not ours to judge)
            return None

    def _hot(self, node: dict) -> list[str]:
        return self.controller.catalog.hot_params(node["type"], self.controller.model.doc)

    def is_hot(self, scope, node_id: str, name: str) -> bool:
        """Whether *name* of top-level node *node_id* is a hot param (declared on its spec)."""
        node = self._node(scope, node_id)
        return scope is None and node is not None and name in self._hot(node)

    def may_edit(self, scope, node_id: str, name: str) -> bool:
        """The inspector's question: may this param be edited now?"""
        return not self.active or self.is_hot(scope, node_id, name)

    def guard(self, ops: list) -> str | None:
        """None when *ops* may run during training; otherwise the reason they may not."""
        for op in ops:
            kind = op[0]
            if kind in FREE_EDITS:
                continue
            if kind == "set_param" and self.is_hot(op[1], op[2], op[3]):
                continue
            return LOCKED
        return None

    # ------------------------------------------------------------------ engage / release

    def engage(self, doc: dict) -> None:
        self.active = True
        self.sent = {}
        for node in doc["nodes"]:
            params = node.get("params", {})
            self.sent[node["id"]] = {k: params.get(k) for k in self._hot(node)}
        self.controller.guard = self.guard
        self._set_undo(False)
        self.changed.emit(True)

    def release(self) -> None:
        if not self.active:
            return
        self.active = False
        self.controller.guard = None
        self._set_undo(True)
        self.changed.emit(False)

    def _set_undo(self, on: bool) -> None:
        stack = self.controller.stack
        signals = {"undo": (stack.canUndoChanged, stack.canUndo),
                   "redo": (stack.canRedoChanged, stack.canRedo)}
        actions = self.undo_actions()
        for name, (signal, can) in signals.items():
            act = actions.get(name)
            if act is None:
                continue
            if on:
                signal.connect(act.setEnabled)
                act.setEnabled(can())
            else:
                with contextlib.suppress(RuntimeError, TypeError):
                    signal.disconnect(act.setEnabled)
                act.setEnabled(False)

    # ------------------------------------------------------------------ hot edits

    def _on_event(self, event) -> None:
        if not self.active or not isinstance(event, ev.ParamChanged) or event.scope is not None:
            return
        node = self._node(None, event.id)
        if node is None:
            return
        params = node.get("params", {})
        before = self.sent.setdefault(node["id"], {})
        changed = {k: params[k] for k in self._hot(node)
                   if k in params and params[k] != before.get(k)}
        if changed:
            before.update(changed)
            self.hot_edit.emit({node["id"]: changed})
