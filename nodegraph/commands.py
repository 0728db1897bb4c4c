"""QUndoCommands over the Qt-free model: every edit is a list of primitive, invertible ops."""

from __future__ import annotations

from PySide6.QtGui import QUndoCommand

from nodegraph.editing.model import GraphModel, Op

MOVE_ID = 1001


class EditCommand(QUndoCommand):
    """Applies *ops* on redo and their recorded inverses on undo (exact by construction)."""

    def __init__(self, model: GraphModel, text: str, ops: list[Op]) -> None:
        super().__init__(text)
        self.model = model
        self.ops = list(ops)
        self.inverses: list[Op] = []

    def redo(self) -> None:
        self.inverses = self.model.apply_all(self.ops)

    def undo(self) -> None:
        self.model.apply_all(self.inverses)


class MoveCommand(EditCommand):
    """Moving nodes (and frames); consecutive moves of one drag merge into one step."""

    def __init__(self, model: GraphModel, ops: list[Op], drag: int, keys: frozenset) -> None:
        super().__init__(model, "Move", ops)
        self.drag = drag
        self.keys = keys

    def id(self) -> int:  # noqa: A003 (Qt API)
        return MOVE_ID

    def mergeWith(self, other: QUndoCommand) -> bool:  # noqa: N802 (Qt API)
        if not isinstance(other, MoveCommand) or other.drag != self.drag:
            return False
        if other.keys != self.keys:
            return False
        # Keep our inverses (the positions before the drag); take the newest targets.
        self.ops = other.ops
        return True
