"""The model as an ONNX graph (``wiregrad export GRAPH --format onnx``).

Every primitive op maps to standard ONNX ops (opset 17 by default: ``LayerNormalization``
native, GELU decomposed into ``Erf`` or ``Tanh`` arithmetic; native ``Gelu`` at opset ≥ 20).
Symbolic sizes (``B``, ``T``) become dynamic axes; shapes that depend on them (reshape
targets, positions, causal masks) are computed in the graph with ``Shape``. Weights are
initializers under their Wiregrad names. The IR version is stamped from the opset with
``onnx.helper.make_model_gen_version`` (onnx 1.23's default IR version is newer than some
onnxruntime releases accept) and the result passes ``onnx.checker.check_model(full_check=True)``.

Each op's converter is listed in :data:`ONNX_OPS`; ops that never belong to an exported model
are in :data:`NOT_EXPORTABLE` with the reason (``tests/test_export_onnx.py`` checks that every
primitive op of the registry is in one of the two).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.base.errors import MissingExtraError, WiregradError
from engine.core.inference import Model
from engine.core.program import Equation
from engine.core.registry import normalize_axis

DEFAULT_OPSET = 17
MIN_OPSET = 17  # LayerNormalization
INT64_MAX = np.iinfo(np.int64).max

NOT_EXPORTABLE: dict[str, str] = {
    # data sources: their ports become the model's inputs, they compute nothing
    **{name: "a data source: its ports become the model's inputs" for name in (
        "input", "classification_2d", "regression_1d", "shapes_images", "digits",
        "table_file", "image_folder", "text_corpus", "sequence_pairs")},
    # training-only nodes: the model ends at the loss's prediction input
    **{name: "training-only: losses are not part of the exported model" for name in (
        "cross_entropy", "mse", "binary_cross_entropy_with_logits")},
    **{name: "training-only: metrics are not part of the exported model" for name in (
        "accuracy", "mean_absolute_error", "mean_squared_error", "perplexity",
        "top_k_accuracy", "token_accuracy")},
    "optimizer": "training-only: the optimizer is not part of the exported model",
}


def _onnx():
    try:
        import onnx
    except ImportError:
        raise MissingExtraError("onnx", "onnx") from None
    return onnx


class Builder:
    """Accumulates ONNX nodes and initializers; names values after the program's values."""

    def __init__(self, model: Model, weights: dict[str, np.ndarray], opset: int) -> None:
        self.onnx = _onnx()
        self.model = model
        self.weights = weights
        self.opset = opset
        self.nodes: list = []
        self.initializers: dict[str, object] = {}
        self.names: dict[str, str] = {}  # program value -> ONNX value name
        self._count = 0
        self.prefix = ""

    def name(self, value: str | None) -> str:
        return "" if value is None else self.names.get(value, value)

    def fresh(self, hint: str) -> str:
        self._count += 1
        return f"{self.prefix}{hint}_{self._count}"

    def node(self, op: str, inputs: list[str], outputs: list[str] | int = 1, **attrs) -> list:
        if isinstance(outputs, int):
            outputs = [self.fresh(op) for _ in range(outputs)]
        self.nodes.append(self.onnx.helper.make_node(op, inputs, outputs,
                                                     name=self.fresh(op), **attrs))
        return outputs

    def one(self, op: str, inputs: list[str], out: str | None = None, **attrs) -> str:
        return self.node(op, inputs, [out] if out else 1, **attrs)[0]

    def const(self, array, hint: str = "const", name: str | None = None) -> str:
        array = np.asarray(array)
        name = name or self.fresh(hint)
        if name not in self.initializers:
            self.initializers[name] = self.onnx.numpy_helper.from_array(array, name)
        return name

    def ints(self, values) -> str:
        return self.const(np.asarray(values, dtype=np.int64), "ints")

    def scalar(self, value: float) -> str:
        return self.const(np.asarray(value, dtype=np.float32), "scalar")

    def dim(self, x: str, axis: int) -> str:
        """A 1-element int64 tensor holding the runtime size of *x* along *axis*."""
        shape = self.one("Shape", [x])
        return self.one("Gather", [shape, self.ints([axis])], axis=0)

    def shape_tensor(self, x: str, x_shape: tuple, target: list) -> str:
        """A 1-D int64 shape: ints as given, symbols read from *x* (whose declared shape is
        *x_shape*), anything else -1 (like the engine's reshape and broadcast_to)."""
        if all(isinstance(d, int) for d in target):
            return self.ints(target)
        parts = []
        for d in target:
            if isinstance(d, int):
                parts.append(self.ints([d]))
            elif d in x_shape:
                parts.append(self.dim(x, list(x_shape).index(d)))
            else:
                parts.append(self.ints([-1]))
        return self.one("Concat", parts, axis=0)

    def reduce(self, op: str, x: str, axes: list[int], keepdims: bool,
               out: str | None = None) -> str:
        if op == "ReduceSum" or self.opset >= 18:  # axes became an input
            return self.one(op, [x, self.ints(axes)], out, keepdims=int(keepdims))
        return self.one(op, [x], out, axes=list(axes), keepdims=int(keepdims))


