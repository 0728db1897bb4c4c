"""Layered left-to-right auto-layout from networkx topological generations, wrapping a long
chain into bands to suit the canvas's shape (Qt-free)."""

from __future__ import annotations

import math

import networkx as nx

from nodegraph.editing.model import GraphModel, Op
from nodegraph.editing.specs import Catalog, node_geometry

COLUMN_GAP = 150.0  # room for the shape labels on the wires between columns
ROW_GAP = 40.0
BAND_GAP = 90.0  # between the bands of a wrapped chain (room for the wires going back)
ASPECT = 1.6  # the canvas's usual width / height


def _columns(model: GraphModel, catalog: Catalog, scope) -> tuple[list[list[str]], dict]:
    """Topological generations ordered by the mean row of their predecessors (wires cross
    little), and each node's size."""
    nodes = model.nodes(scope)
    edges = model.edges(scope)
    ids = [n["id"] for n in nodes]
    g = nx.DiGraph()
    g.add_nodes_from(ids)
    g.add_edges_from((e["src"]["node"], e["dst"]["node"]) for e in edges
                     if e["src"]["node"] in g and e["dst"]["node"] in g)
    try:
        generations = [list(gen) for gen in nx.topological_generations(g)]
    except nx.NetworkXUnfeasible:  # a cycle: fall back to one column per node order
        generations = [[i] for i in ids]
    order = {nid: k for k, nid in enumerate(ids)}
    sizes = {n["id"]: node_geometry(catalog, model.doc, n, edges)[4] for n in nodes}
    rank: dict[str, float] = {}
    for gen in generations:
        def key(nid):
            preds = [rank[p] for p in g.predecessors(nid) if p in rank]
            return (sum(preds) / len(preds) if preds else -1e9, order[nid])

        gen.sort(key=key)
        y = 0.0
        for nid in gen:
            rank[nid] = y + sizes[nid][1] / 2
            y += sizes[nid][1] + ROW_GAP
    return generations, sizes


def _bands(widths: list[float], heights: list[float], aspect: float) -> list[list[int]]:
    """Columns split into consecutive bands (rows of columns) so that the laid-out graph's
    width / height comes closest to *aspect* (a long chain wraps instead of one thin line)."""
    total = sum(widths) + COLUMN_GAP * (len(widths) - 1)
    best: tuple[float, list[list[int]]] | None = None
    for n in range(1, len(widths) + 1):
        limit = max(total / n, max(widths))
        bands: list[list[int]] = [[]]
        width = 0.0
        for k, w in enumerate(widths):
            if bands[-1] and width + COLUMN_GAP + w > limit + 1e-6:
                bands.append([])
                width = 0.0
            width += (COLUMN_GAP if bands[-1] else 0.0) + w
            bands[-1].append(k)
        w = max(sum(widths[k] for k in b) + COLUMN_GAP * (len(b) - 1) for b in bands)
        h = sum(max(heights[k] for k in b) for b in bands) + BAND_GAP * (len(bands) - 1)
        score = abs(math.log((w / max(h, 1.0)) / aspect))
        if best is None or score < best[0] - 1e-9:
            best = (score, bands)
        if len(bands) == len(widths):
            break
    return best[1] if best else []


def positions(model: GraphModel, catalog: Catalog, scope=None, origin=(0.0, 0.0),
              aspect: float = ASPECT) -> dict[str, tuple[float, float]]:
    """Node id → top-left position: columns are topological generations, left to right; a
    chain too long for *aspect* (the canvas's width / height) wraps into bands below."""
    generations, sizes = _columns(model, catalog, scope)
    if not generations:
        return {}
    widths = [max(sizes[n][0] for n in gen) for gen in generations]
    heights = [sum(sizes[n][1] for n in gen) + ROW_GAP * (len(gen) - 1) for gen in generations]
    out: dict[str, tuple[float, float]] = {}
    top = origin[1]
    for band in _bands(widths, heights, aspect):
        band_h = max(heights[k] for k in band)
        x = origin[0]
        for k in band:
            y = top + (band_h - heights[k]) / 2
            for nid in generations[k]:
                out[nid] = (round(x, 1), round(y, 1))
                y += sizes[nid][1] + ROW_GAP
            x += widths[k] + COLUMN_GAP
        top += band_h + BAND_GAP
    return out


def auto_layout(model: GraphModel, catalog: Catalog, scope=None,
                aspect: float = ASPECT) -> list[Op]:
    """One undoable edit moving every node of *scope* to its layered position."""
    ops = []
    for nid, (x, y) in positions(model, catalog, scope, aspect=aspect).items():
        if list(model.pos(nid, scope)) != [x, y] or "pos" not in model.node(nid, scope).get(
                "ui", {}):
            ops.append(("set_ui", scope, nid, "pos", [x, y]))
    return ops
