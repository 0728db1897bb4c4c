"""Fold what is known before running an ONNX graph: constants (initializers, ``Constant``
nodes and every op on them) and the shape arithmetic exporters emit — ``Shape`` → ``Gather`` →
``Concat`` → ``Reshape`` chains — into numpy arrays and lists of sizes and symbols.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.export.onnx_reader import OnnxModel

ShapeList = list  # list[Dim]: a 1-D int64 tensor whose entries may be symbols


@dataclass(frozen=True)
class Zeros:
    """A tensor of zeros whose shape has symbols (``ConstantOfShape([1, B, H])``): what
    exporters write for a recurrent layer's default initial state."""

    shape: tuple


class Known:
    """Values known before running: constant arrays and symbolic shape lists."""

    FOLDABLE = {"Constant", "Shape", "Gather", "Concat", "Unsqueeze", "Squeeze", "Slice",
                "Cast", "Identity", "Mul", "Add", "Sub", "Div", "Reshape", "Range", "Equal",
                "Less", "LessOrEqual", "Greater", "Where", "Not", "ConstantOfShape", "Sqrt",
                "Expand", "Transpose", "Split"}

    def __init__(self, model: OnnxModel) -> None:
        self.model = model
        self.values: dict[str, np.ndarray | ShapeList] = dict(model.initializers)
        # a constant derived from one initializer (a transposed weight) → that initializer
        self.origin: dict[str, str] = {}

    def get(self, name: str):
        return self.values.get(name)

    def array(self, name: str) -> np.ndarray | None:
        """A fully numeric constant (no symbols), or None."""
        value = self.values.get(name)
        if isinstance(value, np.ndarray):
            return value
        if isinstance(value, list) and all(isinstance(v, (int, np.integer)) for v in value):
            return np.asarray(value, dtype=np.int64)
        return None

    def fold(self, node) -> bool:
        """Fold *node* if every input is known; returns whether it did. Either way, carry
        shapes ONNX could not infer through it (:mod:`engine.export.onnx_shapes`)."""
        from engine.export.onnx_shapes import propagate

        propagate(node, self.model.shapes, self.values)
        if node.op_type not in self.FOLDABLE:
            return False
        if node.op_type == "Shape":
            shape = self.model.shapes.get(node.input[0])
            if shape is None:
                return False
            start, end = attr(node, "start", 0), attr(node, "end", None)
            self.values[node.output[0]] = list(shape[start:end])
            return True
        ins = [self.values.get(i) if i else None for i in node.input]
        if any(i and v is None for i, v in zip(node.input, ins)):
            return False
        if ins and isinstance(ins[0], Zeros) and node.op_type in (
                "Slice", "Reshape", "Unsqueeze", "Squeeze", "Transpose", "Identity", "Cast",
                "Expand"):
            shape = self.model.shapes.get(node.output[0])
            self.values[node.output[0]] = Zeros(tuple(shape) if shape else ins[0].shape)
            return True
        try:
            result = _FOLD[node.op_type](node, ins)
        except (ValueError, TypeError, IndexError, KeyError, OverflowError):
            return False
        if result is None:
            return False
        if node.op_type == "Split":  # several outputs
            for out, part in zip(node.output, result):
                self.values[out] = part
            return True
        self.values[node.output[0]] = result
        sources = [self.origin.get(i, i) for i in node.input if i in self.model.initializers
                   or i in self.origin]
        if len(sources) == 1 and node.op_type in ("Transpose", "Identity", "Cast", "Reshape"):
            self.origin[node.output[0]] = sources[0]
        return True


def attr(node, name: str, default=None):
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _symbolic(value) -> bool:
    return isinstance(value, list) and any(isinstance(v, str) for v in value)


def _as_list(value) -> list:
    return list(value) if isinstance(value, list) else np.asarray(value).reshape(-1).tolist()


def _constant(node, ins):
    from onnx import numpy_helper

    for a in node.attribute:
        if a.name == "value":
            return numpy_helper.to_array(a.t)
        if a.name in ("value_float", "value_int"):
            return np.asarray(a.f if a.name == "value_float" else a.i)
        if a.name in ("value_floats", "value_ints"):
            return np.asarray(list(a.floats) if a.name == "value_floats" else list(a.ints))
    return None


def _gather(node, ins):
    data, idx = ins
    if _symbolic(data):
        index = np.asarray(idx)
        picked = [data[int(i)] for i in index.reshape(-1)]
        return picked if index.ndim else [picked[0]]  # scalar: a 1-element list stands in
    return np.take(np.asarray(data), np.asarray(idx), axis=attr(node, "axis", 0))


def _concat(node, ins):
    if any(_symbolic(v) for v in ins):
        return [d for v in ins for d in _as_list(v)]
    return np.concatenate([np.asarray(v) for v in ins], axis=attr(node, "axis", 0))


def _unsqueeze(node, ins):
    if _symbolic(ins[0]):
        return list(ins[0])
    axes = attr(node, "axes") if len(ins) < 2 else np.asarray(ins[1]).tolist()
    return np.expand_dims(np.asarray(ins[0]), tuple(int(a) for a in axes))


