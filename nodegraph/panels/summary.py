"""The per-layer summary (View ▸ Layer Summary; a tab beside Diagnostics): every node's type,
output shapes, parameters and FLOPs per example, with totals — what ``wiregrad validate``
prints, live from the controller's validation. Clicking a row focuses the node."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHeaderView, QTreeWidget, QTreeWidgetItem

from nodegraph.controller import Controller

COLUMNS = ("node", "type", "outputs", "params", "FLOPs/example")


def shape_text(shape) -> str:
    if shape is None:
        return "?"
    return "×".join(str(d) for d in shape) if shape else "scalar"


def outputs_text(outputs: dict) -> str:
    return ", ".join(f"{port}: {shape_text(shape)}" for port, shape in outputs.items()) or "-"


def summary_rows(validation: dict) -> list[tuple[str, str, str, int, int]]:
    """(node, type, outputs, params, FLOPs) per node, in the document's order."""
    return [(n["id"], n["type"], outputs_text(n.get("outputs") or {}),
             int(n.get("param_count") or 0), int(n.get("flops") or 0))
            for n in validation.get("nodes", [])]


class LayerSummary(QTreeWidget):
    node_clicked = Signal(str)

    def __init__(self, controller: Controller, parent=None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.setColumnCount(len(COLUMNS))
        self.setHeaderLabels(list(COLUMNS))
        self.setRootIsDecorated(False)
        self.setAlternatingRowColors(True)
        self.header().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.header().setStretchLastSection(False)
        for col in (3, 4):
            self.headerItem().setTextAlignment(col, Qt.AlignmentFlag.AlignRight)
        self.itemClicked.connect(self._clicked)
        controller.validated.connect(self.refresh)
        self.refresh(controller.validation)

    def refresh(self, validation: dict) -> None:
        self.clear()
        rows = summary_rows(validation)
        for node, type_name, outputs, params, flops in rows:
            item = QTreeWidgetItem([node, type_name, outputs, f"{params:,}", f"{flops:,}"])
            item.setData(0, Qt.ItemDataRole.UserRole, node)
            for col in (3, 4):
                item.setTextAlignment(col, Qt.AlignmentFlag.AlignRight)
            self.addTopLevelItem(item)
        total = QTreeWidgetItem(["total", "", "",
                                 f"{int(validation.get('total_params') or 0):,}",
                                 f"{int(validation.get('total_flops') or 0):,}"])
        font = total.font(0)
        font.setBold(True)
        for col in range(len(COLUMNS)):
            total.setFont(col, font)
        for col in (3, 4):
            total.setTextAlignment(col, Qt.AlignmentFlag.AlignRight)
        self.addTopLevelItem(total)

    def _clicked(self, item: QTreeWidgetItem, _column: int) -> None:
        node = item.data(0, Qt.ItemDataRole.UserRole)
        if node:
            self.node_clicked.emit(node)
