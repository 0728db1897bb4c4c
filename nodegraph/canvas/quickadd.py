"""Quick-add: a search popup at the cursor (Tab, double-click, or a wire dropped on empty
canvas, then filtered to node types with a compatible port and wired up)."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QLineEdit, QListWidget, QListWidgetItem, QVBoxLayout

from nodegraph.editing.doctext import doc_text
from nodegraph.editing.specs import Catalog


def compatible_types(catalog: Catalog, wire: dict | None) -> list[tuple[str, str | None]]:
    """(type name, port to connect) pairs; all types when *wire* is None."""
    out = []
    for name, spec in sorted(catalog.ops.items(), key=lambda kv: kv[0].lower()):
        if wire is None:
            out.append((name, None))
            continue
        ports = spec["inputs"] if wire["output"] else spec["outputs"]
        for port in ports:
            dtype = port.get("dtype", "float")
            if "any" in (dtype, wire["dtype"]) or dtype == wire["dtype"]:
                pname = port["name"] + ("[0]" if port.get("variadic") else "")
                out.append((name, pname))
                break
    return out


class QuickAdd(QFrame):
    chosen = Signal(str, object)  # type name, port name (or None)

    def __init__(self, catalog: Catalog, wire: dict | None, parent=None) -> None:
        super().__init__(parent, Qt.WindowType.Popup)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.wire = wire
        self.search = QLineEdit(placeholderText="Add node…")
        self.list = QListWidget()
        box = QVBoxLayout(self)
        box.setContentsMargins(4, 4, 4, 4)
        box.addWidget(self.search)
        box.addWidget(self.list)
        self.resize(280, 320)
        for name, port in compatible_types(catalog, wire):
            spec = catalog.ops[name]
            item = QListWidgetItem(f"{name}    — {spec['category']}")
            item.setData(Qt.ItemDataRole.UserRole, (name, port))
            item.setToolTip(doc_text(spec.get("summary", "")))
            self.list.addItem(item)
        self.search.textChanged.connect(self._filter)
        self.search.returnPressed.connect(self._accept_current)
        self.list.itemActivated.connect(self._accept)
        self.list.itemClicked.connect(self._accept)
        self._filter("")
        self.search.setFocus()

    def _filter(self, text: str) -> None:
        text = text.lower().strip()
        best, best_rank = None, 3
        for i in range(self.list.count()):
            item = self.list.item(i)
            name = item.data(Qt.ItemDataRole.UserRole)[0].lower()
            hide = bool(text) and text not in item.text().lower()
            item.setHidden(hide)
            rank = 0 if name == text else 1 if name.startswith(text) else 2
            if not hide and rank < best_rank:  # exact name, then prefix, then any match
                best, best_rank = item, rank
        if best is not None:
            self.list.setCurrentItem(best)

    def _accept_current(self) -> None:
        if self.list.currentItem() is not None and not self.list.currentItem().isHidden():
            self._accept(self.list.currentItem())

    def _accept(self, item: QListWidgetItem) -> None:
        name, port = item.data(Qt.ItemDataRole.UserRole)
        self.chosen.emit(name, port)
        self.close()

    def keyPressEvent(self, event) -> None:  # noqa: N802
        if event.key() in (Qt.Key.Key_Down, Qt.Key.Key_Up):
            self.list.keyPressEvent(event)
            return
        super().keyPressEvent(event)
