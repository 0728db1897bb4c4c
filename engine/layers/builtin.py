"""The built-in layer library. Each layer is a plain subgraph definition (the same format a
document's ``layers`` block uses), registered so the palette and the compiler find it.

Inner node params may reference the layer's params as ``"$name"`` (see engine.params).
"""

from __future__ import annotations

from engine.params import layer_params
from engine.registry import OpSpec, Port, register


def edge(src: str, dst: str) -> dict:
    """``"node:port"`` → ``"node:port"`` shorthand for definitions written in code."""
    (sn, sp), (dn, dp) = src.split(":"), dst.split(":")
    return {"src": {"node": sn, "port": sp}, "dst": {"node": dn, "port": dp}}


def register_layer(name: str, definition: dict) -> OpSpec:
    """Register *definition* as the layer type *name*."""
    return register(OpSpec(
        name=name,
        category="layer",
        doc=definition["doc"],
        inputs=[Port(p["name"], p.get("dtype", "float")) for p in definition["inputs"]],
        outputs=[Port(p["name"]) for p in definition["outputs"]],
        params=layer_params(definition),
        layer=definition,
        family="layers",
    ))


LINEAR = {
    "doc": "Fully connected layer: y = x Wᵀ + b.\n\n"
           "W is stored (out_features, in_features) like PyTorch; x may have any leading "
           "axes (batch, sequence).",
    "params": [
        {"name": "in_features", "kind": "int", "default": 16, "min": 1,
         "doc": "Size of the last axis of x."},
        {"name": "out_features", "kind": "int", "default": 16, "min": 1,
         "doc": "Size of the last axis of y."},
    ],
    "inputs": [{"name": "x", "dtype": "float"}],
    "outputs": [{"name": "y", "node": "add", "port": "out"}],
    "nodes": [
        {"id": "weight", "type": "parameter",
         "params": {"shape": ["$out_features", "$in_features"], "init": "fan_in_uniform"}},
        {"id": "bias", "type": "parameter",
         "params": {"shape": ["$out_features"], "init": "fan_in_uniform",
                    "fan_in": "$in_features", "decay": False}},
        {"id": "matmul", "type": "matmul", "params": {"transpose_b": True}},
        {"id": "add", "type": "add"},
    ],
    "edges": [
        edge("$in:x", "matmul:a"),
        edge("weight:out", "matmul:b"),
        edge("matmul:out", "add:a"),
        edge("bias:out", "add:b"),
    ],
}

register_layer("linear", LINEAR)
