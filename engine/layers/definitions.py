"""Which layer types a document uses, and a self-contained copy of it with their definitions."""

from __future__ import annotations

from engine.core.compile import layer_definition


def layer_types_used(doc: dict) -> list[str]:
    """Names of the layer types *doc* uses, directly or inside other layers."""
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
    out = dict(doc)
    layers = dict(doc.get("layers", {}))
    for name in layer_types_used(doc):
        if name not in layers:
            layers[name] = layer_definition(name, layers)
    out["layers"] = layers
    return out
