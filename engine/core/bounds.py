"""The expanded-size limit: primitive nodes and edges after every layer is expanded.

:func:`check_size` bounds the expanded size from the layer definitions alone, before anything
is expanded, so a 7 KB document that would expand to millions of nodes is refused at once
with an error naming the layer. Limits and measurements: ``docs/robustness.md``.
"""

from __future__ import annotations

from typing import NamedTuple

from engine.core.expand import MAX_LAYER_DEPTH, Expansion, layer_definition

MAX_EXPANDED_NODES = 200_000
MAX_EXPANDED_EDGES = 400_000


class Size(NamedTuple):
    nodes: int
    edges: int


def check_size(st: Expansion, doc: dict) -> bool:
    """Refuse (with an error naming the layer) a document whose expansion would exceed
    :data:`MAX_EXPANDED_NODES` primitive nodes or :data:`MAX_EXPANDED_EDGES` edges.

    The bound is computed from the layer definitions without expanding them (nodes muted by
    ``when`` counted too), in time linear in the size of the document.
    """
    memo = _acyclic_memo(st, doc)
    total = Size(0, len(doc.get("edges", [])))
    biggest: tuple[int, str, str] = (0, "", "")
    for node in doc.get("nodes", []):
        size = _node_size(st, node.get("type", ""), 0, memo)
        total = Size(total.nodes + size.nodes, total.edges + size.edges)
        biggest = max(biggest, (size.nodes + size.edges, node["id"], node.get("type", "")))
        if total.nodes > MAX_EXPANDED_NODES or total.edges > MAX_EXPANDED_EDGES:
            break
    if total.nodes <= MAX_EXPANDED_NODES and total.edges <= MAX_EXPANDED_EDGES:
        return True
    _, nid, type_name = biggest
    st.error(nid, f"the graph expands to more than {MAX_EXPANDED_NODES:,} primitive nodes or "
             f"{MAX_EXPANDED_EDGES:,} edges (the limit); its largest part is '{nid}', a layer "
             f"'{type_name}' of {_node_size(st, type_name, 0, memo).nodes:,} nodes and "
             f"{_node_size(st, type_name, 0, memo).edges:,} edges once expanded")
    return False


class _Cyclic(Exception):
    """A layer type reached again inside itself, or nesting past the depth limit."""



def _acyclic_memo(st, doc: dict) -> dict[tuple[str, int], Size]:
    """Sizes of layer types without cycles or deep nesting, one pass over each definition;
    empty when a cycle shows (the general bound, per nesting depth, then does the work)."""
    flat: dict[str, Size] = {}
    try:
        for node in doc.get("nodes", []):
            _acyclic_size(st, node.get("type", ""), 0, flat, set())
    except _Cyclic:
        return {}
    return {(name, 0): size for name, size in flat.items()}

def _acyclic_size(st: Expansion, type_name: str, depth: int, memo: dict[str, Size],
                  active: set[str]) -> Size:
    """Expanded size of *type_name*, memoised per type (valid when no layer contains itself
    and nothing nests past the depth limit; raises :class:`_Cyclic` otherwise)."""
    ldef = layer_definition(type_name, st.layer_defs) if isinstance(type_name, str) else None
    if ldef is None:
        return Size(1, 0)
    if type_name in memo:
        return memo[type_name]
    if type_name in active or depth >= MAX_LAYER_DEPTH:
        raise _Cyclic
    active.add(type_name)
    nodes, edges = 0, len(ldef.get("edges", [])) + len(ldef.get("outputs", []))
    for inner in ldef.get("nodes", []):
        size = _acyclic_size(st, inner.get("type", ""), depth + 1, memo, active)
        nodes, edges = nodes + size.nodes, edges + size.edges
    active.discard(type_name)
    memo[type_name] = Size(min(nodes, 2**62), min(edges, 2**62))
    return memo[type_name]


def _node_size(st: Expansion, type_name: str, depth: int,
               memo: dict[tuple[str, int], Size]) -> Size:
    """Upper bound of the expanded size of one node of type *type_name* at *depth*."""
    ldef = layer_definition(type_name, st.layer_defs) if isinstance(type_name, str) else None
    if ldef is None or depth >= MAX_LAYER_DEPTH:
        return Size(1, 0)
    key = (type_name, depth)
    if key in memo:
        return memo[key]
    memo[key] = Size(1, 0)  # a cycle deeper down is cut by the depth limit anyway
    nodes, edges = 0, len(ldef.get("edges", [])) + len(ldef.get("outputs", []))
    for inner in ldef.get("nodes", []):
        size = _node_size(st, inner.get("type", ""), depth + 1, memo)
        nodes, edges = nodes + size.nodes, edges + size.edges
        if nodes > MAX_EXPANDED_NODES or edges > MAX_EXPANDED_EDGES:
            break  # already too big: no need to count the rest
    memo[key] = Size(nodes, edges)
    return memo[key]
