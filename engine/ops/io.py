"""Graph inputs, trainable parameters and constants."""

from __future__ import annotations

import numpy as np

from engine.base.errors import WiregradError
from engine.core.init import INITS
from engine.core.registry import (
    Example,
    OpSpec,
    Param,
    Port,
    TensorType,
    WeightSpec,
    format_shape,
    register,
)


def _input_infer(inputs, params):
    return [TensorType(tuple(params["shape"]), params["dtype"])]


def _input_forward(ctx, params):
    if ctx.feed is None:
        raise WiregradError("no data is fed to this input", node=ctx.eq.path)
    want = np.int64 if params["dtype"] == "int" else ctx.dtype
    arr = np.asarray(ctx.feed)
    declared = params["shape"]
    ok = arr.ndim == len(declared)
    bound: dict[str, int] = {}
    for have, d in zip(arr.shape, declared):
        if isinstance(d, int):
            ok = ok and have == d
        else:
            ok = ok and bound.setdefault(d, have) == have
    if not ok:
        raise WiregradError(
            f"data of shape {format_shape(arr.shape)} does not match the declared shape "
            f"{format_shape(declared)}", node=ctx.eq.path)
    if params["dtype"] == "int" and arr.dtype.kind not in "iu":
        raise WiregradError("expects integer data (labels or token ids)", node=ctx.eq.path)
    return np.ascontiguousarray(arr, dtype=want)


register(OpSpec(
    name="input",
    category="data",
    doc="""Graph input: a tensor fed from data.

    Declares the shape (integers, or symbols such as B for the batch) and whether it carries
    float features or integer labels / token ids. For integer inputs, ``high`` is the number
    of classes (values lie in [0, high)).""",
    inputs=[],
    outputs=[Port("out", dtype="any")],
    params=[
        Param("shape", "shape", ["B", 2], doc="Dimensions; symbols (B, T) stand for any size."),
        Param("dtype", "choice", "float", choices=("float", "int"), doc="Kind of values."),
        Param("high", "int", 0, minimum=0, doc="Integer inputs: values lie in [0, high)."),
    ],
    infer=_input_infer,
    forward=_input_forward,
    backward=lambda ctx, params, g: (),
    family="io",
))


def _param_shape(params, inputs):
    return tuple(params["shape"])


def _param_forward(ctx, params):
    return ctx.weights[""]


def _param_backward(ctx, params, g):
    ctx.weight_grads[""] = g
    return ()


register(OpSpec(
    name="parameter",
    category="op",
    doc="""A trainable tensor (weight or bias).

    Its value is learned by the optimizer. ``init`` picks the initialiser: ``normal`` uses
    ``std``; ``fan_in_uniform`` draws from U(-1/sqrt(fan_in), 1/sqrt(fan_in)) like PyTorch's
    Linear and Conv. ``fan_in`` 0 infers it from the shape, read PyTorch-style as (out, in,
    *kernel): dimension 1 times the kernel size (the last dimension of a 2-D weight, the length
    of a 1-D one).""",
    inputs=[],
    outputs=[Port("out")],
    params=[
        Param("shape", "ints", [1], doc="Concrete dimensions of the tensor."),
        Param("init", "choice", "fan_in_uniform", choices=INITS, doc="Initialiser."),
        Param("std", "float", 0.02, minimum=0.0, doc="Standard deviation for 'normal'."),
        Param("bound", "float", 0.1, minimum=0.0, doc="Bound for 'uniform'."),
        Param("fan_in", "int", 0, minimum=0, doc="Fan-in for 'fan_in_uniform' (0: infer)."),
        Param("decay", "bool", True, doc="Apply weight decay (2-D and larger tensors)."),
    ],
    infer=lambda inputs, params: [TensorType(tuple(params["shape"]), "float")],
    forward=_param_forward,
    backward=_param_backward,
    weights=[WeightSpec("", _param_shape, init="$init")],
    weight_value=True,
    examples=[Example([], {"shape": [3, 4], "init": "normal", "std": 1.0})],
    family="io",
))


def _constant_forward(ctx, params):
    return np.full(tuple(params["shape"]), params["value"], dtype=ctx.dtype)


register(OpSpec(
    name="constant",
    category="op",
    doc="""A constant tensor filled with one value (not trained).""",
    inputs=[],
    outputs=[Port("out")],
    params=[
        Param("value", "float", 0.0, doc="The fill value."),
        Param("shape", "ints", [], doc="Dimensions ([] for a scalar)."),
    ],
    infer=lambda inputs, params: [TensorType(tuple(params["shape"]), "float")],
    forward=_constant_forward,
    backward=lambda ctx, params, g: (),
    family="io",
))
