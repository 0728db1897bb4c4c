"""Edit builders: user intents → lists of primitive model edits (Qt-free).

Each function reads the model and returns the ops that :meth:`GraphModel.apply_all` runs;
nothing here mutates. Wiring rules (dtype, one wire per input, cycles) live here too.
"""

from __future__ import annotations

import networkx as nx

from nodegraph.editing.model import MISSING, GraphModel, Op, edge_key
from nodegraph.editing.specs import Catalog, input_ports, new_id, port_dtype

IN_NODE = "$in"
OUT_NODE = "$out"


class Refused(Exception):
    """An intent the wiring rules refuse; the message says why (shown by the cursor)."""


def taken_ids(model: GraphModel, scope: str | None) -> set[str]:
    return {n["id"] for n in model.nodes(scope)}


def add_node(model: GraphModel, catalog: Catalog, scope, type_name: str, pos,
             params: dict | None = None, node_id: str | None = None) -> tuple[str, list[Op]]:
    spec = catalog.spec(type_name, model.doc)
    node_id = node_id or new_id(type_name, taken_ids(model, scope),
                                spec["category"] if spec else None)
    node = {"id": node_id, "type": type_name, "params": dict(params or {}),
            "ui": {"pos": [round(float(pos[0]), 1), round(float(pos[1]), 1)]}}
    return node_id, [("insert_node", scope, node, None)]


def remove(model: GraphModel, scope, ids=(), edges_to_remove=()) -> list[Op]:
    """Ops deleting the wires *edges_to_remove*, every wire touching nodes *ids*, then those
    nodes (each wire once; wires and nodes addressed by key and id)."""
    ids = set(ids)
    keys = {edge_key(e) for e in edges_to_remove}
    ops: list[Op] = [("delete_edge", scope, edge_key(e)) for e in model.edges(scope)
                     if edge_key(e) in keys or e["src"]["node"] in ids
                     or e["dst"]["node"] in ids]
    ops += [("delete_node", scope, n["id"]) for n in model.nodes(scope) if n["id"] in ids]
    return ops


def remove_nodes(model: GraphModel, scope, ids) -> list[Op]:
    """Ops deleting nodes *ids* and every wire touching them."""
    return remove(model, scope, ids)


def remove_edges(model: GraphModel, scope, edges_to_remove: list[dict]) -> list[Op]:
    """Ops deleting those of *edges_to_remove* that are in the graph."""
    return remove(model, scope, (), edges_to_remove)


def would_cycle(model: GraphModel, scope, src: str, dst: str) -> bool:
    if src == dst:
        return True
    g = nx.DiGraph()
    g.add_edges_from((e["src"]["node"], e["dst"]["node"]) for e in model.edges(scope))
    return g.has_node(dst) and g.has_node(src) and nx.has_path(g, dst, src)


def node_spec(model: GraphModel, catalog: Catalog, scope, node_id: str) -> dict | None:
    if node_id in (IN_NODE, OUT_NODE):
        return None
    return catalog.spec(model.node(node_id, scope)["type"], model.doc)


def check_dtypes(model, catalog, scope, src, sport, dst, dport) -> None:
    a = "any" if src == IN_NODE else port_dtype(node_spec(model, catalog, scope, src), sport, True)
    b = "any" if dst == OUT_NODE else port_dtype(node_spec(model, catalog, scope, dst), dport,
                                                 False)
    if "any" not in (a, b) and a != b:
        raise Refused(f"type mismatch: {src}.{sport} gives {a} values but "
                      f"{dst}.{dport} takes {b}")


def connect(model: GraphModel, catalog: Catalog, scope, src: str, sport: str, dst: str,
            dport: str) -> list[Op]:
    """Ops wiring src.sport → dst.dport, replacing the input's old wire (structural checks)."""
    if src == OUT_NODE or dst == IN_NODE:
        raise Refused("wire from an output port to an input port")
    for nid in (src, dst):
        if nid not in (IN_NODE, OUT_NODE) and not model.has_node(nid, scope):
            raise Refused(f"there is no node '{nid}'")
    if src != IN_NODE and dst != OUT_NODE and would_cycle(model, scope, src, dst):
        raise Refused(f"this wire would make a cycle ({dst} already feeds {src})")
    check_dtypes(model, catalog, scope, src, sport, dst, dport)
    if dst == OUT_NODE:
        return _connect_layer_output(model, scope, src, sport, dport)
    ops: list[Op] = []
    for e in model.edges(scope):
        if e["dst"]["node"] == dst and e["dst"]["port"] == dport:
            if e["src"] == {"node": src, "port": sport}:
                raise Refused("these ports are already connected")
            ops.append(("delete_edge", scope, edge_key(e)))
    edge = {"src": {"node": src, "port": sport}, "dst": {"node": dst, "port": dport}}
    ops.append(("insert_edge", scope, edge, None))
    return ops


