"""Shapes where ONNX shape inference gives up.

TorchScript-era exporters compute reshape targets at run time (``Shape`` → ``Gather`` →
``Concat``), so ONNX's own inference leaves later sizes unknown (``?unk__3``). Once the constant
folder knows such a target as a list of sizes and symbols, :func:`propagate` carries shapes
through the ops around attention heads — reshape, transpose, split, matmul and elementwise
ops — and through convolutions and pools (an image reshaped from table rows, then a Flatten's
``[B, -1]`` target), in graph order.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

Shape = list  # of int | str

SAME_SHAPE = {"Relu", "Tanh", "Sigmoid", "Exp", "Log", "Sqrt", "Neg", "Abs", "Gelu", "Erf",
              "Softmax", "LogSoftmax", "LayerNormalization", "Dropout", "Identity", "Cast",
              "LeakyRelu", "Clip", "BatchNormalization"}
WINDOWED = {"Conv", "AveragePool", "MaxPool"}
BROADCAST = {"Add", "Sub", "Mul", "Div", "Pow", "Where", "Max", "Min"}


def unknown(shape: Shape | None) -> bool:
    return shape is None or any(isinstance(d, str) and d.startswith("?") for d in shape)


def propagate(node, shapes: dict[str, Shape], values: dict) -> None:
    """Fill ``shapes`` for *node*'s outputs when ONNX left them unknown and they follow."""
    if not any(unknown(shapes.get(out)) for out in node.output if out):
        return
    ins = [shapes.get(v) if v else None for v in node.input]
    result = _rule(node, ins, values)
    if result is None:
        return
    for out, shape in zip(node.output, result):
        if out and shape is not None and (unknown(shapes.get(out))
                                          and not unknown(shape)):
            shapes[out] = shape


def _attr(node, name: str, default=None):
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _rule(node, ins: list, values: dict) -> list[Shape | None] | None:
    op = node.op_type
    if op in SAME_SHAPE:
        return [ins[0]] if ins and ins[0] is not None else None
    if op in BROADCAST:
        return [_broadcast([s for s in ins if s is not None])]
    if op == "Transpose" and ins[0] is not None:
        perm = _attr(node, "perm") or list(range(len(ins[0])))[::-1]
        return [[ins[0][p] for p in perm]]
    if op == "Reshape" and ins[0] is not None:
        return [_reshape(ins[0], values.get(node.input[1]))]
    if op == "MatMul" and all(s is not None and len(s) >= 2 for s in ins):
        a, b = ins
        return [list(a[:-1]) + [b[-1]]]
    if op == "Split" and ins[0] is not None:
        return _split(node, ins[0], values)
    if op in WINDOWED and ins[0] is not None and len(ins[0]) == 4:
        return [_windowed(node, ins[0], ins[1] if len(ins) > 1 else None, values)]
    if op in ("GlobalAveragePool", "GlobalMaxPool") and ins[0] is not None:
        return [list(ins[0][:2]) + [1] * (len(ins[0]) - 2)]
    if op == "Gather" and ins[0] is not None and node.input[1] in values:
        index = np.asarray(values[node.input[1]])
        axis = int(_attr(node, "axis", 0)) % len(ins[0])
        return [list(ins[0][:axis]) + list(index.shape) + list(ins[0][axis + 1:])]
    return None


def _windowed(node, source: Shape, weight: Shape | None, values: dict) -> Shape | None:
    """A 2-D Conv's or pool's NCHW output shape from its attributes (explicit pads only)."""
    if node.op_type == "Conv":
        w = values.get(node.input[1])
        weight = list(np.shape(w)) if isinstance(w, np.ndarray) else weight
        if weight is None or len(weight) != 4 or not isinstance(weight[0], int):
            return None
    kernel = _attr(node, "kernel_shape") or (weight[2:] if weight else None)
    if kernel is None or _attr(node, "auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        return None
    pads = _attr(node, "pads") or [0, 0, 0, 0]
    strides = _attr(node, "strides") or [1, 1]
    dilations = _attr(node, "dilations") or [1, 1]
    rnd = (lambda a, b: -(-a // b)) if _attr(node, "ceil_mode", 0) else (lambda a, b: a // b)
    channels = weight[0] if node.op_type == "Conv" and weight is not None else source[1]
    out: Shape = [source[0], channels]
    for k in range(2):
        size = source[2 + k]
        if not isinstance(size, int):
            return None
        span = dilations[k] * (kernel[k] - 1) + 1
        out.append(rnd(size + pads[k] + pads[k + 2] - span, strides[k]) + 1)
    return out


def _broadcast(shapes: list[Shape]) -> Shape | None:
    if not shapes:
        return None
    rank = max(len(s) for s in shapes)
    out: Shape = []
    for k in range(rank):
        dims = [s[k - rank + len(s)] for s in shapes if k - rank + len(s) >= 0]
        known = [d for d in dims if d != 1 and not (isinstance(d, str) and d.startswith("?"))]
        out.append(known[0] if known else (1 if all(d == 1 for d in dims) else dims[0]))
    return out


def _factor(dims: Shape) -> tuple[int, Counter] | None:
    coef, syms = 1, Counter[str]()
    for d in dims:
        if isinstance(d, str):
            if d.startswith("?"):
                return None
            for part in d.split("*"):
                syms[part] += 1
        else:
            coef *= int(d)
    return coef, syms


def _reshape(source: Shape, target) -> Shape | None:
    if target is None:
        return None
    dims = list(target) if isinstance(target, list) else np.asarray(target).tolist()
    dims = [source[k] if d == 0 and k < len(source) else d for k, d in enumerate(dims)]
    if dims.count(-1) == 0:
        return dims
    if dims.count(-1) > 1:
        return None
    whole, part = _factor(source), _factor([d for d in dims if d != -1])
    if whole is None or part is None or part[0] == 0 or whole[0] % part[0]:
        return None
    rest = whole[1] - part[1]
    if any(v < 0 for v in (part[1] - whole[1]).values()) or part[1] - whole[1]:
        return None
    coef = whole[0] // part[0]
    missing: int | str = coef
    if rest:
        if coef != 1:
            return None
        missing = "*".join(sorted(rest.elements()))
    return [missing if d == -1 else d for d in dims]


def _split(node, source: Shape, values: dict) -> list[Shape | None] | None:
    axis = int(_attr(node, "axis", 0)) % len(source)
    sizes = values.get(node.input[1]) if len(node.input) > 1 and node.input[1] else None
    sizes = np.asarray(sizes).tolist() if sizes is not None else _attr(node, "split")
    count = len(node.output)
    if not sizes:
        if not isinstance(source[axis], int):
            return None
        sizes = [source[axis] // count] * count
    out: list[Shape | None] = []
    for size in sizes:
        shape = list(source)
        shape[axis] = int(size)
        out.append(shape)
    return out
