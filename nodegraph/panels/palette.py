"""The palette dock: every catalog entry by category, searchable, one-line doc as tooltip,
dragged onto the canvas (mime ``application/x-wiregrad-node-type``) or double-clicked to add."""

from __future__ import annotations

from PySide6.QtCore import QMimeData, Qt, Signal
from PySide6.QtGui import QBrush, QDrag
from PySide6.QtWidgets import QLineEdit, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from nodegraph import theme
from nodegraph.canvas.view import NODE_MIME
from nodegraph.editing.doctext import doc_html
from nodegraph.editing.specs import Catalog

CATEGORY_TITLES = {"op": "Ops", "layer": "Layers", "loss": "Losses", "optimizer": "Optimizers",
                   "data": "Data", "metric": "Metrics", "output": "Outputs"}


def mime_for(type_name: str) -> QMimeData:
    mime = QMimeData()
    mime.setData(NODE_MIME, type_name.encode("utf-8"))
    mime.setText(type_name)
    return mime


class PaletteTree(QTreeWidget):
    def startDrag(self, actions) -> None:  # noqa: N802
        item = self.currentItem()
        type_name = item.data(0, Qt.ItemDataRole.UserRole) if item else None
        if not type_name:
            return
        drag = QDrag(self)
        drag.setMimeData(mime_for(type_name))
        drag.exec(Qt.DropAction.CopyAction)


class Palette(QWidget):
    activated = Signal(str)  # type name (double-click adds at the view centre)

    def __init__(self, catalog: Catalog, parent=None) -> None:
        super().__init__(parent)
        self.catalog = catalog
        self.search = QLineEdit(placeholderText="Search ops, layers, losses…")
        self.search.setClearButtonEnabled(True)
        self.tree = PaletteTree()
        self.tree.setHeaderHidden(True)
        self.tree.setDragEnabled(True)
        self.tree.setIndentation(12)
        box = QVBoxLayout(self)
        box.setContentsMargins(4, 4, 4, 4)
        box.addWidget(self.search)
        box.addWidget(self.tree)
        self.search.textChanged.connect(self.filter)
        self.tree.itemDoubleClicked.connect(self._double_clicked)
        self.populate()

    def populate(self, extra: dict | None = None) -> None:
        """Fill the tree; *extra* holds the document's own layers (name → catalog entry)."""
        self.tree.clear()
        groups: dict[str, QTreeWidgetItem] = {}
        entries = list(self.catalog.ops.values()) + list((extra or {}).values())
        for cat in self.catalog.categories + sorted({e["category"] for e in entries}):
            if cat in groups:
                continue
            group = QTreeWidgetItem([CATEGORY_TITLES.get(cat, cat.title())])
            group.setForeground(0, QBrush(theme.category_color(cat).lighter(150)))
            group.setFont(0, theme.ui_font(9.5, True))
            groups[cat] = group
        for entry in sorted(entries, key=lambda e: (e.get("user", False), e["name"].lower())):
            label = entry["name"] + ("  (user)" if entry.get("user") else "")
            item = QTreeWidgetItem([label])
            item.setData(0, Qt.ItemDataRole.UserRole, entry["name"])
            item.setToolTip(0, f"<b>{entry['name']}</b>{doc_html(entry.get('summary', ''))}")
            item.setData(0, Qt.ItemDataRole.UserRole + 1,
                         f"{entry['name']} {entry.get('summary', '')} {entry.get('family', '')}"
                         .lower())
            groups[entry["category"]].addChild(item)
        for group in groups.values():
            if group.childCount():
                self.tree.addTopLevelItem(group)
                group.setExpanded(True)
        self.filter(self.search.text())

    def filter(self, text: str) -> None:
        words = text.lower().split()
        for i in range(self.tree.topLevelItemCount()):
            group = self.tree.topLevelItem(i)
            shown = 0
            for j in range(group.childCount()):
                child = group.child(j)
                hay = child.data(0, Qt.ItemDataRole.UserRole + 1)
                hide = bool(words) and not all(w in hay for w in words)
                child.setHidden(hide)
                shown += not hide
            group.setHidden(shown == 0)

    def item_for(self, type_name: str) -> QTreeWidgetItem | None:
        for i in range(self.tree.topLevelItemCount()):
            group = self.tree.topLevelItem(i)
            for j in range(group.childCount()):
                if group.child(j).data(0, Qt.ItemDataRole.UserRole) == type_name:
                    return group.child(j)
        return None

    def _double_clicked(self, item: QTreeWidgetItem, _col: int) -> None:
        type_name = item.data(0, Qt.ItemDataRole.UserRole)
        if type_name:
            self.activated.emit(type_name)
