"""Document → :class:`~engine.core.program.Program`.

Steps: bound the expanded size (:mod:`engine.core.bounds`), expand layers into primitive ops
with dotted paths and resolve their ports (:mod:`engine.core.expand`: node classification,
then edge resolution), report cycles with the node ids on them, infer a type for every value
(so every edge gets a shape), size the weights, and order the equations topologically.
Every problem becomes a :class:`~engine.core.program.Diagnostic` naming the top-level node; the
compiler never raises on bad input, :func:`compile_document` raises one
:class:`~engine.base.errors.GraphError` carrying them all.
"""

from __future__ import annotations

import gc

from engine.base.errors import GraphError
from engine.core.bounds import MAX_EXPANDED_EDGES, MAX_EXPANDED_NODES, check_size
from engine.core.expand import (
    MAX_LAYER_DEPTH,
    Expansion,
    Flat,
    LayerPort,
    ValueKey,
    expand,
    layer_definition,
    where,
)
from engine.core.program import Diagnostic, Equation, NodeSummary, Program, WeightInfo
from engine.core.registry import ShapeError, TensorType

__all__ = ["MAX_EXPANDED_EDGES", "MAX_EXPANDED_NODES", "MAX_LAYER_DEPTH", "compile_document",
           "compile_graph", "concrete_shape", "layer_definition"]


def _topological(st: Expansion, doc: dict) -> list[str] | None:
    """Top-level cycle check (names the user's ids), then a flat topological order.

    Kahn's algorithm with a heap (the order of ``networkx.lexicographical_topological_sort``
    with the same key) keeps networkx, ~0.2 s to import, off the start-up path; it is loaded
    only to name the nodes of a cycle."""
    ids = [n["id"] for n in doc["nodes"]]
    known = set(ids)
    top_edges = [(e["src"]["node"], e["dst"]["node"]) for e in doc["edges"]
                 if e["src"]["node"] in known and e["dst"]["node"] in known]
    if _kahn(ids, top_edges, key=lambda n: n) is None:
        cycle = _find_cycle(ids, top_edges)
        text = " → ".join(cycle + [cycle[0]])
        for nid in cycle:
            st.error(nid, f"the graph has a cycle: {text}")
        return None
    flat_edges = []
    for dst, src in st.edges.items():
        if not isinstance(dst, ValueKey):
            continue
        real = st.resolve(src)
        if real is not None and real.path in st.flat:
            flat_edges.append((real.path, dst.path))
    order = {n["id"]: i for i, n in enumerate(doc["nodes"])}
    result = _kahn(list(st.flat), flat_edges, key=lambda p: (order.get(p.split(".")[0], 0), p))
    if result is None:
        cycle = _find_cycle(list(st.flat), flat_edges)
        tops = sorted({st.flat[p].top for p in cycle})
        for nid in tops:
            st.error(nid, "a layer definition wires a cycle: " + " → ".join(cycle))
        return None
    return result


def _kahn(nodes: list[str], edges: list[tuple[str, str]], key) -> list[str] | None:
    """Topological order, smallest *key* first among the ready nodes; None on a cycle."""
    import heapq

    children: dict[str, list[str]] = {n: [] for n in nodes}
    indegree = dict.fromkeys(nodes, 0)
    for src, dst in edges:
        children[src].append(dst)
        indegree[dst] += 1
    rank = {n: i for i, n in enumerate(nodes)}
    ready = [(key(n), rank[n], n) for n in nodes if indegree[n] == 0]
    heapq.heapify(ready)
    result = []
    while ready:
        node = heapq.heappop(ready)[2]
        result.append(node)
        for child in children[node]:
            indegree[child] -= 1
            if indegree[child] == 0:
                heapq.heappush(ready, (key(child), rank[child], child))
    return result if len(result) == len(nodes) else None


def _find_cycle(nodes: list[str], edges: list[tuple[str, str]]) -> list[str]:
    import networkx as nx

    g = nx.DiGraph()
    g.add_nodes_from(nodes)
    g.add_edges_from(edges)
    return [u for u, _ in nx.find_cycle(g)]


