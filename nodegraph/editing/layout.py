"""Layered left-to-right auto-layout from networkx topological generations (Qt-free)."""

from __future__ import annotations

import networkx as nx

from nodegraph.editing.model import GraphModel, Op
from nodegraph.editing.specs import Catalog, node_geometry

COLUMN_GAP = 150.0  # room for the shape labels on the wires between columns
ROW_GAP = 40.0


def positions(model: GraphModel, catalog: Catalog, scope=None, origin=(0.0, 0.0)
              ) -> dict[str, tuple[float, float]]:
    """Node id → top-left position; columns are topological generations, ordered by the
    mean row of their predecessors so that wires cross little."""
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
    out: dict[str, tuple[float, float]] = {}
    x = origin[0]
    for gen in generations:
        def key(nid):
            preds = [rank[p] for p in g.predecessors(nid) if p in rank]
            return (sum(preds) / len(preds) if preds else -1e9, order[nid])

        gen.sort(key=key)
        total = sum(sizes[n][1] for n in gen) + ROW_GAP * (len(gen) - 1)
        y = origin[1] - total / 2
        for nid in gen:
            rank[nid] = y + sizes[nid][1] / 2
            out[nid] = (round(x, 1), round(y, 1))
            y += sizes[nid][1] + ROW_GAP
        x += max(sizes[n][0] for n in gen) + COLUMN_GAP
    return out


def auto_layout(model: GraphModel, catalog: Catalog, scope=None) -> list[Op]:
    """One undoable edit moving every node of *scope* to its layered position."""
    ops = []
    for nid, (x, y) in positions(model, catalog, scope).items():
        if list(model.pos(nid, scope)) != [x, y] or "pos" not in model.node(nid, scope).get(
                "ui", {}):
            ops.append(("set_ui", scope, nid, "pos", [x, y]))
    return ops
