"""Group into layer, ungroup, and clipboard fragments (copy / paste) — Qt-free edit builders."""

from __future__ import annotations

import copy
import json
import re

from nodegraph.editing.edits import IN_NODE, Refused
from nodegraph.editing.model import GraphModel, Op
from nodegraph.editing.specs import Catalog, fresh_id, port_dtype

CLIPBOARD_KIND = "wiregrad-fragment"


def _centroid(nodes: list[dict]) -> tuple[float, float]:
    pts = [n.get("ui", {}).get("pos", [0, 0]) for n in nodes]
    return (sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts))


def unique_layer_name(model: GraphModel, catalog: Catalog, base: str = "Group") -> str:
    i = 1
    while f"{base}{i}" in model.doc.get("layers", {}) or f"{base}{i}" in catalog.ops:
        i += 1
    return f"{base}{i}"


def _unique(name: str, taken: set[str]) -> str:
    out, i = name, 2
    while out in taken:
        out, i = f"{name}{i}", i + 1
    taken.add(out)
    return out


def group(model: GraphModel, catalog: Catalog, scope, ids, name: str | None = None
          ) -> tuple[str, list[Op]]:
    """Ops replacing nodes *ids* by one layer node whose definition is their subgraph."""
    ids = [n["id"] for n in model.nodes(scope) if n["id"] in set(ids)]
    if not ids:
        raise Refused("select the nodes to group first")
    inside = set(ids)
    name = name or unique_layer_name(model, catalog)
    nodes = [copy.deepcopy(model.node(i, scope)) for i in ids]
    edges = model.edges(scope)
    inner, inputs, outputs = [], [], []
    in_names: dict[tuple, str] = {}
    out_names: dict[tuple, str] = {}
    outer: list[dict] = []
    used_in, used_out = set(), set()
    for e in edges:
        s_in, d_in = e["src"]["node"] in inside, e["dst"]["node"] in inside
        if s_in and d_in:
            inner.append(copy.deepcopy(e))
        elif d_in:  # a wire entering the group: a layer input
            key = (e["src"]["node"], e["src"]["port"])
            if key not in in_names:
                port = re.sub(r"\[\d+\]$", "", e["dst"]["port"])
                in_names[key] = _unique(port, used_in)
                dst_spec = catalog.spec(model.node(e["dst"]["node"], scope)["type"], model.doc)
                inputs.append({"name": in_names[key],
                               "dtype": port_dtype(dst_spec, e["dst"]["port"], False)})
                outer.append({"src": e["src"], "dst": {"node": None, "port": in_names[key]}})
            inner.append({"src": {"node": IN_NODE, "port": in_names[key]}, "dst": e["dst"]})
        elif s_in:  # a wire leaving the group: a layer output
            key = (e["src"]["node"], e["src"]["port"])
            if key not in out_names:
                out_names[key] = _unique(e["src"]["port"], used_out)
                outputs.append({"name": out_names[key], "node": key[0], "port": key[1]})
            outer.append({"src": {"node": None, "port": out_names[key]}, "dst": e["dst"]})
    definition = {"doc": f"{name}: a layer grouped in the editor.", "params": [],
                  "inputs": inputs, "outputs": outputs, "nodes": nodes, "edges": inner}
    from nodegraph.editing.edits import (
        remove_nodes,  # delete every wire touching the group, then it
    )

    taken = {n["id"] for n in model.nodes(scope)} - inside
    gid = fresh_id(re.sub(r"[^A-Za-z0-9_]", "_", name.lower()), taken)
    cx, cy = _centroid(nodes)
    ops = remove_nodes(model, scope, inside)
    ops.append(("set_layer", name, definition))
    ops.append(("insert_node", scope,
                {"id": gid, "type": name, "params": {}, "ui": {"pos": [cx, cy]}}, None))
    for e in outer:
        e = copy.deepcopy(e)
        for end in ("src", "dst"):
            if e[end]["node"] is None:
                e[end]["node"] = gid
        ops.append(("insert_edge", scope, e, None))
    return gid, ops


def _substitute(value, params: dict, defaults: dict):
    if isinstance(value, str) and value.startswith("$"):
        ref = value[1:]
        if ref in params or ref in defaults:
            return params.get(ref, defaults.get(ref))
        raise Refused(f"cannot ungroup: the layer uses the expression '{value}'")
    if isinstance(value, list):
        return [_substitute(v, params, defaults) for v in value]
    return value