def _gather_inputs(st: Expansion, f: Flat, values: dict) -> tuple[list, list, bool]:
    """Input value names and types for *f*, in port order (variadic ports expanded)."""
    names: list[str | None] = []
    types: list[TensorType | None] = []
    ready = True
    for port in f.spec.inputs:
        if port.variadic:
            keys = sorted(st.variadic.get(f.path, {}).get(port.name, []))
            if [i for i, _ in keys] != list(range(len(keys))):
                st.error(f.top, f"{where(f.path)}variadic input '{port.name}' must be wired "
                         f"as {port.name}[0], {port.name}[1], … without gaps", port.name)
                return names, types, False
            if not keys and not port.optional:
                st.error(f.top, f"{where(f.path)}input '{port.name}' needs at least one wire",
                         port.name)
                ready = False
            dsts = [d for _, d in keys]
        else:
            dsts = [ValueKey(f.path, port.name)]
        for dst in dsts:
            src = st.edges.get(dst)
            if src is None:
                if port.optional:
                    names.append(None)
                    types.append(None)
                    continue
                st.error(f.top, f"{where(f.path)}input '{port.name}' is not connected",
                         port.name if "." not in f.path else f"{f.path}:{port.name}")
                ready = False
                continue
            real = st.resolve(src)
            value = f"{real.path}:{real.port}" if real else None
            if value is None or value not in values:
                ready = False
                names.append(value)
                types.append(None)
                continue
            t = values[value]
            if port.dtype not in ("any", t.dtype):
                st.error(f.top, f"{where(f.path)}input '{dst.port}' expects {port.dtype} "
                         f"values but receives {t.dtype} from '{value}'", dst.port)
                ready = False
            names.append(value)
            types.append(t)
    return names, types, ready


def _weights(st: Expansion, f: Flat, specs: list, types: list, kind: str) -> dict[str, WeightInfo]:
    out: dict[str, WeightInfo] = {}
    for ws in specs:
        name = f"{f.path}.{ws.name}" if ws.name else f.path
        try:
            shape = tuple(ws.shape(f.params, types))
        except ShapeError as exc:
            st.error(f.top, f"{where(f.path)}{kind} '{ws.name}': {exc.message}", exc.port)
            continue
        if not all(isinstance(d, int) and d >= 0 for d in shape):
            st.error(f.top, f"{where(f.path)}{kind} '{ws.name}' would have shape {list(shape)}; "
                     "weight shapes must be concrete (set the feature sizes explicitly)")
            continue
        init = f.params[ws.init[1:]] if ws.init.startswith("$") else ws.init
        decay = ws.decay and bool(f.params.get("decay", True))
        out[name] = WeightInfo(name, shape, init, f.path, dict(f.params), decay)
    return out


def compile_graph(doc: dict, dtype: str = "float32") -> Program:
    """Compile a checked document. Never raises on bad graphs: see ``Program.diagnostics``.

    Time and memory are linear in the expanded size, which :func:`check_size` bounds.
    The cyclic garbage collector is paused meanwhile: compiling allocates many small objects
    and no cycles, and full collections would make the time grow faster than the size.
    """
    paused = gc.isenabled()
    gc.disable()
    try:
        return _compile(doc, dtype)
    finally:
        if paused:
            gc.enable()


