"""ONNX op → registry ops: the import direction of :mod:`engine.export.onnx_export`.

Each entry of :data:`ONNX_TO_WIREGRAD` turns one ONNX node (whose constant inputs and shape
arithmetic are already folded) into Wiregrad nodes on a :class:`~engine.export.onnx_import.
Builder`. ``tests/test_onnx_import.py`` checks the table against the registry and against the
export table, so the two directions cannot drift apart.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from engine.export.onnx_fold import attr

Translator = Callable  # (builder, onnx_node) -> None
ONNX_TO_WIREGRAD: dict[str, Translator] = {}

# ONNX op → the registry op it becomes one-to-one (inputs in order, single output "out").
UNARY = {"Relu": "relu", "Tanh": "tanh", "Sigmoid": "sigmoid", "Exp": "exp", "Log": "log",
         "Sqrt": "sqrt", "Neg": "neg", "Abs": "abs"}
BINARY = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div"}


def f32(value) -> float:
    """A float32 attribute as the decimal it was written as (1e-05, not 9.99999974e-06)."""
    return float(str(np.float32(value)))


def translator(*op_types: str):
    def register(fn: Translator) -> Translator:
        for op_type in op_types:
            ONNX_TO_WIREGRAD[op_type] = fn
        return fn

    return register


def translate(b, node) -> None:
    fn = ONNX_TO_WIREGRAD.get(node.op_type)
    if node.domain not in ("", "ai.onnx"):
        b.unmapped(node, f"custom op domain '{node.domain}' is not supported")
        return
    if fn is None:
        b.unmapped(node, "no Wiregrad op does this")
        return
    fn(b, node)


def _hint(node) -> str:
    return node.name.strip("/").replace("/", "_") or node.output[0]


def _wire(b, node, type_name: str, ports: list[str], params: dict | None = None,
          out_port: str = "out") -> None:
    ins = {}
    for port, value in zip(ports, node.input):
        if value:
            b.materialise(value)
            ins[port] = value
    b.add(type_name, _hint(node), params or {}, ins, {out_port: node.output[0]})


def _rank(b, value: str) -> int | None:
    shape = b.shape(value)
    return None if shape is None else len(shape)


def _axis(b, node, value: str, default: int = -1) -> int:
    """An axis attribute made negative (counted from the end), so symbolic ranks agree."""
    axis = int(attr(node, "axis", default))
    rank = _rank(b, value)
    return axis - rank if axis >= 0 and rank is not None else axis


for _op, _wg in UNARY.items():
    ONNX_TO_WIREGRAD[_op] = (lambda wg: lambda b, node: _wire(b, node, wg, ["x"]))(_wg)

for _op, _wg in BINARY.items():
    ONNX_TO_WIREGRAD[_op] = (lambda wg: lambda b, node: _wire(b, node, wg, ["a", "b"]))(_wg)


@translator("Identity", "Dropout")
def _identity(b, node) -> None:
    b.alias[node.output[0]] = b.resolve(node.input[0])


@translator("Cast")
def _cast(b, node) -> None:
    from onnx import TensorProto

    to = attr(node, "to")
    if to in (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.INT64,
              TensorProto.INT32):
        b.alias[node.output[0]] = b.resolve(node.input[0])
    else:
        b.unmapped(node, f"casting to ONNX type {to} (only float and int64 tensors exist)")


@translator("CastLike")
def _cast_like(b, node) -> None:
    """Every Wiregrad tensor a model computes is float: casting like another is a no-op."""
    b.alias[node.output[0]] = b.resolve(node.input[0])


@translator("Gelu")
def _gelu(b, node) -> None:
    approximate = attr(node, "approximate", b"none")
    approximate = approximate.decode() if isinstance(approximate, bytes) else approximate
    _wire(b, node, "gelu", ["x"], {"approximate": approximate})


@translator("LeakyRelu")
def _leaky(b, node) -> None:
    _wire(b, node, "leaky_relu", ["x"], {"negative_slope": f32(attr(node, "alpha", 0.01))})


@translator("Softmax", "LogSoftmax")
def _softmax(b, node) -> None:
    kind = "softmax" if node.op_type == "Softmax" else "log_softmax"
    _wire(b, node, kind, ["x"], {"axis": _axis(b, node, node.input[0])})


@translator("Pow")
def _pow(b, node) -> None:
    exponent = b.const(node.input[1])
    if exponent is None or exponent.size != 1:
        b.unmapped(node, "the exponent must be a constant scalar")
        return
    _wire(b, node, "pow", ["x"], {"exponent": float(exponent.reshape(-1)[0])})


@translator("Clip")
def _clip(b, node) -> None:
    bounds = []
    for k in (1, 2):
        value = b.const(node.input[k]) if len(node.input) > k and node.input[k] else None
        bounds.append(None if value is None else float(value.reshape(-1)[0]))
    _wire(b, node, "clamp", ["x"], {"min": bounds[0], "max": bounds[1]})


@translator("Max", "Min")
def _max_min(b, node) -> None:
    """Max/Min against a constant scalar is a clamp (what the exporter writes)."""
    consts = [b.const(v) for v in node.input]
    if len(node.input) != 2 or (consts[0] is None) == (consts[1] is None):
        b.unmapped(node, "only Max/Min of a tensor and a constant scalar maps (clamp)")
        return
    k = 0 if consts[0] is None else 1
    value = float(consts[1 - k].reshape(-1)[0])
    b.materialise(node.input[k])
    key = "min" if node.op_type == "Max" else "max"
    b.add("clamp", _hint(node), {"min": None, "max": None, key: value},
          {"x": node.input[k]}, {"out": node.output[0]})


@translator("MatMul")
def _matmul(b, node) -> None:
    _wire(b, node, "matmul", ["a", "b"])


@translator("Gemm")
def _gemm(b, node) -> None:
    alpha, beta = float(attr(node, "alpha", 1.0)), float(attr(node, "beta", 1.0))
    if alpha != 1.0 or beta != 1.0:
        b.unmapped(node, f"Gemm with alpha={alpha}, beta={beta} (only 1, 1 maps)")
        return
    for v in node.input[:2]:
        b.materialise(v)
    hint = _hint(node)
    product = f"{node.output[0]}::matmul" if len(node.input) > 2 and node.input[2] else \
        node.output[0]
    b.add("matmul", hint, {"transpose_a": bool(attr(node, "transA", 0)),
                           "transpose_b": bool(attr(node, "transB", 0))},
          {"a": node.input[0], "b": node.input[1]}, {"out": product})
    if product != node.output[0]:
        b.materialise(node.input[2])
        b.add("add", hint + "_bias", {}, {"a": product, "b": node.input[2]},
              {"out": node.output[0]})


@translator("Transpose")
def _transpose(b, node) -> None:
    perm = attr(node, "perm")
    rank = _rank(b, node.input[0])
    if perm is None:
        if rank is None:
            b.unmapped(node, "Transpose without perm on an input of unknown rank")
            return
        perm = list(range(rank))[::-1]
    _wire(b, node, "permute", ["x"], {"axes": [int(p) for p in perm]})


def _target(b, node, dims: list) -> list | None:
    """A reshape target for Wiregrad: sizes, symbols and at most one -1 (a product such as
    ``B*2`` becomes the -1 when there is none yet)."""
    out = list(dims)
    compound = [k for k, d in enumerate(out) if isinstance(d, str) and not d.isidentifier()]
    if len(compound) > 1 or compound and -1 in out:
        return None
    for k in compound:
        out[k] = -1
    if out.count(-1) > 1:
        return None
    return out


@translator("Reshape")
def _reshape(b, node) -> None:
    target = b.known.get(b.resolve(node.input[1]))
    if target is None:
        b.unmapped(node, "the target shape is computed from data (only constant or "
                         "shape-derived targets map)")
        return
    dims = [int(d) if not isinstance(d, str) else d for d in
            (target if isinstance(target, list) else np.asarray(target).tolist())]
    source = b.shape(node.input[0]) or []
    for k, d in enumerate(dims):
        if isinstance(d, str) and d.startswith("?") and k < len(source) \
                and not str(source[k]).startswith("?"):
            dims[k] = source[k]  # read off the input's shape where ONNX lost track of it
        if d == 0 and not attr(node, "allowzero", 0):
            if k >= len(source):
                b.unmapped(node, "a 0 in the target copies an unknown input size")
                return
            dims[k] = source[k]
    out_shape = b.shape(node.output[0])
    if dims.count(-1) > 1 and out_shape is not None:
        dims = list(out_shape)
    target = _target(b, node, dims)
    if target is None:
        b.unmapped(node, f"target {dims} has more than one -1")
        return
    _wire(b, node, "reshape", ["x"], {"shape": target})


@translator("Flatten")
def _flatten(b, node) -> None:
    axis = int(attr(node, "axis", 1))
    source = b.shape(node.input[0])
    if source is None:
        b.unmapped(node, "Flatten of an input of unknown shape")
        return
    head = source[:axis]
    tail = source[axis:]
    rest = math.prod(tail) if all(isinstance(d, int) for d in tail) else -1
    if len(head) > 1 and -1 in [rest]:
        b.unmapped(node, "Flatten with symbolic sizes on both sides")
        return
    first = head[0] if len(head) == 1 else (math.prod(head) if head else 1)
    _wire(b, node, "reshape", ["x"], {"shape": [first, rest]})


@translator("Unsqueeze", "Squeeze")
def _squeeze(b, node) -> None:
    out_shape = b.shape(node.output[0])
    if out_shape is None:
        b.unmapped(node, f"{node.op_type} whose result shape ONNX could not infer")
        return
    _wire(b, node, "reshape", ["x"], {"shape": list(out_shape) or [1]})


@translator("Expand")
def _expand(b, node) -> None:
    out_shape = b.shape(node.output[0])
    if out_shape is None:
        b.unmapped(node, "Expand whose result shape ONNX could not infer")
        return
    _wire(b, node, "broadcast_to", ["x"], {"shape": list(out_shape)})


@translator("Concat")
def _concat(b, node) -> None:
    ins = {}
    for k, value in enumerate(node.input):
        b.materialise(value)
        ins[f"inputs[{k}]"] = value
    b.add("concat", _hint(node), {"axis": _axis(b, node, node.input[0], 0)}, ins,
          {"out": node.output[0]})


@translator("Split")
def _split(b, node) -> None:
    from engine.ops.shape import SPLIT_MAX

    if len(node.output) > SPLIT_MAX:
        b.unmapped(node, f"Split into {len(node.output)} parts (at most {SPLIT_MAX})")
        return
    sizes = b.const(node.input[1]) if len(node.input) > 1 and node.input[1] else None
    sizes = [int(s) for s in sizes] if sizes is not None else list(attr(node, "split", []))
    b.materialise(node.input[0])
    b.add("split", _hint(node), {"axis": _axis(b, node, node.input[0], 0),
                                 "parts": len(node.output), "sizes": sizes},
          {"x": node.input[0]}, {f"out{k}": v for k, v in enumerate(node.output)})


@translator("Slice")
def _slice(b, node) -> None:
    consts = [b.const(v) if v else None for v in node.input[1:]]
    starts, ends = consts[0], consts[1]
    if starts is None or ends is None or any(
            len(node.input) > k + 1 and node.input[k + 1] and consts[k] is None
            for k in (2, 3)):
        b.unmapped(node, "Slice bounds must be constants")
        return
    rank = _rank(b, node.input[0])
    axes = consts[2].tolist() if len(consts) > 2 and consts[2] is not None else \
        list(range(len(starts)))
    steps = consts[3].tolist() if len(consts) > 3 and consts[3] is not None else \
        [1] * len(starts)
    value = node.input[0]
    b.materialise(value)
    for k, (start, end, axis, step) in enumerate(zip(starts.tolist(), ends.tolist(), axes,
                                                     steps)):
        last = k == len(axes) - 1
        out = node.output[0] if last else f"{node.output[0]}::{k}"
        stop = None if end >= 2**62 else int(end)
        if rank is not None and axis >= 0:
            axis -= rank
        b.add("slice", _hint(node), {"axis": int(axis), "start": int(start), "stop": stop,
                                     "step": int(step)}, {"x": value}, {"out": out})
        value = out


@translator("Gather")
def _gather(b, node) -> None:
    data, idx = node.input
    index = b.const(idx)
    if b.const(data) is not None and attr(node, "axis", 0) == 0 and index is None:
        b.materialise(data)
        b.materialise(idx)
        b.add("embedding", _hint(node), {}, {"ids": idx, "weight": data},
              {"out": node.output[0]})
        return
    if index is not None and index.size == 1 and index.ndim == 0:
        _wire(b, node, "index", ["x"], {"axis": _axis(b, node, data, 0),
                                        "index": int(index)})
        return
    b.unmapped(node, "Gather maps as an embedding lookup (a constant table, axis 0) or with "
                     "one constant scalar index")


@translator("Where")
def _where(b, node) -> None:
    _wire(b, node, "where", ["cond", "a", "b"])


@translator("ReduceMean", "ReduceSum", "ReduceMax")
def _reduce(b, node) -> None:
    kind = {"ReduceMean": "mean", "ReduceSum": "sum", "ReduceMax": "max"}[node.op_type]
    axes = attr(node, "axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        const = b.const(node.input[1])
        if const is None:
            b.unmapped(node, "reduction axes must be constant")
            return
        axes = const.tolist()
    if not axes and attr(node, "noop_with_empty_axes", 0):
        b.alias[node.output[0]] = b.resolve(node.input[0])
        return
    b.materialise(node.input[0])
    b.add(kind, _hint(node), {"axes": [int(a) for a in (axes or [])],
                              "keepdims": bool(attr(node, "keepdims", 1))},
          {"x": node.input[0]}, {"out": node.output[0]})
