"""Fold the patterns exporters emit back into Wiregrad's layer nodes.

Each pass looks for an exact match — a primitive op whose weights are parameters used nowhere
else, with the shapes and settings the layer supports — and replaces it by one layer node with
PyTorch-style weight names (``fc1.weight``). A near miss stays primitive: still correct, just
flatter. :func:`fold_layers` returns how many instances of each layer it made.
"""

from __future__ import annotations

import re

import numpy as np

from engine.export.onnx_build import Builder, Node

_WEIGHT_SUFFIX = re.compile(r"[._](weight|bias|W|B|kernel|scale)$")
_OP_SUFFIX = re.compile(r"[_/](Gemm|MatMul|Conv|LayerNormalization|Gather|BatchNormalization|"
                        r"MaxPool|AveragePool|Add)(_\d+)?$")


def fold_layers(b: Builder) -> dict[str, int]:
    """Run every pass over *b*'s nodes; returns ``{layer type: instances}``."""
    _untie_same_role(b)
    made: dict[str, int] = {}
    for fold in (_batch_norm, _linear, _layer_norm, _conv, _embedding, _pool, _flatten):
        for node in list(b.nodes):
            if node in b.nodes:
                layer = fold(b, node)
                if layer is not None:
                    made[layer] = made.get(layer, 0) + 1
    return dict(sorted(made.items()))


# ---------------------------------------------------------------- helpers


def _untie_same_role(b: Builder) -> None:
    """Give each reader of a shared weight its own copy when every reader uses it in the same
    role (two layer norms' scales, two zero biases): exporters merge initializers that merely
    hold equal values, which would tie parameters the source model trains apart. Weights shared
    across roles (an embedding table reused as the output head) stay tied."""
    for param in [n for n in b.nodes if n.type == "parameter" and n.trainable]:
        (value,) = param.outs.values()
        readers = _consumers(b, value)
        roles = {(n.type, port) for n, port in readers}
        if len(readers) < 2 or len(roles) != 1:
            continue
        for k, (reader, port) in enumerate(readers[1:], start=2):
            copy = b.add("parameter", f"{param.hint}_{k}", dict(param.params),
                         outs={"out": f"{value}::copy{k}"})
            b.weights[copy.id] = b.weights[param.id].copy()
            reader.ins[port] = f"{value}::copy{k}"


def _consumers(b: Builder, value: str) -> list[tuple[Node, str]]:
    return [(n, port) for n in b.nodes for port, v in n.ins.items() if v == value]


def _sole_parameter(b: Builder, value: str | None) -> Node | None:
    """The trainable parameter node producing *value*, when nothing else reads it."""
    if value is None or value not in b.producer:
        return None
    node, _ = b.producer[value]
    if node.type != "parameter" or not node.trainable or len(_consumers(b, value)) != 1:
        return None
    return node


def _layer_id(b: Builder, weight: Node, op: Node) -> str:
    """A name for the layer: the weight's module path (``fc1.weight`` → ``fc1``), else the
    ONNX node's (``/conv1/Conv`` → ``conv1``)."""
    name = weight.hint
    if _WEIGHT_SUFFIX.search(name) and not name.startswith(("onnx::", "val_")):
        hint = _WEIGHT_SUFFIX.sub("", name)
    else:
        hint = _OP_SUFFIX.sub("", op.hint.strip("/")) or op.hint
    b.ids.discard(op.id)
    return b.unique_id(hint)


def _replace(b: Builder, remove: list[Node], layer: Node) -> None:
    for node in remove:
        b.nodes.remove(node)
        b.weights.pop(node.id, None)
    b.nodes.insert(0, layer)
    for port, value in layer.outs.items():
        b.producer[value] = (layer, port)


def _make(b: Builder, type_name: str, layer_id: str, params: dict, ins: dict, outs: dict,
          weights: dict[str, np.ndarray]) -> Node:
    layer = Node(layer_id, type_name, params, ins, outs, True, layer_id)
    for suffix, array in weights.items():
        b.weights[f"{layer_id}.{suffix}"] = np.ascontiguousarray(array, dtype=np.float32)
    return layer


# ---------------------------------------------------------------- passes


def _linear(b: Builder, mm: Node) -> str | None:
    """matmul(x, W or Wᵀ) [+ b] with W a 2-D parameter → Linear."""
    if mm.type != "matmul" or mm.params.get("transpose_a"):
        return None
    w = _sole_parameter(b, mm.ins.get("b"))
    if w is None or len(b.weights[w.id].shape) != 2:
        return None
    weight = b.weights[w.id] if mm.params.get("transpose_b") else b.weights[w.id].T
    out_features, in_features = weight.shape
    (out,) = mm.outs.values()
    remove, bias, y = [w, mm], None, out
    users = _consumers(b, out)
    if len(users) == 1 and users[0][0].type == "add":
        add = users[0][0]
        other = add.ins.get("b") if add.ins.get("a") == out else add.ins.get("a")
        q = _sole_parameter(b, other)
        if q is not None and b.weights[q.id].shape == (out_features,):
            bias, y = b.weights[q.id], add.outs["out"]
            remove += [add, q]
    layer_id = _layer_id(b, w, mm)
    weights = {"weight": weight} | ({"bias": bias} if bias is not None else {})
    layer = _make(b, "Linear", layer_id, {"in_features": int(in_features),
                                          "out_features": int(out_features),
                                          "bias": bias is not None},
                  {"x": mm.ins["a"]}, {"y": y}, weights)
    _replace(b, remove, layer)
    return "Linear"