def _compile(doc: dict, dtype: str) -> Program:
    st = Expansion(layer_defs=doc.get("layers", {}))
    order: list[str] | None = None
    if check_size(st, doc):
        expand(st, doc)
        order = _topological(st, doc) if st.flat or doc["nodes"] else []
    values: dict[str, TensorType] = {}
    equations: list[Equation] = []
    parameters: dict[str, WeightInfo] = {}
    state: dict[str, WeightInfo] = {}
    inputs: dict[str, str] = {}
    for path in order or []:
        f = st.flat[path]
        names, types, ready = _gather_inputs(st, f, values)
        if not ready:
            continue
        try:
            out_types = list(f.spec.infer(types, f.params)) if f.spec.infer else []
        except ShapeError as exc:
            st.error(f.top, f"{where(path)}{exc.message}", exc.port)
            continue
        except Exception as exc:  # an op's inference must never take the compiler down
            st.error(f.top, f"{where(path)}shape inference failed: {type(exc).__name__}: {exc}")
            continue
        outs = [f"{path}:{p.name}" for p in f.spec.outputs]
        for name, t in zip(outs, out_types):
            values[name] = t
        w = _weights(st, f, f.spec.weights, types, "weight")
        s = _weights(st, f, f.spec.state, types, "state")
        parameters.update(w)
        state.update(s)
        flops = 0
        if f.spec.flops is not None:
            try:
                flops = int(f.spec.flops(types, out_types, f.params))
            except Exception:
                flops = 0
        eq = Equation(path, f.top, f.spec, f.params, names, outs, types, out_types,
                      {ws.name: n for ws, n in zip(f.spec.weights, w)},
                      {ss.name: n for ss, n in zip(f.spec.state, s)}, flops)
        equations.append(eq)
        if f.spec.name == "input":
            inputs[path] = outs[0]
    return _finish(st, doc, dtype, equations, values, inputs, parameters, state)


def _finish(st: Expansion, doc: dict, dtype: str, equations: list, values: dict, inputs: dict,
            parameters: dict, state: dict) -> Program:
    nodes: dict[str, NodeSummary] = {}
    node_outputs: dict[str, list[str]] = {}
    by_top: dict[str, list[Equation]] = {}
    for eq in equations:
        by_top.setdefault(eq.top, []).append(eq)
    by_id = {n["id"]: n for n in doc["nodes"]}
    seen = list(dict.fromkeys([eq.top for eq in equations] + list(by_id)))
    param_count: dict[str, int] = {}
    for w in parameters.values():
        top = w.node.split(".")[0]
        param_count[top] = param_count.get(top, 0) + w.size
    for nid in seen:
        node = by_id[nid]
        outputs: dict[str, TensorType] = {}
        out_values: list[str] = []
        if nid in st.layer_out_ports:
            for port in st.layer_out_ports[nid]:
                real = st.resolve(st.edges.get(LayerPort(nid, "out", port)), quiet=True)
                if real and f"{real.path}:{real.port}" in values:
                    outputs[port] = values[f"{real.path}:{real.port}"]
                    out_values.append(f"{real.path}:{real.port}")
        elif nid in st.flat:
            for p in st.flat[nid].spec.outputs:
                if f"{nid}:{p.name}" in values:
                    outputs[p.name] = values[f"{nid}:{p.name}"]
                    out_values.append(f"{nid}:{p.name}")
        eqs = by_top.get(nid, [])
        nodes[nid] = NodeSummary(nid, node["type"], outputs, param_count.get(nid, 0),
                                 sum(e.flops for e in eqs))
        node_outputs[nid] = out_values
    edge_types = {}
    for e in doc["edges"]:
        s = e["src"]
        t = nodes.get(s["node"])
        if t is not None and s["port"] in t.outputs:
            edge_types[(s["node"], s["port"], e["dst"]["node"], e["dst"]["port"])] = \
                t.outputs[s["port"]]
    diags = _dedupe(st.diagnostics)
    return Program(equations, values, inputs, parameters, state, nodes, node_outputs, edge_types,
                   diags, dtype)


def _dedupe(diags: list[Diagnostic]) -> list[Diagnostic]:
    return list(dict.fromkeys(diags))


def compile_document(doc: dict, dtype: str = "float32") -> Program:
    """Compile *doc* or raise :class:`GraphError` with every error diagnostic."""
    program = compile_graph(doc, dtype)
    if not program.ok:
        raise GraphError(program.diagnostics)
    return program


def concrete_shape(shape: tuple, sizes: dict[str, int] | None = None, default: int = 3) -> tuple:
    """Replace symbolic dims by *sizes* (or *default*) to build example data."""
    sizes = sizes or {}
    return tuple(d if isinstance(d, int) else sizes.get(d, default) for d in shape)