def _squeeze(node, ins):
    if _symbolic(ins[0]):
        return list(ins[0])
    axes = attr(node, "axes") if len(ins) < 2 or ins[1] is None else np.asarray(ins[1]).tolist()
    return np.squeeze(np.asarray(ins[0]), axis=None if axes is None else tuple(axes))


def _slice(node, ins):
    data = ins[0]
    starts, ends = np.asarray(ins[1]).tolist(), np.asarray(ins[2]).tolist()
    axes = np.asarray(ins[3]).tolist() if len(ins) > 3 and ins[3] is not None else None
    steps = np.asarray(ins[4]).tolist() if len(ins) > 4 and ins[4] is not None else None
    if _symbolic(data):
        if (axes or [0]) != [0] or len(starts) != 1:
            return None
        step = steps[0] if steps else 1
        return list(data[slice(max(-(2**62), starts[0]), min(2**62, ends[0]), step)])
    arr = np.asarray(data)
    index = [slice(None)] * arr.ndim
    for k, (s, e) in enumerate(zip(starts, ends)):
        axis = axes[k] if axes else k
        index[axis] = slice(s, e, steps[k] if steps else 1)
    return arr[tuple(index)]


def _arith(op):
    def fold(node, ins):
        a, b = ins
        if _symbolic(a) or _symbolic(b):
            if op != "mul":
                return None
            la, lb = _as_list(a), _as_list(b)
            if len(la) == 1 and la[0] == 1:
                return lb
            if len(lb) == 1 and lb[0] == 1:
                return la
            if len(la) == len(lb) == 1:
                return [f"{la[0]}*{lb[0]}"]
            return None
        x, y = np.asarray(a), np.asarray(b)
        if op == "div" and x.dtype.kind in "iu" and y.dtype.kind in "iu":
            return x // y
        return {"mul": np.multiply, "add": np.add, "sub": np.subtract, "div": np.divide}[op](x, y)

    return fold


def _cast(node, ins):
    if _symbolic(ins[0]):
        return list(ins[0])
    from onnx import helper

    to = helper.tensor_dtype_to_np_dtype(attr(node, "to"))
    return np.asarray(ins[0]).astype(to)


def _numeric(fn):
    def fold(node, ins):
        if any(_symbolic(v) for v in ins if v is not None):
            return None
        return fn(node, [np.asarray(v) if v is not None else None for v in ins])

    return fold


def _zeros_of_symbolic_shape(node, ins):
    value = _constant(node, []) if attr(node, "value") is not None else np.zeros(1)
    if _symbolic(ins[0]) and not np.any(value):
        return Zeros(tuple(ins[0]))
    return _numeric(lambda n, i: _constant_of_shape(n, i[0]))(node, ins)


def _expand(node, ins):
    if _symbolic(ins[1]) and isinstance(ins[0], np.ndarray) and not np.any(ins[0]):
        return Zeros(tuple(ins[1]))
    return _numeric(lambda n, i: np.broadcast_to(i[0], tuple(i[1].tolist())).copy())(node, ins)


def _constant_of_shape(node, shape: np.ndarray) -> np.ndarray:
    value = _constant(node, []) if attr(node, "value") is not None else np.zeros(1, np.float32)
    return np.full(tuple(shape.astype(np.int64).tolist()), value.reshape(-1)[0],
                   dtype=value.dtype)


_FOLD = {
    "Constant": _constant,
    "Gather": _gather,
    "Concat": _concat,
    "Unsqueeze": _unsqueeze,
    "Squeeze": _squeeze,
    "Slice": _slice,
    "Cast": _cast,
    "Identity": lambda node, ins: ins[0],
    "Mul": _arith("mul"),
    "Add": _arith("add"),
    "Sub": _arith("sub"),
    "Div": _arith("div"),
    "Reshape": lambda n, i: list(i[0]) if _symbolic(i[0]) else np.asarray(i[0]).reshape(
        np.asarray(i[1]).astype(np.int64)),
    "Range": _numeric(lambda n, i: np.arange(*(x.reshape(-1)[0] for x in i[:3]))),
    "Trilu": _numeric(lambda n, i: (np.triu if attr(n, "upper", 1) else np.tril)(
        i[0], int(i[1].reshape(-1)[0]) if len(i) > 1 and i[1] is not None else 0)),
    "Equal": _numeric(lambda n, i: np.equal(i[0], i[1])),
    "Less": _numeric(lambda n, i: np.less(i[0], i[1])),
    "LessOrEqual": _numeric(lambda n, i: np.less_equal(i[0], i[1])),
    "Greater": _numeric(lambda n, i: np.greater(i[0], i[1])),
    "Where": _numeric(lambda n, i: np.where(i[0], i[1], i[2])),
    "Not": _numeric(lambda n, i: np.logical_not(i[0])),
    "Sqrt": _numeric(lambda n, i: np.sqrt(i[0])),
    "Split": _numeric(lambda n, i: np.split(i[0], np.cumsum(
        i[1].astype(np.int64))[:-1] if len(i) > 1 and i[1] is not None
        else len(n.output), axis=attr(n, "axis", 0))),
    "Transpose": _numeric(lambda n, i: np.transpose(i[0], attr(n, "perm"))),
    "Expand": _expand,
    "ConstantOfShape": _zeros_of_symbolic_shape,
}
