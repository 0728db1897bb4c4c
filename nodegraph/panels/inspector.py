"""The inspector dock: the selected node's doc, ports with shapes, parameter count, FLOPs and
one widget per parameter (edits are undoable commands); for data nodes, what the data hold
(examples, splits, classes; characters and vocabulary for a text corpus), loaded off the GUI
thread and cached."""

from __future__ import annotations

import contextlib
import html
import json
import threading
from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from engine import api
from nodegraph.controller import Controller
from nodegraph.editing.doctext import doc_html
from nodegraph.editing.edits import IN_NODE, OUT_NODE
from nodegraph.editing.sizes import inferred_sizes, wire_shape
from nodegraph.editing.specs import input_ports, output_ports
from nodegraph.panels.paramwidgets import make_widget


def _fmt_count(n: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


def summary_html(s: dict) -> str:
    """One data node's summary (``engine.api.dataset_summary``) for the inspector."""
    if "error" in s:
        return f"<b>Data</b>: <span style='color:#e44848'>{html.escape(s['error'])}</span>"
    if s.get("vocab_size") is not None:
        rows = [f"{s['characters']:,} characters · vocabulary {s['vocab_size']} symbols",
                f"train {s['train']:,} · validation {s['val']:,} characters"]
    else:
        rows = [f"{s['examples']:,} examples (train {s['train']:,} · validation {s['val']:,})"]
        if s.get("classes"):
            names = s.get("class_names")
            rows.append(f"{s['classes']} classes" + (f": {', '.join(map(str, names))}"
                                                    if names else ""))
        elif s.get("classes") is None:
            rows.append("regression targets")
    if s.get("description"):
        rows.append(f"<i>{html.escape(s['description'])}</i>")
    if s.get("note"):
        rows.append(f"<span style='color:#d08a1c'>note: {html.escape(s['note'])}</span>")
    return "<b>Data</b><br>" + "<br>".join(rows)


class DataSummaries(QObject):
    """``engine.api.dataset_summary`` computed in a background thread, cached by the node's
    type, params and folder; :attr:`ready` (key) when one arrives."""

    ready = Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.cache: dict[str, dict] = {}
        self.pending: set[str] = set()

    @staticmethod
    def key(node: dict, base_dir: str | None) -> str:
        return json.dumps([node["type"], node.get("params", {}), base_dir], sort_keys=True,
                          default=str)

    def get(self, doc: dict, node: dict, base_dir: str | None) -> dict | None:
        key = self.key(node, base_dir)
        if key in self.cache or key in self.pending:
            return self.cache.get(key)
        self.pending.add(key)
        one = {"nodes": [node], "edges": []}
        threading.Thread(target=self._work, args=(key, one, node["id"], base_dir),
                         daemon=True, name="wiregrad-data-summary").start()
        return None

    def _work(self, key: str, doc: dict, node_id: str, base_dir: str | None) -> None:
        try:
            result = api.dataset_summary(doc, node_id, base_dir)
        except Exception as exc:  # noqa: BLE001 (shown as text in the inspector)
            result = {"error": getattr(exc, "message", None) or str(exc)}
        self.cache[key] = result
        self.pending.discard(key)
        with contextlib.suppress(RuntimeError):  # the inspector is gone
            self.ready.emit(key)


class Inspector(QScrollArea):
    def __init__(self, controller: Controller, parent=None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.setWidgetResizable(True)
        self.node_id: str | None = None
        self.widgets: dict[str, QWidget] = {}
        self._pending = False
        self.base_dir_provider = lambda: None  # the document's folder (set by the window)
        # "may this param be edited now?" (scope, node id, param) — e.g. only hot params while
        # a run is live; given by whoever owns that rule (the training UI's edit lock)
        self.editable: Callable[[str | None, str, str], bool] = lambda _s, _n, _p: True
        self.data_label: QLabel | None = None
        self._data_key: str | None = None
        self.summaries = DataSummaries(self)
        self.summaries.ready.connect(self._summary_ready)
        controller.validated.connect(lambda _r: self.schedule())
        controller.scope_changed.connect(lambda: self.show_node(None))
        self.show_node(None)

    def schedule(self) -> None:
        """Rebuild after the current event (a widget may be emitting the change)."""
        if not self._pending:
            self._pending = True
            QTimer.singleShot(0, self._rebuild_later)

    def _rebuild_later(self) -> None:
        self._pending = False
        self.show_node(self.node_id)

    def show_node(self, node_id: str | None) -> None:
        model, scope = self.controller.view_model, self.controller.scope
        if node_id is not None and (node_id in (IN_NODE, OUT_NODE)
                                    or not model.has_node(node_id, scope)):
            node_id = None
        self.node_id = node_id
        self.widgets = {}
        self.data_label, self._data_key = None, None
        page = QWidget()
        box = QVBoxLayout(page)
        box.setAlignment(Qt.AlignmentFlag.AlignTop)
        if node_id is None:
            hint = QLabel("Select a node to see its parameters, ports and shapes.\n\n"
                          "Drag ops from the palette, press Tab for quick-add, and drag "
                          "from an output port to an input port to wire them.")
            hint.setWordWrap(True)
            box.addWidget(hint)
            box.addStretch(1)
            self.setWidget(page)
            return
        node = model.node(node_id, scope)
        spec = self.controller.catalog.spec(node["type"], self.controller.model.doc)
        head = QLabel(f"<h3>{html.escape(node_id)}</h3><i>{html.escape(node['type'])}</i>"
                      + (f" — {spec['category']}" if spec else " — unknown type"))
        box.addWidget(head)
        if spec and spec.get("doc"):
            doc = QLabel(doc_html(spec["doc"]))
            doc.setObjectName("doc")
            doc.setTextFormat(Qt.TextFormat.RichText)
            doc.setWordWrap(True)
            doc.setStyleSheet("color: #a9afb9;")
            box.addWidget(doc)
        form = QFormLayout()
        box.addLayout(form)
        title = QLineEdit(node.get("ui", {}).get("title", ""))
        title.setPlaceholderText(node_id)
        title.setObjectName("title")
        title.editingFinished.connect(lambda: self.controller.set_title(node_id, title.text()))
        title.setReadOnly(self.controller.read_only)
        form.addRow("title", title)
        params = node.get("params", {})
        for p in (spec or {}).get("params", []):
            value = params.get(p["name"], p.get("default"))
            w = make_widget(p, value, lambda v, n=p["name"]: self._commit(n, v))
            w.setEnabled(not self.controller.read_only
                         and self.editable(scope, node_id, p["name"]))
            self.widgets[p["name"]] = w
            form.addRow(p["name"], w)
        self._trainable_row(form, node, scope)
        ports = QLabel(self._ports_html(node, spec))
        ports.setWordWrap(True)
        box.addWidget(ports)
        self._size_offers(box, node, spec, scope)
        if spec and spec["category"] == "data" and node["type"] != "input":
            self._data_section(box, node)
        box.addStretch(1)
        self.setWidget(page)

    def _trainable_row(self, form: QFormLayout, node: dict, scope) -> None:
        """A node with parameters (a layer, a parameter) can be frozen: "trainable"."""
        if len(self.controller.scopes) != 1:
            return
        info = next((n for n in self.controller.validation.get("nodes", [])
                     if n["id"] == node["id"]), None)
        if not info or not info.get("param_count"):
            return
        box = QCheckBox()
        box.setObjectName("trainable")
        box.setChecked(node.get("trainable", True) is not False)
        box.setToolTip("Unchecked: the node's parameters stay fixed while training (frozen).")
        box.toggled.connect(lambda on: self.controller.set_trainable(node["id"], on))
        box.setEnabled(not self.controller.read_only
                       and self.editable(scope, node["id"], "trainable"))
        self.widgets["trainable"] = box
        form.addRow("trainable", box)

    def _size_offers(self, box: QVBoxLayout, node: dict, spec: dict | None, scope) -> None:
        """After an upstream change, a layer whose input size no longer matches the shape
        wired into it offers to take the size from that shape (one click, one undo step)."""
        if len(self.controller.scopes) != 1 or spec is None:
            return
        first = input_ports(spec, node["id"], [])[:1]
        edge = next((e for e in self.controller.model.edges() if first
                     and e["dst"] == {"node": node["id"], "port": first[0]["name"]}), None)
        shape = wire_shape(self.controller.validation, edge) if edge else None
        defaults = {p["name"]: p.get("default") for p in spec["params"]}
        for name, value in inferred_sizes(node["type"], shape).items():
            if node.get("params", {}).get(name, defaults.get(name)) == value:
                continue
            shown = "×".join(str(d) for d in shape)
            button = QPushButton(f"Set {name} = {value} (the input is {shown})")
            button.setObjectName(f"fit_{name}")
            button.setToolTip("The shape wired into this node changed; take the size from it")
            button.clicked.connect(
                lambda _=False, n=name, v=value: self.controller.set_param(node["id"], n, v))
            button.setEnabled(not self.controller.read_only
                              and self.editable(scope, node["id"], name))
            box.addWidget(button)

    def _data_section(self, box: QVBoxLayout, node: dict) -> None:
        base = self.base_dir_provider()
        self.data_label = QLabel()
        self.data_label.setObjectName("data_summary")
        self.data_label.setWordWrap(True)
        box.addWidget(self.data_label)
        self._data_key = self.summaries.key(node, base)
        found = self.summaries.get(self.controller.model.doc, node, base)
        self.data_label.setText(summary_html(found) if found else "<b>Data</b>: loading…")

    def _summary_ready(self, key: str) -> None:
        if key == self._data_key and self.data_label is not None:
            self.data_label.setText(summary_html(self.summaries.cache[key]))

    def _commit(self, name: str, value) -> None:
        if self.node_id is not None:
            self.controller.set_param(self.node_id, name, value)

    def _ports_html(self, node: dict, spec: dict | None) -> str:
        v = self.controller.validation if len(self.controller.scopes) == 1 else {}
        info = next((n for n in v.get("nodes", []) if n["id"] == node["id"]), None)
        edges = self.controller.view_model.edges(self.controller.scope)
        ins = {e["dst"]["port"]: e for e in v.get("edges", []) if e["dst"]["node"] == node["id"]}
        rows = ["<b>Inputs</b>"]
        for p in input_ports(spec, node["id"], edges):
            e = ins.get(p["name"])
            rows.append(f"&nbsp;&nbsp;{p['name']} ({p['dtype']}): "
                        f"{e['label'] if e else '<i>not connected</i>'}")
        rows.append("<b>Outputs</b>")
        outs = info["outputs"] if info else {}
        for p in output_ports(spec, node["id"], edges):
            shape = outs.get(p["name"])
            label = "×".join(str(d) for d in shape) if shape else ("scalar" if shape == [] else "?")
            rows.append(f"&nbsp;&nbsp;{p['name']} ({p['dtype']}): {label}")
        if info:
            rows.append(f"<b>Parameters</b>: {info['param_count']:,}"
                        f" &nbsp; <b>FLOPs</b>/example: {_fmt_count(info['flops'])}")
        diags = [d for d in v.get("diagnostics", []) if d.get("node") == node["id"]]
        rows += [f"<span style='color:#e44848'>{html.escape(d['message'])}</span>" for d in diags]
        return "<br>".join(rows)
