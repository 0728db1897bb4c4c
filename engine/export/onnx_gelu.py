"""Recognise GELU written out in elementary ONNX ops (opsets before 20 have no ``Gelu``).

Exact: ``0.5·x·(1 + erf(x/√2))``; tanh form: ``0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))``,
in the spellings Wiregrad's and PyTorch's exporters write. :func:`find_gelu` returns
``{output value: (x, approximate, internal node indices)}``.
"""

from __future__ import annotations

import math

from engine.export.onnx_fold import Known
from engine.export.onnx_reader import OnnxModel

SQRT_HALF = 1 / math.sqrt(2)
TANH_SCALE = math.sqrt(2 / math.pi)


def _close(value: float | None, target: float) -> bool:
    return value is not None and abs(value - target) <= 1e-4 * abs(target)


def find_gelu(model: OnnxModel, known: Known) -> dict[str, tuple[str, str, set[int]]]:
    nodes = list(model.graph.node)
    producer = {out: i for i, n in enumerate(nodes) for out in n.output}

    def scalar(value: str) -> float | None:
        array = known.array(value)
        return float(array.reshape(-1)[0]) if array is not None and array.size == 1 else None

    def op(value: str, op_type: str):
        i = producer.get(value)
        return (i, nodes[i]) if i is not None and nodes[i].op_type == op_type else (None, None)

    def times_const(value: str, const: float):
        """x when value = x·const (Mul with the constant on either side) or x/(1/const)."""
        i, node = op(value, "Mul")
        if node is not None:
            for a, c in ((0, 1), (1, 0)):
                if _close(scalar(node.input[c]), const):
                    return node.input[a], i
        i, node = op(value, "Div")
        if node is not None and _close(scalar(node.input[1]), 1 / const):
            return node.input[0], i
        return None, None

    found = {}
    for i, node in enumerate(nodes):
        if node.op_type != "Mul":
            continue
        for half_side in (0, 1):
            x, j = times_const(node.input[half_side], 0.5)
            a, add = op(node.input[1 - half_side], "Add")
            if x is None or add is None:
                continue
            one = [k for k in (0, 1) if _close(scalar(add.input[k]), 1.0)]
            if not one:
                continue
            core = add.input[1 - one[0]]
            e, erf = op(core, "Erf")
            if erf is not None:
                inner, m = times_const(erf.input[0], SQRT_HALF)
                if inner == x:
                    found[node.output[0]] = (x, "none", {i, j, a, e, m})
                    break
    return found
