"""Document → :class:`~engine.core.program.Program`.

Steps: resolve node types (registry ops, or layer definitions from the document or the
built-in library), check params, expand layers into primitive equations with dotted paths,
resolve layer ports, report cycles with the node ids on them, infer a type for every value
(so every edge gets a shape), size the weights, and order the equations topologically.
Every problem becomes a :class:`~engine.core.program.Diagnostic` naming the top-level node; the
compiler never raises on bad input, :func:`compile_document` raises one
:class:`~engine.base.errors.GraphError` carrying them all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from engine.base.errors import GraphError
from engine.core import registry
from engine.core.params import layer_params, resolve_params, substitute
from engine.core.program import Diagnostic, Equation, NodeSummary, Program, WeightInfo
from engine.core.registry import OpSpec, Port, ShapeError, TensorType

MAX_LAYER_DEPTH = 16
VARIADIC_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\[(\d+)\]$")

Key = tuple  # ("v", path, port) for real ports, ("j", path, "in"|"out", port) for layer ports


@dataclass
class _Flat:
    path: str
    top: str
    spec: OpSpec
    params: dict


@dataclass
class _State:
    layer_defs: dict
    diagnostics: list[Diagnostic] = field(default_factory=list)
    flat: dict[str, _Flat] = field(default_factory=dict)
    edges: dict[Key, Key] = field(default_factory=dict)  # dst key -> src key
    layer_out_ports: dict[str, list[str]] = field(default_factory=dict)  # layer path -> ports

    def error(self, node: str | None, message: str, port: str | None = None) -> None:
        self.diagnostics.append(Diagnostic(node, port, "error", message))

    def warn(self, node: str | None, message: str, port: str | None = None) -> None:
        self.diagnostics.append(Diagnostic(node, port, "warning", message))


def layer_definition(type_name: str, doc_layers: dict) -> dict | None:
    """A layer's definition: the document's own copy first, then the built-in library."""
    if type_name in doc_layers:
        return doc_layers[type_name]
    if registry.has(type_name):
        return registry.get(type_name).layer
    return None


def _port_names(ports: list[Port]) -> set[str]:
    return {p.name for p in ports}


def _split_port(port: str) -> tuple[str, int | None]:
    m = VARIADIC_RE.match(port)
    return (m.group(1), int(m.group(2))) if m else (port, None)


def _inner_label(st: _State, path: str, port: str) -> str:
    return port if "." not in path else f"{path}:{port}"


def _expand(st: _State, body: dict, prefix: str, owner: str | None, top: str | None,
            env: dict, depth: int) -> None:
    """Add the nodes and edges of *body* (the document or a layer definition) to *st*."""
    kinds: dict[str, str] = {}  # local id -> "op" | "layer" | "bad" | "muted" | "off"
    bypass: dict[str, dict] = {}  # muted node -> {output port: input port passed through}
    for node in body.get("nodes", []):
        nid = node["id"]
        path = prefix + nid
        node_top = top or nid
        type_name = node["type"]
        if type_name.startswith("$"):  # a layer param choosing the op, e.g. "$activation"
            chosen = substitute({"type": type_name}, env)
            type_name = chosen["type"] if isinstance(chosen, dict) else type_name
            if not isinstance(type_name, str):
                st.error(node_top, f"{_where(path)}'{node['type']}' must name a node type")
                kinds[nid] = "bad"
                continue
        given = substitute(node.get("params", {}), env)
        if isinstance(given, str):  # substitution error message
            st.error(node_top, f"{_where(path)}{given}")
            kinds[nid] = "bad"
            continue
        if "when" in node:
            enabled = substitute({"when": node["when"]}, env)
            if isinstance(enabled, str):
                st.error(node_top, f"{_where(path)}{enabled}")
                kinds[nid] = "bad"
                continue
            if not enabled["when"]:
                # A muted node (Blender-style): outputs pass an input through, or vanish.
                route = node.get("bypass")
                kinds[nid] = "muted" if isinstance(route, dict) else "off"
                bypass[nid] = route if isinstance(route, dict) else {}
                continue
        ldef = layer_definition(type_name, st.layer_defs)
        if ldef is not None:
            kinds[nid] = "layer"
            if depth >= MAX_LAYER_DEPTH:
                st.error(node_top, f"{_where(path)}layers nested deeper than {MAX_LAYER_DEPTH} "
                         f"(a layer that contains itself?)")
                kinds[nid] = "bad"
                continue
            specs = layer_params(ldef)
            params, problems = resolve_params(specs, given)
            for field_name, message in problems:
                st.error(node_top, f"{_where(path)}param '{field_name}': {message}")
            st.layer_out_ports[path] = [p["name"] for p in ldef.get("outputs", [])]
            _expand(st, ldef, path + ".", path, node_top, params, depth + 1)
            continue
        if not registry.has(type_name):
            st.error(node_top, f"{_where(path)}unknown node type '{type_name}'")
            kinds[nid] = "bad"
            continue
        spec = registry.get(type_name)
        params, problems = resolve_params(spec.params, given)
        for field_name, message in problems:
            st.error(node_top, f"{_where(path)}param '{field_name}': {message}")
        kinds[nid] = "op"
        st.flat[path] = _Flat(path, node_top, spec, params)

    def src_key(end: dict, label: str, other: str | None = None, hops: int = 0) -> Key | None:
        nid, port = end["node"], end["port"]
        if nid == "$in" and owner is not None:
            return ("j", owner, "in", port)
        kind = kinds.get(nid)
        if kind in ("muted", "off"):
            through = bypass[nid].get(port)
            feeding = [e["src"] for e in body.get("edges", [])
                       if e["dst"]["node"] == nid and e["dst"]["port"] == through]
            if kind == "off" or not feeding or hops > 64:
                return None
            return src_key(feeding[0], label, other, hops + 1)
        if kind is None:
            st.error(top or other, f"{label}: no node '{nid}' in the graph")
            return None
        if kind == "bad":
            return None
        path = prefix + nid
        if kind == "layer":
            if port not in st.layer_out_ports.get(path, []):
                st.error(top or nid, f"{_where(path)}layer has no output port '{port}'", port)
                return None
            return ("j", path, "out", port)
        spec = st.flat[path].spec
        if port not in _port_names(spec.outputs):
            st.error(top or nid, f"{_where(path)}'{spec.name}' has no output port '{port}'",
                     port)
            return None
        return ("v", path, port)

    def dst_key(end: dict, label: str, other: str | None = None) -> Key | None:
        nid, port = end["node"], end["port"]
        kind = kinds.get(nid)
        if kind in ("muted", "off"):
            return None
        if kind is None:
            st.error(top or other, f"{label}: no node '{nid}' in the graph")
            return None
        if kind == "bad":
            return None
        path = prefix + nid
        if kind == "layer":
            return ("j", path, "in", port)
        spec = st.flat[path].spec
        base, index = _split_port(port)
        match = [p for p in spec.inputs if p.name == base]
        if not match or match[0].variadic != (index is not None):
            st.error(top or nid, f"{_where(path)}'{spec.name}' has no input port '{port}'", port)
            return None
        return ("v", path, port)

    for i, edge in enumerate(body.get("edges", [])):
        label = f"edge {edge['src']['node']}:{edge['src']['port']} → " \
                f"{edge['dst']['node']}:{edge['dst']['port']}"
        s = src_key(edge["src"], label + f" (edges[{i}])", edge["dst"]["node"])
        d = dst_key(edge["dst"], label + f" (edges[{i}])", edge["src"]["node"])
        if s is None or d is None:
            continue
        if d in st.edges:
            node = top or edge["dst"]["node"]
            st.error(node, f"{_where(prefix + edge['dst']['node'])}input '{edge['dst']['port']}' "
                     f"is connected twice", edge["dst"]["port"])
            continue
        st.edges[d] = s
    if owner is not None:
        for out in body.get("outputs", []):
            s = src_key({"node": out["node"], "port": out["port"]}, f"layer output '{out['name']}'")
            if s is not None:
                st.edges[("j", owner, "out", out["name"])] = s


def _where(path: str) -> str:
    return f"{path}: " if "." in path else ""


def _resolve(st: _State, key: Key) -> Key | None:
    """Follow a source key through layer ports to the real value that feeds it."""
    for _ in range(10_000):
        if key[0] == "v":
            return key
        nxt = st.edges.get(key)
        if nxt is None:
            path, direction, port = key[1], key[2], key[3]
            top = path.split(".")[0]
            if direction == "in":
                st.error(top, f"{_where(path)}layer input '{port}' is not connected", port)
            else:
                st.error(top, f"{_where(path)}layer output '{port}' is not wired inside", port)
            return None
        key = nxt
    return None


def _topological(st: _State, doc: dict) -> list[str] | None:
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
        if dst[0] != "v":
            continue
        real = _resolve(st, src)
        if real is not None and real[1] in st.flat:
            flat_edges.append((real[1], dst[1]))
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


def _gather_inputs(st: _State, f: _Flat, values: dict) -> tuple[list, list, bool]:
    """Input value names and types for *f*, in port order (variadic ports expanded)."""
    names: list[str | None] = []
    types: list[TensorType | None] = []
    ready = True
    for port in f.spec.inputs:
        if port.variadic:
            keys = sorted(
                (int(m.group(2)), dst) for dst in st.edges
                if dst[0] == "v" and dst[1] == f.path
                and (m := VARIADIC_RE.match(dst[2])) and m.group(1) == port.name
            )
            if [i for i, _ in keys] != list(range(len(keys))):
                st.error(f.top, f"{_where(f.path)}variadic input '{port.name}' must be wired "
                         f"as {port.name}[0], {port.name}[1], … without gaps", port.name)
                return names, types, False
            if not keys and not port.optional:
                st.error(f.top, f"{_where(f.path)}input '{port.name}' needs at least one wire",
                         port.name)
                ready = False
            dsts = [d for _, d in keys]
        else:
            dsts = [("v", f.path, port.name)]
        for dst in dsts:
            src = st.edges.get(dst)
            if src is None:
                if port.optional:
                    names.append(None)
                    types.append(None)
                    continue
                st.error(f.top, f"{_where(f.path)}input '{port.name}' is not connected",
                         _inner_label(st, f.path, port.name))
                ready = False
                continue
            real = _resolve(st, src)
            value = f"{real[1]}:{real[2]}" if real else None
            if value is None or value not in values:
                ready = False
                names.append(value)
                types.append(None)
                continue
            t = values[value]
            if port.dtype not in ("any", t.dtype):
                st.error(f.top, f"{_where(f.path)}input '{dst[2]}' expects {port.dtype} values "
                         f"but receives {t.dtype} from '{value}'", dst[2])
                ready = False
            names.append(value)
            types.append(t)
    return names, types, ready


def _weights(st: _State, f: _Flat, specs: list, types: list, kind: str) -> dict[str, WeightInfo]:
    out: dict[str, WeightInfo] = {}
    for ws in specs:
        name = f"{f.path}.{ws.name}" if ws.name else f.path
        try:
            shape = tuple(ws.shape(f.params, types))
        except ShapeError as exc:
            st.error(f.top, f"{_where(f.path)}{kind} '{ws.name}': {exc.message}", exc.port)
            continue
        if not all(isinstance(d, int) and d >= 0 for d in shape):
            st.error(f.top, f"{_where(f.path)}{kind} '{ws.name}' would have shape {list(shape)}; "
                     "weight shapes must be concrete (set the feature sizes explicitly)")
            continue
        init = f.params[ws.init[1:]] if ws.init.startswith("$") else ws.init
        decay = ws.decay and bool(f.params.get("decay", True))
        out[name] = WeightInfo(name, shape, init, f.path, dict(f.params), decay)
    return out


def compile_graph(doc: dict, dtype: str = "float32") -> Program:
    """Compile a checked document. Never raises on bad graphs: see ``Program.diagnostics``."""
    st = _State(layer_defs=doc.get("layers", {}))
    _expand(st, doc, "", None, None, {}, 0)
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
            st.error(f.top, f"{_where(path)}{exc.message}", exc.port)
            continue
        except Exception as exc:  # an op's inference must never take the compiler down
            st.error(f.top, f"{_where(path)}shape inference failed: {type(exc).__name__}: {exc}")
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


def _finish(st: _State, doc: dict, dtype: str, equations: list, values: dict, inputs: dict,
            parameters: dict, state: dict) -> Program:
    nodes: dict[str, NodeSummary] = {}
    node_outputs: dict[str, list[str]] = {}
    by_top: dict[str, list[Equation]] = {}
    for eq in equations:
        by_top.setdefault(eq.top, []).append(eq)
    order = [eq.top for eq in equations]
    seen = list(dict.fromkeys(order)) + [n["id"] for n in doc["nodes"] if n["id"] not in order]
    for nid in seen:
        node = next(n for n in doc["nodes"] if n["id"] == nid)
        outputs: dict[str, TensorType] = {}
        out_values: list[str] = []
        if nid in st.layer_out_ports:
            for port in st.layer_out_ports[nid]:
                real = st.edges.get(("j", nid, "out", port))
                real = _resolve_quiet(st, real)
                if real and f"{real[1]}:{real[2]}" in values:
                    outputs[port] = values[f"{real[1]}:{real[2]}"]
                    out_values.append(f"{real[1]}:{real[2]}")
        elif nid in st.flat:
            for p in st.flat[nid].spec.outputs:
                if f"{nid}:{p.name}" in values:
                    outputs[p.name] = values[f"{nid}:{p.name}"]
                    out_values.append(f"{nid}:{p.name}")
        eqs = by_top.get(nid, [])
        count = sum(w.size for w in parameters.values() if w.node.split(".")[0] == nid)
        nodes[nid] = NodeSummary(nid, node["type"], outputs, count, sum(e.flops for e in eqs))
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


def _resolve_quiet(st: _State, key: Key | None) -> Key | None:
    for _ in range(10_000):
        if key is None or key[0] == "v":
            return key
        key = st.edges.get(key)
    return None


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