def _rank(eq: Equation, i: int = 0) -> int:
    return len(eq.input_type(i).shape)


Converter = Callable[[Builder, Equation, list[str], list[str]], None]
ONNX_OPS: dict[str, Converter] = {}


def converter(*names: str):
    def wrap(fn: Converter) -> Converter:
        for name in names:
            ONNX_OPS[name] = fn
        return fn

    return wrap


# ------------------------------------------------------------------ elementwise

_SIMPLE = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "neg": "Neg", "exp": "Exp",
           "log": "Log", "sqrt": "Sqrt", "abs": "Abs", "relu": "Relu", "tanh": "Tanh",
           "sigmoid": "Sigmoid"}


def _simple(op_type: str) -> Converter:
    def convert(b, eq, ins, outs):
        b.one(op_type, ins, outs[0])

    return convert


for _name, _op in _SIMPLE.items():
    ONNX_OPS[_name] = _simple(_op)


@converter("silu")
def _silu(b, eq, ins, outs):
    b.one("Mul", [ins[0], b.one("Sigmoid", [ins[0]])], outs[0])


@converter("leaky_relu")
def _leaky_relu(b, eq, ins, outs):
    b.one("LeakyRelu", ins, outs[0], alpha=float(eq.params["negative_slope"]))


@converter("pow")
def _pow(b, eq, ins, outs):
    b.one("Pow", [ins[0], b.scalar(eq.params["exponent"])], outs[0])


@converter("clamp")
def _clamp(b, eq, ins, outs):
    x = ins[0]
    lo, hi = eq.params["min"], eq.params["max"]
    if lo is not None:
        x = b.one("Max", [x, b.scalar(lo)], None if hi is not None else outs[0])
    if hi is not None:
        x = b.one("Min", [x, b.scalar(hi)], outs[0])
    if lo is None and hi is None:
        b.one("Identity", [x], outs[0])


@converter("gelu")
def _gelu(b, eq, ins, outs):
    x, approximate = ins[0], eq.params["approximate"]
    if b.opset >= 20:
        b.one("Gelu", [x], outs[0], approximate=approximate)
        return
    if approximate == "tanh":  # 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
        cube = b.one("Mul", [b.one("Mul", [x, x]), x])
        inner = b.one("Add", [x, b.one("Mul", [cube, b.scalar(0.044715)])])
        core = b.one("Tanh", [b.one("Mul", [inner, b.scalar(math.sqrt(2 / math.pi))])])
    else:  # 0.5·x·(1 + erf(x / √2))
        core = b.one("Erf", [b.one("Mul", [x, b.scalar(1 / math.sqrt(2))])])
    half = b.one("Mul", [x, b.scalar(0.5)])
    b.one("Mul", [half, b.one("Add", [core, b.scalar(1.0)])], outs[0])


