"""Shape inference for sizes: a layer dropped onto a wire (or quick-added from one) takes its
input size from the wire's inferred shape, as Keras and MATLAB's Deep Network Designer do —
``in_features`` of a Linear, ``in_channels`` of a Conv2d, ``normalized_shape`` of a LayerNorm,
``num_features`` of a batch norm. Qt-free; the shapes come from ``engine.api.validate``.
"""

from __future__ import annotations

# node type → (param, axis of the incoming shape it equals); NCHW images, features last
SIZE_RULES: dict[str, tuple[str, int]] = {
    "Linear": ("in_features", -1),
    "Conv2d": ("in_channels", 1),
    "LayerNorm": ("normalized_shape", -1),
    "BatchNorm1d": ("num_features", 1),
    "BatchNorm2d": ("num_features", 1),
}


def inferred_sizes(type_name: str, shape: list | None) -> dict:
    """The size params of *type_name* that the incoming *shape* fixes (symbolic dims such
    as the batch ``B`` fix nothing); empty when there is no rule or no shape."""
    rule = SIZE_RULES.get(type_name)
    if rule is None or not shape:
        return {}
    param, axis = rule
    try:
        dim = shape[axis]
    except IndexError:
        return {}
    return {param: dim} if isinstance(dim, int) and not isinstance(dim, bool) and dim > 0 \
        else {}


def wire_shape(validation: dict, edge: dict) -> list | None:
    """The inferred shape of the stored wire *edge* in a validation result (None: unknown)."""
    for info in validation.get("edges", []):
        if info["src"] == edge["src"] and info["dst"] == edge["dst"]:
            return info.get("shape")
    return None


def output_shape(validation: dict, node_id: str, port: str) -> list | None:
    """The inferred shape of output *port* of *node_id* (None: unknown)."""
    for info in validation.get("nodes", []):
        if info["id"] == node_id:
            return (info.get("outputs") or {}).get(port)
    return None
