"""Graph documents for the editor: the op catalog, user layers, presets, validation,
gradient checks and kernel warm-up."""

from __future__ import annotations

from pathlib import Path

from engine.core import registry
from engine.core.registry import format_shape
from engine.graphs import presets


def catalog(include_user_layers: bool = True) -> dict:
    """Every node type as JSON-able data (palette, inspector, validator).

    Built-in layers carry their ``definition`` (so the editor can show their inside);
    layers from the user library are added with ``"user": true``.
    """
    from engine.core.hot import definition_hot_params

    data = registry.catalog()
    for op in data["ops"]:
        if op["is_layer"]:
            op["definition"] = registry.get(op["name"]).layer
            op["user"] = False
            hot = definition_hot_params(op["definition"])
            for p in op["params"]:
                p["hot"] = p["name"] in hot
    if include_user_layers:
        from engine.layers import library

        for name, definition in library.list_layers().items():
            data["ops"].append(layer_entry(name, definition, user=True))
    return data


def layer_entry(name: str, definition: dict, user: bool = True) -> dict:
    """A catalog entry for a layer definition (user layers, a document's own layers)."""
    from engine.core.hot import definition_hot_params
    from engine.core.params import layer_params

    hot = definition_hot_params(definition)
    doc = definition.get("doc") or name
    return {
        "name": name, "category": "layer", "family": "user" if user else "layers",
        "summary": doc.strip().splitlines()[0], "doc": doc.strip(),
        "inputs": [{"name": p["name"], "dtype": p.get("dtype", "float"), "variadic": False,
                    "optional": False, "doc": p.get("doc", "")}
                   for p in definition.get("inputs", [])],
        "outputs": [{"name": p["name"], "dtype": "float", "variadic": False, "optional": False,
                     "doc": ""} for p in definition.get("outputs", [])],
        "params": [{**p.to_json(), "hot": p.name in hot} for p in layer_params(definition)],
        "weights": [], "state": [], "is_layer": True, "definition": definition, "user": user,
    }


def save_user_layer(name: str, definition: dict) -> str:
    """Save a layer definition to the user library; returns the file path."""
    from engine.layers import library

    return str(library.save_layer(name, definition))


def delete_user_layer(name: str) -> None:
    from engine.layers import library

    library.delete_layer(name)


def list_presets() -> list[dict]:
    return presets.list_presets()


def open_graph(graph: str | Path) -> tuple[dict, Path]:
    """Load a document by path or preset name."""
    return presets.load(graph)


def layer_types_used(doc: dict) -> list[str]:
    """Names of the layer types *doc* uses, directly or inside other layers."""
    from engine.layers.definitions import layer_types_used as used

    return used(doc)


def embed_layer_definitions(doc: dict) -> dict:
    """A copy of *doc* whose ``layers`` holds every layer type it uses (self-contained)."""
    from engine.layers.definitions import embed_layer_definitions as embed

    return embed(doc)


def validate(doc: dict, dtype: str = "float32") -> dict:
    """Shapes, parameter counts, FLOPs and diagnostics as plain data (``validate --json``)."""
    from engine.core.compile import compile_graph

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


def gradcheck(doc: dict, node: str | None = None, seed: int = 0,
              base_dir: str | Path | None = None) -> dict:
    """Float64 gradient check of every node (or one); ``{"ok", "nodes": [...]}``.

    *base_dir* resolves relative data-file paths (the document's folder).
    """
    from engine.core.gradcheck import gradcheck_document, summarize
    from engine.data.examples import feeds_for

    return summarize(gradcheck_document(doc, node, seed, feeds_for(seed, base_dir)))


def warm_up(doc: dict | None = None, progress=None) -> int:
    """Compile the Numba kernels a graph needs (all kernels when *doc* is None).

    Returns the number of kernels warmed; *progress(done, total)* is called as they compile.
    """
    from engine.core.warmup import warm_up as _warm

    return _warm(doc, progress)
