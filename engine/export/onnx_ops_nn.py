"""ONNX → registry ops for normalisation, convolution, pooling and recurrent layers (the rest
of :data:`engine.export.onnx_ops.ONNX_TO_WIREGRAD`)."""

from __future__ import annotations

import numpy as np

from engine.export.onnx_fold import Zeros, attr
from engine.export.onnx_ops import _hint, _rank, _wire, f32, translator


@translator("LayerNormalization")
def _layer_norm(b, node) -> None:
    if int(attr(node, "axis", -1)) not in (-1, (_rank(b, node.input[0]) or 0) - 1):
        b.unmapped(node, "LayerNormalization over more than the last axis")
        return
    _wire(b, node, "layer_norm", ["x", "weight", "bias"],
          {"eps": f32(attr(node, "epsilon", 1e-5))})


@translator("BatchNormalization")
def _batch_norm(b, node) -> None:
    """Evaluation-mode batch norm; the running statistics become the node's state."""
    if len(node.output) > 1 and any(node.output[1:]):
        b.unmapped(node, "training-mode BatchNormalization outputs")
        return
    consts = [b.const(v) for v in node.input[1:5]]
    if any(c is None for c in consts):
        b.unmapped(node, "BatchNormalization needs constant scale, bias, mean and variance")
        return
    momentum = f32(1.0 - f32(attr(node, "momentum", 0.9)))
    b.materialise(node.input[0])
    b.add("BatchNorm", _hint(node), {"eps": f32(attr(node, "epsilon", 1e-5)),
                                     "momentum": momentum},
          {"x": node.input[0]}, {"y": node.output[0]})
    b.batch_stats[node.output[0]] = [np.asarray(c, np.float32) for c in consts]


def _square(node, name: str, count: int, default: int) -> int | None:
    values = list(attr(node, name, [default] * count))
    return int(values[0]) if len(set(values)) == 1 else None


@translator("Conv")
def _conv(b, node) -> None:
    kernel = b.const(node.input[1])
    if kernel is None or kernel.ndim != 4:
        b.unmapped(node, "only 2-D convolutions with constant weights map")
        return
    pads = list(attr(node, "pads", [0, 0, 0, 0]))
    stride, dilation = _square(node, "strides", 2, 1), _square(node, "dilations", 2, 1)
    auto = attr(node, "auto_pad", b"NOTSET")
    if len(set(pads)) != 1 or stride is None or dilation is None or auto not in (
            b"NOTSET", "NOTSET"):
        b.unmapped(node, "only square strides/dilations and equal padding on every side map")
        return
    _wire(b, node, "conv2d", ["x", "weight", "bias"],
          {"stride": stride, "padding": int(pads[0]), "dilation": dilation,
           "groups": int(attr(node, "group", 1))})


@translator("MaxPool", "AveragePool")
def _pool(b, node) -> None:
    kernel = list(attr(node, "kernel_shape", []))
    pads = list(attr(node, "pads", [0, 0, 0, 0]))
    stride = _square(node, "strides", 2, 1)
    if (len(kernel) != 2 or kernel[0] != kernel[1] or len(set(pads)) != 1 or stride is None
            or attr(node, "ceil_mode", 0) or len(node.output) > 1 and node.output[1]
            or _square(node, "dilations", 2, 1) != 1):
        b.unmapped(node, "only square kernels and strides, equal padding, no ceil mode map")
        return
    params = {"kernel": int(kernel[0]), "stride": stride, "padding": int(pads[0])}
    if node.op_type == "AveragePool":
        params["count_include_pad"] = bool(attr(node, "count_include_pad", 0))
        _wire(b, node, "avg_pool2d", ["x"], params)
    else:
        _wire(b, node, "max_pool2d", ["x"], params)


@translator("GlobalAveragePool")
def _global_pool(b, node) -> None:
    _wire(b, node, "mean", ["x"], {"axes": [-2, -1], "keepdims": True})


# ---------------------------------------------------------------- recurrent layers

# ONNX gate block k holds PyTorch's gate RECURRENT_ORDER[kind][k] (inverse of the exporter's
# engine.export.onnx_recurrent.ORDER): LSTM i, o, f, c → i, f, g, o; GRU z, r, h → r, z, n.
RECURRENT = {"RNN": "rnn", "LSTM": "lstm", "GRU": "gru"}