def _layer_norm(b: Builder, ln: Node) -> str | None:
    if ln.type != "layer_norm":
        return None
    w = _sole_parameter(b, ln.ins.get("weight"))
    if w is None or len(b.weights[w.id].shape) != 1:
        return None
    d = b.weights[w.id].shape[0]
    q = _sole_parameter(b, ln.ins.get("bias"))
    if ln.ins.get("bias") and (q is None or b.weights[q.id].shape != (d,)):
        return None
    weights = {"weight": b.weights[w.id]} | ({"bias": b.weights[q.id]} if q else {})
    layer = _make(b, "LayerNorm", _layer_id(b, w, ln),
                  {"normalized_shape": int(d), "eps": ln.params["eps"], "bias": q is not None},
                  {"x": ln.ins["x"]}, {"y": ln.outs["out"]}, weights)
    _replace(b, [ln, w] + ([q] if q else []), layer)
    return "LayerNorm"


def _conv(b: Builder, conv: Node) -> str | None:
    if conv.type != "conv2d":
        return None
    w = _sole_parameter(b, conv.ins.get("weight"))
    if w is None:
        return None
    kernel = b.weights[w.id]
    if kernel.ndim != 4 or kernel.shape[2] != kernel.shape[3]:
        return None
    q = _sole_parameter(b, conv.ins.get("bias"))
    if conv.ins.get("bias") and q is None:
        return None
    weights = {"weight": kernel} | ({"bias": b.weights[q.id]} if q else {})
    groups = int(conv.params.get("groups", 1))
    params = {"in_channels": int(kernel.shape[1]) * groups, "out_channels": int(kernel.shape[0]),
              "kernel_size": int(kernel.shape[2]), "stride": conv.params["stride"],
              "padding": conv.params["padding"], "dilation": conv.params["dilation"],
              "groups": groups, "bias": q is not None}
    layer = _make(b, "Conv2d", _layer_id(b, w, conv), params, {"x": conv.ins["x"]},
                  {"y": conv.outs["out"]}, weights)
    _replace(b, [conv, w] + ([q] if q else []), layer)
    return "Conv2d"


def _embedding(b: Builder, lookup: Node) -> str | None:
    if lookup.type != "embedding":
        return None
    w = _sole_parameter(b, lookup.ins.get("weight"))
    if w is None or b.weights[w.id].ndim != 2:
        return None
    table = b.weights[w.id]
    layer = _make(b, "Embedding", _layer_id(b, w, lookup),
                  {"num_embeddings": int(table.shape[0]), "embedding_dim": int(table.shape[1])},
                  {"ids": lookup.ins["ids"]}, {"y": lookup.outs["out"]}, {"weight": table})
    _replace(b, [lookup, w], layer)
    return "Embedding"


def _batch_norm(b: Builder, bn: Node) -> str | None:
    """Every BatchNormalization becomes BatchNorm1d (N, C) or BatchNorm2d (N, C, H, W)."""
    if bn.type != "BatchNorm":
        return None
    weight, bias, mean, var = b.batch_stats[bn.outs["y"]]
    rank = len(b.shape(bn.ins["x"]) or [])
    kind = {2: "BatchNorm1d", 3: "BatchNorm1d", 4: "BatchNorm2d"}.get(rank)
    if kind is None:
        b.problems.append(f"node '{bn.hint}' (BatchNormalization): inputs of rank {rank} "
                          "(2-D to 4-D map)")
        return None
    bn.type = kind
    bn.params = {"num_features": int(mean.shape[0]), **bn.params}
    for suffix, array in (("weight", weight), ("bias", bias), ("norm.running_mean", mean),
                          ("norm.running_var", var)):
        b.weights[f"{bn.id}.{suffix}"] = np.ascontiguousarray(array, dtype=np.float32)
    return kind


def _pool(b: Builder, pool: Node) -> str | None:
    if pool.type not in ("max_pool2d", "avg_pool2d"):
        return None
    p = pool.params
    if pool.type == "avg_pool2d" and p["padding"] and not p["count_include_pad"]:
        return None  # the layer counts padding like PyTorch's default
    kind = "MaxPool2d" if pool.type == "max_pool2d" else "AvgPool2d"
    pool.type = kind
    pool.params = {"kernel_size": p["kernel"], "stride": p["stride"] or p["kernel"],
                   "padding": p["padding"]}
    pool.outs = {"y": pool.outs["out"]}
    b.producer[pool.outs["y"]] = (pool, "y")
    return kind


def _flatten(b: Builder, reshape: Node) -> str | None:
    """reshape (B, …) → (B, -1 or the product) → Flatten."""
    if reshape.type != "reshape":
        return None
    source = b.shape(reshape.ins["x"]) or []
    target = reshape.params["shape"]
    if len(source) < 3 or source[0] != "B" or len(target) != 2 or target[0] not in ("B", -1):
        return None
    rest = source[1:]
    product = int(np.prod(rest)) if all(isinstance(d, int) for d in rest) else None
    if target[0] == -1 and target[1] != product or target[0] == "B" and target[1] not in (
            -1, product):
        return None
    reshape.type, reshape.params = "Flatten", {}
    reshape.outs = {"y": reshape.outs["out"]}
    b.producer[reshape.outs["y"]] = (reshape, "y")
    return "Flatten"