@converter("where")
def _where(b, eq, ins, outs):
    cond = b.one("Cast", [ins[0]], to=b.onnx.TensorProto.BOOL)
    b.one("Where", [cond, ins[1], ins[2]], outs[0])


# ------------------------------------------------------------------ sources


@converter("parameter")
def _parameter(b, eq, ins, outs):
    name = eq.weights[""]
    b.const(np.asarray(b.weights[name], dtype=np.float32), name=name)
    b.names[eq.outputs[0]] = name


@converter("constant")
def _constant(b, eq, ins, outs):
    value = np.full(tuple(eq.params["shape"]), eq.params["value"], dtype=np.float32)
    b.const(value, name=outs[0])


@converter("positions")
def _positions(b, eq, ins, outs):
    axis = normalize_axis(eq.params["axis"], _rank(eq), "x")
    length = b.one("Squeeze", [b.dim(ins[0], axis), b.ints([0])])
    start = b.const(np.asarray(eq.params["offset"], dtype=np.int64), "offset")
    b.one("Range", [start, b.one("Add", [start, length]),
                    b.const(np.asarray(1, dtype=np.int64), "one")], outs[0])


# ------------------------------------------------------------------ linear algebra, nn


def _swap_last(b, x: str, rank: int) -> str:
    perm = list(range(rank))
    perm[-2], perm[-1] = perm[-1], perm[-2]
    return b.one("Transpose", [x], perm=perm)


@converter("matmul")
def _matmul(b, eq, ins, outs):
    a, m = ins
    if eq.params["transpose_a"]:
        a = _swap_last(b, a, _rank(eq, 0))
    if eq.params["transpose_b"]:
        m = _swap_last(b, m, _rank(eq, 1))
    b.one("MatMul", [a, m], outs[0])


@converter("embedding")
def _embedding(b, eq, ins, outs):
    b.one("Gather", [ins[1], ins[0]], outs[0], axis=0)


@converter("softmax", "log_softmax")
def _softmax(b, eq, ins, outs):
    op = "Softmax" if eq.op.name == "softmax" else "LogSoftmax"
    b.one(op, ins, outs[0], axis=normalize_axis(eq.params["axis"], _rank(eq), "x"))


@converter("dropout")
def _dropout(b, eq, ins, outs):
    b.one("Identity", ins, outs[0])  # evaluation mode


@converter("masked_fill")
def _masked_fill(b, eq, ins, outs):
    mask = b.one("Cast", [ins[1]], to=b.onnx.TensorProto.BOOL)
    b.one("Where", [mask, b.scalar(eq.params["value"]), ins[0]], outs[0])


def _causal_keep(b, rows: str, cols: str, offset: str) -> str:
    """Bool (rows, cols): True where key j ≤ query i + offset (all 1-element int64 tensors)."""
    zero = b.const(np.asarray(0, dtype=np.int64), "zero")
    one = b.const(np.asarray(1, dtype=np.int64), "one")
    i = b.one("Range", [zero, b.one("Squeeze", [rows, b.ints([0])]), one])
    j = b.one("Range", [zero, b.one("Squeeze", [cols, b.ints([0])]), one])
    i = b.one("Unsqueeze", [b.one("Add", [i, offset]), b.ints([1])])  # (rows, 1)
    return b.one("LessOrEqual", [j, i])  # (1·cols) vs (rows·1) → (rows, cols)


@converter("causal_mask")
def _causal_mask(b, eq, ins, outs):
    x = ins[0]
    rank = _rank(eq)
    keep = _causal_keep(b, b.dim(x, rank - 2), b.dim(x, rank - 1),
                        b.ints([eq.params["offset"]]))
    b.one("Where", [keep, x, b.scalar(eq.params["value"])], outs[0])