def insert_on_wire(model: GraphModel, catalog: Catalog, scope, edge: dict, type_name: str,
                   pos, params: dict | None = None) -> tuple[str, list[Op]]:
    """Ops adding a *type_name* node into wire *edge*: source → its first input, its first
    output → the old destination (refused when its ports cannot take the wire's dtype)."""
    spec = catalog.spec(type_name, model.doc)
    if not spec or not spec["inputs"] or not spec["outputs"]:
        raise Refused(f"{type_name} has no input and output to put into a wire")
    ins, outs = input_ports(spec, "", []), spec["outputs"]
    node_id, ops = add_node(model, catalog, scope, type_name, pos, params)
    trial = GraphModel(model.doc)
    trial.apply_all(ops)
    src, dst = edge["src"], edge["dst"]
    check_dtypes(trial, catalog, scope, src["node"], src["port"], node_id, ins[0]["name"])
    check_dtypes(trial, catalog, scope, node_id, outs[0]["name"], dst["node"], dst["port"])
    ops.append(("delete_edge", scope, edge_key(edge)))
    ops.append(("insert_edge", scope, {"src": dict(src),
                                       "dst": {"node": node_id, "port": ins[0]["name"]}}, None))
    ops.append(("insert_edge", scope, {"src": {"node": node_id, "port": outs[0]["name"]},
                                       "dst": dict(dst)}, None))
    return node_id, ops


def wire_into(model: GraphModel, scope, dst: str, dport: str) -> dict | None:
    """The stored wire plugged into input *dst.dport*, or None (layer outputs are not wires)."""
    for edge in model.edges(scope):
        if edge["dst"]["node"] == dst and edge["dst"]["port"] == dport:
            return edge
    return None


def move_wire(model: GraphModel, catalog: Catalog, scope, edge: dict, dst: str,
              dport: str) -> list[Op]:
    """Ops moving *edge* onto input dst.dport: its removal, then the wire from its source
    (replacing the target's old wire); refused like :func:`connect`, judged without *edge*."""
    if (edge["dst"]["node"], edge["dst"]["port"]) == (dst, dport):
        raise Refused("the wire is already plugged into this input")
    removal = remove_edges(model, scope, [edge])
    if not removal:
        raise Refused("this wire is no longer in the graph")
    trial = GraphModel(model.doc)  # the rules as they stand once the wire is gone
    trial.apply_all(removal)
    return removal + connect(trial, catalog, scope, edge["src"]["node"], edge["src"]["port"],
                             dst, dport)


def _connect_layer_output(model: GraphModel, scope, src, sport, name) -> list[Op]:
    outputs = [dict(o) for o in model.body(scope).get("outputs", [])]
    for out in outputs:
        if out["name"] == name:
            out.update(node=src, port=sport)
    return [("set_layer_key", scope, "outputs", outputs)]


def set_param(model: GraphModel, scope, node_id: str, name: str, value) -> list[Op]:
    params = model.node(node_id, scope).get("params", {})
    if params.get(name, MISSING) == value and value is not MISSING:
        return []
    if value is MISSING and name not in params:
        return []
    return [("set_param", scope, node_id, name, value)]


def set_training(model: GraphModel, key: str, value) -> list[Op]:
    """Ops setting one setting of the document's ``training`` block (steps, seed, …)."""
    if (model.doc.get("training") or {}).get(key, MISSING) == value:
        return []
    return [("set_training", key, value)]


def move(model: GraphModel, scope, new_positions: dict[str, tuple[float, float]]) -> list[Op]:
    return [("set_ui", scope, nid, "pos", [round(float(x), 1), round(float(y), 1)])
            for nid, (x, y) in new_positions.items()]


def set_trainable(model: GraphModel, scope, node_id: str, trainable: bool) -> list[Op]:
    """Freeze (``"trainable": false``) or unfreeze a node's parameters; absent means true."""
    return [("set_field", scope, node_id, "trainable", MISSING if trainable else False)]


def set_title(model: GraphModel, scope, node_id: str, title: str) -> list[Op]:
    return [("set_ui", scope, node_id, "title", title if title else MISSING)]


# ------------------------------------------------------------------ frames (comments)


def add_frame(model: GraphModel, rect, title: str = "Comment") -> tuple[str, list[Op]]:
    frames = [dict(f) for f in model.frames()]
    taken = {f["id"] for f in frames}
    i = 1
    while f"frame{i}" in taken:
        i += 1
    frame = {"id": f"frame{i}", "title": title, "rect": [round(v, 1) for v in rect]}
    return frame["id"], [("set_extra", "frames", frames + [frame])]


def update_frames(model: GraphModel, changes: dict[str, dict]) -> list[Op]:
    """Ops setting fields of frames by id (``{"frame1": {"rect": [...]}}``); empty → no op."""
    frames = []
    for frame in model.frames():
        frame = dict(frame)
        frame.update(changes.get(frame["id"], {}))
        frames.append(frame)
    remaining = [f for f in frames if not changes.get(f["id"], {}).get("deleted")]
    return [("set_extra", "frames", remaining if remaining else MISSING)]
