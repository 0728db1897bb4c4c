"""Layer expansion: a document's nodes and edges flattened into primitive ops and wires.

Two steps per graph body (the document, or a layer definition at one use site):

1. **Node classification** (:func:`_classify`): every node becomes a :class:`Kind` — a
   primitive op (added to :attr:`Expansion.flat`), a layer (expanded recursively), muted or
   off (``when`` false), or bad (reported).
2. **Edge resolution** (:class:`_Wiring`): every edge's ends become keys — a
   :class:`ValueKey` for an op's port, a :class:`LayerPort` for a layer's input or output —
   and :attr:`Expansion.edges` maps each destination key to its source key. Muted nodes pass
   their bypass input straight through (looked up in an index, not by scanning the edges).

Before anything is expanded, :func:`engine.core.bounds.check_size` bounds the expanded size
(primitive nodes and edges) from the layer definitions alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from typing import NamedTuple

from engine.core import registry
from engine.core.params import layer_params, resolve_params, substitute
from engine.core.program import Diagnostic
from engine.core.registry import OpSpec

MAX_LAYER_DEPTH = 16
VARIADIC_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\[(\d+)\]$")


class Kind(Enum):
    """What a node of a graph body turned out to be."""

    OP = "op"
    LAYER = "layer"
    BAD = "bad"
    MUTED = "muted"  # ``when`` false, outputs pass an input through
    OFF = "off"  # ``when`` false, no bypass: outputs vanish


class ValueKey(NamedTuple):
    """A port of a primitive op (``path`` is its dotted path)."""

    path: str
    port: str


class LayerPort(NamedTuple):
    """An input or output port of a layer instance; ``direction`` is ``"in"`` or ``"out"``."""

    path: str
    direction: str
    port: str


Key = ValueKey | LayerPort


class Classified(NamedTuple):
    kind: Kind
    bypass: dict  # muted: {output port: input port passed through}


@dataclass
class Flat:
    """One primitive op of the expanded graph."""

    path: str
    top: str
    spec: OpSpec
    params: dict


@dataclass
class Expansion:
    """Everything layer expansion produces, and the diagnostics found on the way."""

    layer_defs: dict
    diagnostics: list[Diagnostic] = field(default_factory=list)
    flat: dict[str, Flat] = field(default_factory=dict)
    edges: dict[Key, Key] = field(default_factory=dict)  # destination -> source
    layer_out_ports: dict[str, list[str]] = field(default_factory=dict)  # layer path -> ports
    # op path -> variadic port base -> [(index, destination key)]
    variadic: dict[str, dict[str, list[tuple[int, ValueKey]]]] = field(default_factory=dict)
    resolved: dict[Key, ValueKey | None] = field(default_factory=dict)
    too_deep: set[str] = field(default_factory=set)  # top-level nodes reported as such

    def error(self, node: str | None, message: str, port: str | None = None) -> None:
        self.diagnostics.append(Diagnostic(node, port, "error", message))

    def connect(self, dst: Key, src: Key) -> None:
        self.edges[dst] = src
        if isinstance(dst, ValueKey) and "[" in dst.port:
            m = VARIADIC_RE.match(dst.port)
            if m:
                ports = self.variadic.setdefault(dst.path, {})
                ports.setdefault(m.group(1), []).append((int(m.group(2)), dst))

    def resolve(self, key: Key | None, quiet: bool = False) -> ValueKey | None:
        """Follow *key* through layer ports to the op port that feeds it (memoised)."""
        seen: list[Key] = []
        result: ValueKey | None = None
        for _ in range(10_000):
            if key is None or isinstance(key, ValueKey):
                result = key
                break
            if key in self.resolved:
                result = self.resolved[key]
                break
            seen.append(key)
            nxt = self.edges.get(key)
            if nxt is None:
                if quiet:
                    return None
                top = key.path.split(".")[0]
                if key.direction == "in":
                    self.error(top, f"{where(key.path)}layer input '{key.port}' is not "
                               "connected", key.port)
                else:
                    self.error(top, f"{where(key.path)}layer output '{key.port}' is not wired "
                               "inside", key.port)
                break
            key = nxt
        for k in seen:
            self.resolved[k] = result
        return result


def where(path: str) -> str:
    return f"{path}: " if "." in path else ""


def layer_definition(type_name: str, doc_layers: dict) -> dict | None:
    """A layer's definition: the document's own copy first, then the built-in library."""
    if type_name in doc_layers:
        return doc_layers[type_name]
    if registry.has(type_name):
        return registry.get(type_name).layer
    return None


def expand(st: Expansion, body: dict, prefix: str = "", owner: str | None = None,
           top: str | None = None, env: dict | None = None, depth: int = 0) -> None:
    """Add the nodes and edges of *body* (the document or a layer definition) to *st*."""
    kinds = {node["id"]: _classify(st, node, prefix, top, env or {}, depth)
             for node in body.get("nodes", [])}
    _Wiring(st, body, prefix, owner, top, kinds).run()


# ------------------------------------------------------------------ node classification


def _classify(st: Expansion, node: dict, prefix: str, top: str | None, env: dict,
              depth: int) -> Classified:
    nid = node["id"]
    path = prefix + nid
    node_top = top or nid
    bad = Classified(Kind.BAD, {})
    type_name = node["type"]
    if type_name.startswith("$"):  # a layer param choosing the op, e.g. "$activation"
        chosen = substitute({"type": type_name}, env)
        type_name = chosen["type"] if isinstance(chosen, dict) else type_name
        if not isinstance(type_name, str):
            st.error(node_top, f"{where(path)}'{node['type']}' must name a node type")
            return bad
    given = substitute(node.get("params", {}), env)
    if isinstance(given, str):  # substitution error message
        st.error(node_top, f"{where(path)}{given}")
        return bad
    if "when" in node:
        enabled = substitute({"when": node["when"]}, env)
        if isinstance(enabled, str):
            st.error(node_top, f"{where(path)}{enabled}")
            return bad
        if not enabled["when"]:  # muted (Blender-style): outputs pass an input through
            route = node.get("bypass")
            return Classified(Kind.MUTED, route) if isinstance(route, dict) else \
                Classified(Kind.OFF, {})
    ldef = layer_definition(type_name, st.layer_defs)
    if ldef is not None:
        return _classify_layer(st, ldef, given, path, node_top, depth)
    if not registry.has(type_name):
        st.error(node_top, f"{where(path)}unknown node type '{type_name}'")
        return bad
    spec = registry.get(type_name)
    params, problems = resolve_params(spec.params, given)
    for field_name, message in problems:
        st.error(node_top, f"{where(path)}param '{field_name}': {message}")
    st.flat[path] = Flat(path, node_top, spec, params)
    return Classified(Kind.OP, {})


def _classify_layer(st: Expansion, ldef: dict, given: dict, path: str, top: str,
                    depth: int) -> Classified:
    if top in st.too_deep:  # already refused: expanding the rest only costs time
        return Classified(Kind.BAD, {})
    if depth >= MAX_LAYER_DEPTH:
        if top not in st.too_deep:  # once per top-level node, not once per leaf
            st.too_deep.add(top)
            st.error(top, f"{where(path)}layers nested deeper than {MAX_LAYER_DEPTH} "
                     "(a layer that contains itself?)")
        return Classified(Kind.BAD, {})
    params, problems = resolve_params(layer_params(ldef), given)
    for field_name, message in problems:
        st.error(top, f"{where(path)}param '{field_name}': {message}")
    st.layer_out_ports[path] = [p["name"] for p in ldef.get("outputs", [])]
    expand(st, ldef, path + ".", path, top, params, depth + 1)
    return Classified(Kind.LAYER, {})


# ------------------------------------------------------------------ edge resolution


class _EdgeLabel:
    """``edge a:out → b:x (edges[3])``, formatted only when an error needs it."""

    __slots__ = ("index", "edge")

    def __init__(self, index: int, edge: dict) -> None:
        self.index, self.edge = index, edge

    def __str__(self) -> str:
        src, dst = self.edge["src"], self.edge["dst"]
        return (f"edge {src['node']}:{src['port']} → {dst['node']}:{dst['port']} "
                f"(edges[{self.index}])")


_PORTS: dict[int, tuple[OpSpec, dict, frozenset]] = {}


def _ports(spec: OpSpec) -> tuple[OpSpec, dict, frozenset]:
    """(*spec*, its input ports by name, its output port names), cached per spec."""
    hit = _PORTS.get(id(spec))
    if hit is None or hit[0] is not spec:
        hit = _PORTS[id(spec)] = (spec, {p.name: p for p in spec.inputs},
                                  frozenset(p.name for p in spec.outputs))
    return hit


def _input_ports(spec: OpSpec) -> dict:
    return _ports(spec)[1]


class _Wiring:
    """Edges of one graph body turned into destination → source keys."""

    def __init__(self, st: Expansion, body: dict, prefix: str, owner: str | None,
                 top: str | None, kinds: dict[str, Classified]) -> None:
        self.st, self.body, self.prefix, self.owner, self.top = st, body, prefix, owner, top
        self.kinds = kinds
        self._feeds: dict[tuple[str, str], dict] | None = None

    def run(self) -> None:
        st = self.st
        for i, edge in enumerate(self.body.get("edges", [])):
            src, dst = edge["src"], edge["dst"]
            label = _EdgeLabel(i, edge)
            s = self.source(src, label, dst["node"])
            d = self.destination(dst, label, src["node"])
            if s is None or d is None:
                continue
            if d in st.edges:
                st.error(self.top or dst["node"], f"{where(self.prefix + dst['node'])}input "
                         f"'{dst['port']}' is connected twice", dst["port"])
                continue
            st.connect(d, s)
        if self.owner is not None:
            for out in self.body.get("outputs", []):
                s = self.source({"node": out["node"], "port": out["port"]},
                                f"layer output '{out['name']}'")
                if s is not None:
                    st.edges[LayerPort(self.owner, "out", out["name"])] = s

    def _feeding(self, nid: str, port: str | None) -> dict | None:
        """The source end wired into port *port* of muted node *nid* (first edge wins)."""
        if self._feeds is None:
            self._feeds = {}
            for e in self.body.get("edges", []):
                d = e["dst"]
                k = self.kinds.get(d["node"])
                if k is not None and k.kind in (Kind.MUTED, Kind.OFF):
                    self._feeds.setdefault((d["node"], d["port"]), e["src"])
        return self._feeds.get((nid, port)) if isinstance(port, str) else None

    def source(self, end: dict, label: object, other: str | None = None) -> Key | None:
        st = self.st
        for _ in range(65):
            nid, port = end["node"], end["port"]
            if nid == "$in" and self.owner is not None:
                return LayerPort(self.owner, "in", port)
            c = self.kinds.get(nid)
            if c is None:
                st.error(self.top or other, f"{label}: no node '{nid}' in the graph")
                return None
            if c.kind in (Kind.MUTED, Kind.OFF):
                feeding = self._feeding(nid, c.bypass.get(port))
                if c.kind is Kind.OFF or feeding is None:
                    return None
                end = feeding
                continue
            return self._source_port(c.kind, nid, port)
        return None

    def _source_port(self, kind: Kind, nid: str, port: str) -> Key | None:
        st = self.st
        if kind is Kind.BAD:
            return None
        path = self.prefix + nid
        if kind is Kind.LAYER:
            if port not in st.layer_out_ports.get(path, []):
                st.error(self.top or nid, f"{where(path)}layer has no output port '{port}'",
                         port)
                return None
            return LayerPort(path, "out", port)
        spec = st.flat[path].spec
        if port not in _ports(spec)[2]:
            st.error(self.top or nid, f"{where(path)}'{spec.name}' has no output port '{port}'",
                     port)
            return None
        return ValueKey(path, port)

    def destination(self, end: dict, label: object, other: str | None = None) -> Key | None:
        st = self.st
        nid, port = end["node"], end["port"]
        c = self.kinds.get(nid)
        if c is None:
            st.error(self.top or other, f"{label}: no node '{nid}' in the graph")
            return None
        if c.kind in (Kind.MUTED, Kind.OFF, Kind.BAD):
            return None
        path = self.prefix + nid
        if c.kind is Kind.LAYER:
            return LayerPort(path, "in", port)
        spec = st.flat[path].spec
        m = VARIADIC_RE.match(port) if "[" in port else None
        base, variadic = (m.group(1), True) if m else (port, False)
        match = _input_ports(spec).get(base)
        if match is None or match.variadic != variadic:
            st.error(self.top or nid, f"{where(path)}'{spec.name}' has no input port '{port}'",
                     port)
            return None
        return ValueKey(path, port)