@converter("scaled_dot_product_attention")
def _attention(b, eq, ins, outs):
    q, k, v = ins[:3]
    rank = _rank(eq)
    scores = b.one("MatMul", [q, _swap_last(b, k, rank)])
    d = eq.input_types[0].shape[-1]
    scale = eq.params["scale"]
    if scale is None and isinstance(d, int):
        scale = 1.0 / math.sqrt(d)
    if scale is not None:
        scores = b.one("Mul", [scores, b.scalar(scale)])
    else:
        size = b.one("Cast", [b.dim(q, rank - 1)], to=b.onnx.TensorProto.FLOAT)
        scores = b.one("Div", [scores, b.one("Sqrt", [size])])
    keep = None
    if eq.params["causal"]:
        tq, tk = b.dim(q, rank - 2), b.dim(k, rank - 2)
        keep = _causal_keep(b, tq, tk, b.one("Sub", [tk, tq]))
    padded = len(ins) > 3 and bool(ins[3])
    if padded:  # key padding mask (B, Tk) -> (B, 1, …, 1, Tk); nonzero = a real key
        real = b.one("Cast", [ins[3]], to=b.onnx.TensorProto.BOOL)
        real = b.one("Unsqueeze", [real, b.ints(list(range(1, rank - 1)))])
        keep = real if keep is None else b.one("And", [keep, real])
    if keep is not None:
        lowest = b.scalar(float(np.finfo(np.float32).min))
        scores = b.one("Where", [keep, scores, lowest])
    probs = b.one("Softmax", [scores], axis=-1)
    if padded:  # a query that sees only padding gets zeros, like the engine
        seen = b.one("ReduceSum", [b.one("Cast", [keep], to=b.onnx.TensorProto.FLOAT),
                                   b.ints([-1])], keepdims=1)
        seen = b.one("Cast", [b.one("Greater", [seen, b.scalar(0.0)])],
                     to=b.onnx.TensorProto.FLOAT)
        probs = b.one("Mul", [probs, seen])
    b.one("MatMul", [probs, v], outs[0])


@converter("layer_norm")
def _layer_norm(b, eq, ins, outs):
    x, w, bias = ins
    if not w:
        d = eq.input_types[0].shape[-1]
        if isinstance(d, int):
            w = b.const(np.ones(d, dtype=np.float32), "ones")
        else:
            w = b.one("ConstantOfShape", [b.dim(x, -1)],
                      value=b.onnx.numpy_helper.from_array(np.ones(1, dtype=np.float32)))
    args = [x, w] + ([bias] if bias else [])
    b.one("LayerNormalization", args, outs[0], axis=-1, epsilon=float(eq.params["eps"]))


@converter("batch_norm")
def _batch_norm(b, eq, ins, outs):
    x, w, bias = ins
    mean = b.const(np.asarray(b.weights[eq.state["running_mean"]], np.float32),
                   name=eq.state["running_mean"])
    var = b.const(np.asarray(b.weights[eq.state["running_var"]], np.float32),
                  name=eq.state["running_var"])
    c = np.asarray(b.weights[eq.state["running_mean"]]).shape[0]
    w = w or b.const(np.ones(c, dtype=np.float32), "ones")
    bias = bias or b.const(np.zeros(c, dtype=np.float32), "zeros")
    b.one("BatchNormalization", [x, w, bias, mean, var], outs[0],
          epsilon=float(eq.params["eps"]), momentum=1.0 - float(eq.params["momentum"]))


# ------------------------------------------------------------------ conv and pooling


@converter("conv2d")
def _conv2d(b, eq, ins, outs):
    p, s, d = eq.params["padding"], eq.params["stride"], eq.params["dilation"]
    args = [a for a in ins if a]
    b.one("Conv", args, outs[0], strides=[s, s], pads=[p] * 4, dilations=[d, d],
          group=int(eq.params["groups"]))


@converter("max_pool2d", "avg_pool2d")
def _pool(b, eq, ins, outs):
    k, p = eq.params["kernel"], eq.params["padding"]
    s = eq.params["stride"] or k
    attrs = {"kernel_shape": [k, k], "strides": [s, s], "pads": [p] * 4}
    if eq.op.name == "avg_pool2d":
        b.one("AveragePool", ins, outs[0], count_include_pad=int(
            eq.params["count_include_pad"]), **attrs)
    else:
        b.one("MaxPool", ins, outs[0], **attrs)