def _torch_gates(array: np.ndarray, kind: str, hidden: int) -> np.ndarray:
    from engine.export.onnx_recurrent import ORDER

    order = ORDER[kind]
    blocks = [array[k * hidden:(k + 1) * hidden] for k in range(len(order))]
    return np.concatenate([blocks[order.index(g)] for g in range(len(order))], axis=0)


@translator("RNN", "LSTM", "GRU")
def _recurrent(b, node) -> None:
    """One forward direction, time-major (layout 0) → the batch-first fused op, with the
    weights in PyTorch's gate order and names (``weight_ih``, ``bias_hh``…)."""
    kind = RECURRENT[node.op_type]
    hidden = int(attr(node, "hidden_size", 0))
    direction = attr(node, "direction", b"forward")
    inputs = list(node.input) + [""] * (7 - len(node.input))
    w, r = b.const(inputs[1]), b.const(inputs[2])
    bias = b.const(inputs[3]) if inputs[3] else None
    problem = None
    if direction not in (b"forward", "forward") or attr(node, "layout", 0):
        problem = "only one forward direction, time-major, maps"
    elif w is None or r is None or w.shape[0] != 1 or (inputs[3] and bias is None):
        problem = "the weights must be constants of one direction"
    elif inputs[4] or attr(node, "clip") is not None:
        problem = "sequence lengths and cell clipping are not supported"
    elif kind == "gru" and not attr(node, "linear_before_reset", 0):
        problem = "GRU maps with linear_before_reset = 1 (PyTorch's formula)"
    elif kind == "rnn" and attr(node, "activations") not in (None, [b"Tanh"], [b"Relu"]):
        problem = "RNN activations other than tanh or relu"
    if problem:
        b.unmapped(node, problem)
        return
    hint = _hint(node)
    names = {"weight_ih": w[0], "weight_hh": r[0]}
    if bias is not None:
        names["bias_ih"], names["bias_hh"] = np.split(bias[0], 2)
    ins: dict[str, str] = {}
    for port, array in names.items():
        value = f"{node.output[0] or hint}::{port}"
        param = b.add("parameter", f"{hint}_{port}", {"shape": list(array.shape),
                                                       "init": "zeros",
                                                       "decay": array.ndim >= 2},
                      outs={"out": value})
        b.weights[param.id] = _torch_gates(np.asarray(array, np.float32), kind, hidden)
        ins[port] = value
    x = _batch_first(b, inputs[0], hint)
    ins["x"] = x
    for port, value in (("h0", inputs[5]), ("c0", inputs[6])):
        if isinstance(b.known.get(b.resolve(value)) if value else None, Zeros):
            continue  # zeros: the op's own default initial state
        if value and (port == "h0" or kind == "lstm"):
            b.materialise(value)
            state = f"{value}::{port}"
            b.add("reshape", f"{hint}_{port}", {"shape": ["B", hidden]}, {"x": value},
                  {"out": state})
            ins[port] = state
    params = {"nonlinearity": "relu" if attr(node, "activations") == [b"Relu"] else "tanh"} \
        if kind == "rnn" else {}
    outs = {"y": f"{hint}::y", "h_n": f"{hint}::h_n"} | ({"c_n": f"{hint}::c_n"}
                                                           if kind == "lstm" else {})
    b.add(kind, hint, params, ins, outs)
    _onnx_outputs(b, node, outs, hidden, hint)


def _batch_first(b, value: str, hint: str) -> str:
    b.materialise(value)
    out = f"{value}::batch_first"
    b.add("permute", f"{hint}_batch_first", {"axes": [1, 0, 2]}, {"x": value}, {"out": out})
    return out


def _onnx_outputs(b, node, outs: dict, hidden: int, hint: str) -> None:
    """Y (T, 1, B, H) and the last states (1, B, H), as ONNX lays them out."""
    y, h_n, c_n = (list(node.output) + ["", "", ""])[:3]
    if y and b.is_used(y):
        time_major = f"{y}::time_major"
        b.add("permute", f"{hint}_time_major", {"axes": [1, 0, 2]}, {"x": outs["y"]},
              {"out": time_major})
        b.add("reshape", f"{hint}_y", {"shape": [-1, 1, "B", hidden]}, {"x": time_major},
              {"out": y})
    for onnx_value, ours in ((h_n, outs["h_n"]), (c_n, outs.get("c_n"))):
        if onnx_value and ours and b.is_used(onnx_value):
            b.add("reshape", f"{hint}_{onnx_value}", {"shape": [1, "B", hidden]},
                  {"x": ours}, {"out": onnx_value})