def ungroup(model: GraphModel, catalog: Catalog, scope, gid: str) -> list[Op]:
    """Ops replacing layer node *gid* by its inside (wires re-attached, positions kept)."""
    gnode = model.node(gid, scope)
    ldef = catalog.layer_definition(gnode["type"], model.doc)
    if ldef is None:
        raise Refused(f"{gid} is not a layer")
    if any("when" in n or "bypass" in n for n in ldef.get("nodes", [])):
        raise Refused(f"cannot ungroup {gid}: its inside switches nodes on parameters")
    defaults = {p["name"]: p.get("default") for p in ldef.get("params", [])}
    params = gnode.get("params", {})
    taken = {n["id"] for n in model.nodes(scope)} - {gid}
    rename: dict[str, str] = {}
    inner_nodes = []
    for n in ldef.get("nodes", []):
        new = copy.deepcopy(n)
        new["id"] = rename[n["id"]] = fresh_id(n["id"], taken)
        taken.add(new["id"])
        new["params"] = {k: _substitute(v, params, defaults)
                         for k, v in n.get("params", {}).items()}
        inner_nodes.append(new)
    cx, cy = _centroid(inner_nodes) if inner_nodes else (0.0, 0.0)
    gx, gy = gnode.get("ui", {}).get("pos", [0, 0])
    if not any("pos" in n.get("ui", {}) for n in inner_nodes):
        for k, n in enumerate(inner_nodes):  # built-in layers carry no positions
            n["ui"] = {"pos": [gx + 240.0 * k, gy]}
    elif (gx, gy) != (cx, cy):
        for n in inner_nodes:
            p = n.setdefault("ui", {}).setdefault("pos", [cx, cy])
            n["ui"]["pos"] = [p[0] + gx - cx, p[1] + gy - cy]
    edges = model.edges(scope)
    feeds = {e["dst"]["port"]: e["src"] for e in edges if e["dst"]["node"] == gid}
    outs = {o["name"]: o for o in ldef.get("outputs", [])}
    new_edges = []
    for e in ldef.get("edges", []):
        dst = {"node": rename[e["dst"]["node"]], "port": e["dst"]["port"]}
        if e["src"]["node"] == IN_NODE:
            if e["src"]["port"] in feeds:
                new_edges.append({"src": dict(feeds[e["src"]["port"]]), "dst": dst})
        else:
            new_edges.append({"src": {"node": rename[e["src"]["node"]],
                                      "port": e["src"]["port"]}, "dst": dst})
    for e in edges:
        if e["src"]["node"] == gid and e["src"]["port"] in outs:
            o = outs[e["src"]["port"]]
            new_edges.append({"src": {"node": rename[o["node"]], "port": o["port"]},
                              "dst": dict(e["dst"])})
    from nodegraph.editing.edits import remove_nodes

    ops = remove_nodes(model, scope, [gid])
    after = model.node_after(gid, scope)  # the inside takes the group node's place
    ops += [("insert_node", scope, n, after) for n in inner_nodes]
    ops += [("insert_edge", scope, e, None) for e in new_edges]
    name = gnode["type"]
    still_used = any(n["type"] == name and n["id"] != gid for n in model.nodes(scope)) or any(
        n["type"] == name for lname, ld in model.doc.get("layers", {}).items()
        if lname != name for n in ld.get("nodes", []))
    if name in model.doc.get("layers", {}) and not still_used and scope != name:
        ops.append(("set_layer", name, _missing()))
    return ops


def _missing():
    from nodegraph.editing.model import MISSING

    return MISSING


# ------------------------------------------------------------------ clipboard


def fragment(model: GraphModel, catalog: Catalog, scope, ids) -> dict:
    """The JSON-able clipboard fragment of nodes *ids* with the wires among them."""
    inside = set(ids)
    nodes = [copy.deepcopy(n) for n in model.nodes(scope) if n["id"] in inside]
    edges = [copy.deepcopy(e) for e in model.edges(scope)
             if e["src"]["node"] in inside and e["dst"]["node"] in inside]
    layers = {}
    for n in nodes:
        if n["type"] in model.doc.get("layers", {}) and not catalog.builtin_layer(n["type"]):
            layers[n["type"]] = copy.deepcopy(model.doc["layers"][n["type"]])
    return {"kind": CLIPBOARD_KIND, "version": 1, "nodes": nodes, "edges": edges,
            "layers": layers}


def fragment_text(frag: dict) -> str:
    return json.dumps(frag, sort_keys=True)


def parse_fragment(text: str) -> dict | None:
    """A fragment from clipboard text, or None when the text is not one (checked shape)."""
    if not text or len(text) > 8_000_000:
        return None
    try:
        frag = json.loads(text)
    except ValueError:
        return None
    if not isinstance(frag, dict) or frag.get("kind") != CLIPBOARD_KIND:
        return None
    from engine.api import document

    try:  # reuse the loader's structure checks on a throwaway document
        probe = document.new_document()
        probe.update(nodes=frag.get("nodes", []), edges=frag.get("edges", []),
                     layers=frag.get("layers", {}))
        document.from_dict(probe)
    except Exception:
        return None
    return frag


def paste(model: GraphModel, scope, frag: dict, offset=(40.0, 40.0)
          ) -> tuple[list[str], list[Op]]:
    """Ops adding *frag* with new readable ids, its internal wires and missing layers."""
    taken = {n["id"] for n in model.nodes(scope)}
    rename = {}
    nodes = []
    for n in frag["nodes"]:
        new = copy.deepcopy(n)
        new["id"] = rename[n["id"]] = fresh_id(n["id"], taken)
        taken.add(new["id"])
        p = new.setdefault("ui", {}).get("pos", [0, 0])
        new["ui"]["pos"] = [p[0] + offset[0], p[1] + offset[1]]
        nodes.append(new)
    ops: list[Op] = []
    for name, ldef in frag.get("layers", {}).items():
        if name not in model.doc.get("layers", {}):
            ops.append(("set_layer", name, ldef))
    ops += [("insert_node", scope, n, None) for n in nodes]
    for e in frag["edges"]:
        if e["src"]["node"] in rename and e["dst"]["node"] in rename:
            new = {"src": {"node": rename[e["src"]["node"]], "port": e["src"]["port"]},
                   "dst": {"node": rename[e["dst"]["node"]], "port": e["dst"]["port"]}}
            ops.append(("insert_edge", scope, new, None))
    return [n["id"] for n in nodes], ops
