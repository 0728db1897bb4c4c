"""While a run is live the graph's structure is locked: the controller refuses edits other than
moves, titles, frames and the optimizer's hot parameters (learning rate, weight decay,
clipping), undo/redo is paused, and the inspector enables only the hot parameters. Edits of
the hot parameters are forwarded to the running trainer."""

from __future__ import annotations

import contextlib

from PySide6.QtCore import QObject, Signal

from nodegraph.editing import events as ev

HOT = ("lr", "weight_decay", "clip_norm")
LOCKED = "Training is running: the graph's structure is locked (Stop to edit it)"


class EditLock(QObject):
    hot_edit = Signal(dict)

    def __init__(self, win) -> None:
        super().__init__(win)
        self.win = win
        self.active = False
        self.sent: dict[str, dict] = {}
        win.controller.model.subscribe(self._on_event)
        inspector = win.inspector
        original = inspector.show_node

        def show_node(node_id):
            original(node_id)
            if self.active:
                self._restrict_inspector()

        inspector.show_node = show_node

    # ------------------------------------------------------------------ rules

    def _node(self, scope, node_id) -> dict | None:
        try:
            return self.win.controller.model.node(node_id, scope)
        except Exception:  # noqa: BLE001 (a stale id: not ours to judge)
            return None

    def is_hot(self, scope, node_id: str, name: str) -> bool:
        node = self._node(scope, node_id)
        return scope is None and node is not None and node["type"] == "optimizer" \
            and name in HOT

    def guard(self, ops: list) -> str | None:
        """None when *ops* may run during training; otherwise the reason they may not."""
        for op in ops:
            kind = op[0]
            if kind in ("set_ui", "set_extra", "noop"):
                continue
            if kind == "set_param" and self.is_hot(op[1], op[2], op[3]):
                continue
            return LOCKED
        return None

    # ------------------------------------------------------------------ engage / release

    def engage(self, doc: dict) -> None:
        self.active = True
        self.sent = {n["id"]: {k: n.get("params", {}).get(k) for k in HOT}
                     for n in doc["nodes"] if n["type"] == "optimizer"}
        self.win.controller.guard = self.guard
        self._set_undo(False)
        self.win.inspector.show_node(self.win.inspector.node_id)
        self.win.statusBar().showMessage(LOCKED, 5000)

    def release(self) -> None:
        if not self.active:
            return
        self.active = False
        self.win.controller.guard = None
        self._set_undo(True)
        self.win.inspector.show_node(self.win.inspector.node_id)

    def _set_undo(self, on: bool) -> None:
        stack = self.win.controller.stack
        acts = getattr(self.win, "actions_by_name", {})
        for name, signal, can in (("undo", stack.canUndoChanged, stack.canUndo),
                                  ("redo", stack.canRedoChanged, stack.canRedo)):
            act = acts.get(name)
            if act is None:
                continue
            if on:
                signal.connect(act.setEnabled)
                act.setEnabled(can())
            else:
                with contextlib.suppress(RuntimeError, TypeError):
                    signal.disconnect(act.setEnabled)
                act.setEnabled(False)

    def _restrict_inspector(self) -> None:
        ins = self.win.inspector
        for name, widget in ins.widgets.items():
            widget.setEnabled(ins.node_id is not None
                              and self.is_hot(self.win.controller.scope, ins.node_id, name))

    # ------------------------------------------------------------------ hot edits

    def _on_event(self, event) -> None:
        if not self.active or not isinstance(event, ev.ParamChanged) or event.scope is not None:
            return
        node = self._node(None, event.id)
        if node is None or node["type"] != "optimizer":
            return
        params = node.get("params", {})
        before = self.sent.setdefault(node["id"], {})
        changed = {k: params[k] for k in HOT if k in params and params[k] != before.get(k)}
        if changed:
            before.update(changed)
            self.hot_edit.emit(changed)
