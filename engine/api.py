"""The engine's public surface for the editor and the CLI: plain data in, plain data out.

The editor imports only this module (and ``engine.document``); nothing here imports Qt.
"""

from __future__ import annotations

from pathlib import Path

from engine import document, presets, registry
from engine.errors import WiregradError
from engine.registry import format_shape


def catalog() -> dict:
    """Every node type as JSON-able data (palette, inspector, validator)."""
    return registry.catalog()


def list_presets() -> list[dict]:
    return presets.list_presets()


def open_graph(graph: str | Path) -> tuple[dict, Path]:
    """Load a document by path or preset name."""
    return presets.load(graph)


def layer_types_used(doc: dict) -> list[str]:
    """Names of the layer types *doc* uses, directly or inside other layers."""
    from engine.compile import layer_definition

    seen: list[str] = []
    stack = [n["type"] for n in doc["nodes"]]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        ldef = layer_definition(name, doc.get("layers", {}))
        if ldef is None:
            continue
        seen.append(name)
        stack.extend(n["type"] for n in ldef.get("nodes", []))
    return sorted(seen)


def embed_layer_definitions(doc: dict) -> dict:
    """A copy of *doc* whose ``layers`` holds every layer type it uses (self-contained)."""
    from engine.compile import layer_definition

    out = dict(doc)
    layers = dict(doc.get("layers", {}))
    for name in layer_types_used(doc):
        if name not in layers:
            layers[name] = layer_definition(name, layers)
    out["layers"] = layers
    return out


def validate(doc: dict, dtype: str = "float32") -> dict:
    """Shapes, parameter counts, FLOPs and diagnostics as plain data (``validate --json``)."""
    from engine.compile import compile_graph

    program = compile_graph(doc, dtype)
    nodes = []
    for node in doc["nodes"]:
        summary = program.nodes.get(node["id"])
        outputs = {p: list(t.shape) for p, t in summary.outputs.items()} if summary else {}
        nodes.append({
            "id": node["id"],
            "type": node["type"],
            "outputs": outputs,
            "param_count": summary.param_count if summary else 0,
            "flops": summary.flops if summary else 0,
        })
    edges = [
        {"src": {"node": s, "port": sp}, "dst": {"node": d, "port": dp},
         "shape": list(t.shape), "label": format_shape(t.shape), "dtype": t.dtype}
        for (s, sp, d, dp), t in program.edge_types.items()
    ]
    return {
        "ok": program.ok,
        "nodes": nodes,
        "edges": edges,
        "total_params": program.total_params,
        "total_flops": program.total_flops,
        "diagnostics": [d.to_json() for d in program.diagnostics],
    }


def gradcheck(doc: dict, node: str | None = None, seed: int = 0) -> dict:
    """Float64 gradient check of every node (or one); ``{"ok", "nodes": [...]}``."""
    from engine.gradcheck import gradcheck_document

    if node is not None and node not in {n["id"] for n in doc["nodes"]}:
        raise WiregradError("no such node in the graph", node=node)
    reports = gradcheck_document(doc, node, seed)
    return {"ok": all(r.ok for r in reports), "nodes": [r.to_json() for r in reports]}


def warm_up(doc: dict | None = None, progress=None) -> int:
    """Compile the Numba kernels a graph needs (all kernels when *doc* is None).

    Returns the number of kernels warmed; *progress(done, total)* is called as they compile.
    """
    from engine.warmup import warm_up as _warm

    return _warm(doc, progress)


__all__ = [
    "catalog",
    "document",
    "embed_layer_definitions",
    "gradcheck",
    "layer_types_used",
    "list_presets",
    "open_graph",
    "validate",
    "warm_up",
]
