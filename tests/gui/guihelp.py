"""Helpers for the editor tests: drive the canvas, compare documents up to ids."""

from __future__ import annotations

import os
from pathlib import Path

import networkx as nx
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtTest import QTest

from engine import api

# tools/screenshots.py sets this to the folder the README screenshots go to; a plain test run
# leaves it unset and every screenshot lands in the test's own tmp_path.
SCREENSHOTS_ENV = "WIREGRAD_SCREENSHOTS"


def save_screenshot(widget, name: str, tmp_path: Path) -> Path:
    """Render *widget* to ``NAME.png``: in *tmp_path* (tests never write into the checkout), or
    in ``$WIREGRAD_SCREENSHOTS`` when ``python tools/screenshots.py`` runs the test."""
    folder = Path(os.environ.get(SCREENSHOTS_ENV) or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    image = widget.grab()
    assert image.width() > 0 and image.save(str(path)), path
    return path


def view_point(win, scene_pos: QPointF) -> QPoint:
    return win.view.mapFromScene(scene_pos)


def port_point(win, node_id: str, port: str, output: bool) -> QPoint:
    item = win.scene.nodes[node_id].ports[(port, output)]
    return view_point(win, item.scenePos())


def drag(win, a: QPoint, b: QPoint) -> None:
    vp = win.view.viewport()
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, a)
    mid = QPoint((a.x() + b.x()) // 2, (a.y() + b.y()) // 2)
    QTest.mouseMove(vp, mid)
    QTest.mouseMove(vp, b)
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, b)


def click_node(win, node_id: str) -> None:
    item = win.scene.nodes[node_id]
    center = item.mapToScene(item.body_rect().center().x(), 12)
    QTest.mouseClick(win.view.viewport(), Qt.MouseButton.LeftButton,
                     Qt.KeyboardModifier.NoModifier, view_point(win, center))


def _defaults(spec: dict | None) -> dict:
    return {p["name"]: p.get("default") for p in (spec or {}).get("params", [])}


def graph_of(doc: dict, catalog) -> nx.DiGraph:
    """The document as a graph up to ids and positions (params with defaults filled)."""
    g = nx.DiGraph()
    for n in doc["nodes"]:
        spec = catalog.spec(n["type"], doc)
        params = {**_defaults(spec), **n.get("params", {})}
        g.add_node(n["id"], type=n["type"], params=params)
    for e in doc["edges"]:
        s, d = e["src"]["node"], e["dst"]["node"]
        ports = g.get_edge_data(s, d, {}).get("ports", ())
        g.add_edge(s, d, ports=tuple(sorted(ports + ((e["src"]["port"], e["dst"]["port"]),))))
    return g


def same_graph(a: dict, b: dict, catalog) -> bool:
    return nx.is_isomorphic(
        graph_of(a, catalog), graph_of(b, catalog),
        node_match=lambda x, y: x["type"] == y["type"] and x["params"] == y["params"],
        edge_match=lambda x, y: x["ports"] == y["ports"])


def canonical(doc: dict) -> dict:
    """Order-insensitive form of a document (node and edge order do not matter)."""
    out = dict(doc)
    out["nodes"] = sorted(doc["nodes"], key=lambda n: n["id"])
    out["edges"] = sorted(doc["edges"], key=lambda e: (e["src"]["node"], e["src"]["port"],
                                                       e["dst"]["node"], e["dst"]["port"]))
    return out


def preset_names() -> list[str]:
    return [p["name"] for p in api.list_presets()]