# ------------------------------------------------------------------ reductions


def _axes(eq: Equation) -> list[int]:
    from engine.ops.reduce import reduce_axes

    return list(reduce_axes(eq.params, _rank(eq)))


@converter("sum", "mean", "max")
def _reduce(b, eq, ins, outs):
    op = {"sum": "ReduceSum", "mean": "ReduceMean", "max": "ReduceMax"}[eq.op.name]
    b.reduce(op, ins[0], _axes(eq), eq.params["keepdims"], outs[0])


@converter("var")
def _var(b, eq, ins, outs):
    x, axes = ins[0], _axes(eq)
    centred = b.one("Sub", [x, b.reduce("ReduceMean", x, axes, True)])
    total = b.reduce("ReduceSum", b.one("Mul", [centred, centred]), axes,
                     eq.params["keepdims"])
    count = b.one("Gather", [b.one("Shape", [x]), b.ints(axes)], axis=0)
    count = b.one("Cast", [b.reduce("ReduceProd", count, [0], False)],
                  to=b.onnx.TensorProto.FLOAT)
    count = b.one("Sub", [count, b.scalar(eq.params["correction"])])
    b.one("Div", [total, count], outs[0])


# ------------------------------------------------------------------ shape ops


@converter("permute")
def _permute(b, eq, ins, outs):
    from engine.ops.shape import permutation

    b.one("Transpose", ins, outs[0], perm=list(permutation(eq.params["axes"], _rank(eq))))


@converter("transpose")
def _transpose(b, eq, ins, outs):
    rank = _rank(eq)
    perm = list(range(rank))
    i = normalize_axis(eq.params["dim0"], rank, "x")
    j = normalize_axis(eq.params["dim1"], rank, "x")
    perm[i], perm[j] = perm[j], perm[i]
    b.one("Transpose", ins, outs[0], perm=perm)


@converter("reshape")
def _reshape(b, eq, ins, outs):
    from engine.ops.shape import unify_target  # symbols unified with fixed sizes, as the op

    x_shape = eq.input_types[0].shape
    shape = b.shape_tensor(ins[0], x_shape, unify_target(x_shape, eq.params["shape"]))
    b.one("Reshape", [ins[0], shape], outs[0])


@converter("broadcast_to")
def _broadcast_to(b, eq, ins, outs):
    shape = b.shape_tensor(ins[0], eq.input_types[0].shape, list(eq.params["shape"]))
    b.one("Expand", [ins[0], shape], outs[0])


@converter("concat")
def _concat(b, eq, ins, outs):
    b.one("Concat", ins, outs[0], axis=normalize_axis(eq.params["axis"], _rank(eq), "inputs"))


@converter("split")
def _split(b, eq, ins, outs):
    from engine.ops.shape import SPLIT_MAX

    x = ins[0]
    axis = normalize_axis(eq.params["axis"], _rank(eq), "x")
    n = b.dim(x, axis)
    sizes = list(eq.params["sizes"])
    if sizes:
        known = sum(s for s in sizes if s != -1)
        lengths = [b.one("Sub", [n, b.ints([known])]) if s == -1 else b.ints([s])
                   for s in sizes]
    else:
        piece = b.one("Div", [n, b.ints([eq.params["parts"]])])
        lengths = [piece] * eq.params["parts"]
    start = b.ints([0])
    for k in range(SPLIT_MAX):
        stop = b.one("Add", [start, lengths[k]]) if k < len(lengths) else start
        b.one("Slice", [x, start, stop, b.ints([axis])], outs[k])
        start = stop


@converter("slice")
def _slice(b, eq, ins, outs):
    axis = normalize_axis(eq.params["axis"], _rank(eq), "x")
    stop = eq.params["stop"]
    b.one("Slice", [ins[0], b.ints([eq.params["start"]]),
                    b.ints([INT64_MAX if stop is None else stop]), b.ints([axis]),
                    b.ints([eq.params["step"]])], outs[0])


@converter("index")
def _index(b, eq, ins, outs):
    axis = normalize_axis(eq.params["axis"], _rank(eq), "x")
    index = b.const(np.asarray(eq.params["index"], dtype=np.int64), "index")
    b.one("Gather", [ins[0], index], outs[0], axis=axis)


# ------------------------------------------------------------------ the graph


def _value_info(onnx, name: str, t) -> object:
    elem = onnx.TensorProto.INT64 if t.dtype == "int" else onnx.TensorProto.FLOAT
    dims = [d if isinstance(d, int) else str(d) for d in t.shape]
    return onnx.helper.make_tensor_value_info(name, elem, dims)


def build_onnx(model: Model, weights: dict[str, np.ndarray], opset: int = DEFAULT_OPSET):
    """The ONNX ``ModelProto`` of *model* with *weights* (checked, not yet saved)."""
    onnx = _onnx()
    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise WiregradError(f"opset {opset} is not supported: choose {MIN_OPSET} to {newest}",
                            field="opset")
    for eq in model.equations:
        if eq.op.name not in ONNX_OPS:
            why = NOT_EXPORTABLE.get(eq.op.name, "no ONNX mapping exists for it yet")
            raise WiregradError(f"'{eq.op.name}' (in {eq.path}) cannot be exported to ONNX: "
                                f"{why}", node=eq.top)
    b = Builder(model, weights, opset)
    for p in model.inputs:
        b.names[p.value] = p.name
    for eq in model.equations:
        b.prefix = eq.path + "/"
        ins = [b.name(v) if v is not None else "" for v in eq.inputs]
        outs = [b.name(v) for v in eq.outputs]
        ONNX_OPS[eq.op.name](b, eq, ins, outs)
    b.prefix = ""
    for p in model.outputs:
        b.one("Identity", [b.name(p.value)], p.name)
    graph = onnx.helper.make_graph(
        b.nodes, _graph_name(model),
        [_value_info(onnx, p.name, p.type) for p in model.inputs],
        [_value_info(onnx, p.name, p.type) for p in model.outputs],
        initializer=list(b.initializers.values()))
    proto = onnx.helper.make_model_gen_version(
        graph, opset_imports=[onnx.helper.make_opsetid("", opset)],
        producer_name="wiregrad", doc_string=model.doc.get("meta", {}).get("description", ""))
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:  # a bug in a converter, not in the graph
        raise WiregradError(f"the exported ONNX model does not pass the checker: {exc}") from exc
    return proto


def _graph_name(model: Model) -> str:
    return model.doc.get("meta", {}).get("name") or "wiregrad_model"


def export_onnx(model: Model, weights: dict[str, np.ndarray], out: str | Path,
                opset: int = DEFAULT_OPSET, base_dir: Path | None = None) -> Path:
    """Write *model* as ONNX to *out* (atomically); returns the path. A text model's tokenizer
    goes with it (:mod:`engine.export.tokenizer_file`): in ``metadata_props`` and as
    ``<stem>.tokenizer.json`` beside *out* (*base_dir*: where its corpus path is relative to)."""
    from engine.base.io import atomic_write_bytes
    from engine.export.tokenizer_file import (
        add_metadata,
        exported_tokenizer,
        sibling_path,
        write_tokenizer,
    )

    proto = build_onnx(model, weights, opset)
    out = Path(out)
    tok = exported_tokenizer(model.doc, base_dir)
    if tok is not None:
        add_metadata(proto, tok, sibling_path(out).name)
    if out.parent and not out.parent.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, proto.SerializeToString())
    if tok is not None:
        write_tokenizer(sibling_path(out), tok)
    return out


from engine.export.onnx_recurrent import CONVERTERS as _RECURRENT  # noqa: E402

ONNX_OPS.update(_RECURRENT)  # rnn / lstm / gru
