"""The graph being built while importing an ONNX model: nodes, weights and value producers."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from engine.base.errors import WiregradError
from engine.export.onnx_fold import Known
from engine.export.onnx_reader import OnnxModel

_SLUG = re.compile(r"[^A-Za-z0-9_]+")


@dataclass
class Node:
    """A Wiregrad node being built: ``ins``/``outs`` map its ports to ONNX value names."""

    id: str
    type: str
    params: dict = field(default_factory=dict)
    ins: dict[str, str] = field(default_factory=dict)
    outs: dict[str, str] = field(default_factory=dict)
    trainable: bool = True
    hint: str = ""  # the ONNX name it came from (an initializer's or a node's)


class UnmappedError(WiregradError):
    """The model uses ONNX ops or attributes Wiregrad cannot express."""


class Builder:
    """Collects nodes, their weights and the value → producer map while translating."""

    def __init__(self, model: OnnxModel, known: Known) -> None:
        self.model, self.known = model, known
        self.nodes: list[Node] = []
        self.weights: dict[str, np.ndarray] = {}
        self.producer: dict[str, tuple[Node, str]] = {}
        self.alias: dict[str, str] = {}
        self.ids: set[str] = set()
        self.problems: list[str] = []
        self.batch_stats: dict[str, list[np.ndarray]] = {}  # BatchNorm output → w, b, mean, var
        self.used: set[str] = set(model.outputs)

    # ---------------------------------------------------------------- naming

    def is_used(self, value: str) -> bool:
        """Whether a live ONNX node or the graph's outputs read *value* (set by the importer
        once it knows which nodes the outputs need)."""
        return value in self.used

    def unique_id(self, hint: str) -> str:
        base = _SLUG.sub("_", hint).strip("_") or "node"
        if not base[0].isalpha():
            base = "n_" + base
        base = base[:56]
        name, k = base, 1
        while name in self.ids:
            k += 1
            name = f"{base}_{k}"
        self.ids.add(name)
        return name

    # ---------------------------------------------------------------- values

    def resolve(self, value: str) -> str:
        while value in self.alias:
            value = self.alias[value]
        return value

    def shape(self, value: str) -> list | None:
        return self.model.shapes.get(self.resolve(value)) or self.model.shapes.get(value)

    def const(self, value: str) -> np.ndarray | None:
        return self.known.array(self.resolve(value))

    def add(self, type_name: str, hint: str, params: dict | None = None,
            ins: dict[str, str] | None = None, outs: dict[str, str] | None = None,
            trainable: bool = True) -> Node:
        node = Node(self.unique_id(hint), type_name, params or {},
                    {p: self.resolve(v) for p, v in (ins or {}).items()}, outs or {},
                    trainable, hint)
        for port, value in node.outs.items():
            self.producer[value] = (node, port)
        self.nodes.append(node)
        return node

    def materialise(self, value: str) -> None:
        """Make a node for a known constant that a computing op reads."""
        value = self.resolve(value)
        if value in self.producer:
            return
        array = self.known.array(value)
        if array is None:
            raise WiregradError(f"value '{value}' is neither computed nor a constant")
        source = self.known.origin.get(value, value)
        original = source in self.model.initializers
        if array.size == 1 and array.dtype.kind == "f" and not original:
            self.add("constant", f"const_{value}", {"value": float(array.reshape(-1)[0]),
                                                    "shape": list(array.shape)},
                     outs={"out": value})
            return
        if array.dtype.kind != "f":
            raise WiregradError(f"integer constant '{value}' is used as a tensor; Wiregrad "
                                "holds only float constants")
        node = self.add("parameter", source, {"shape": list(array.shape), "init": "zeros",
                                              "decay": array.ndim >= 2},
                        outs={"out": value}, trainable=original)
        self.weights[node.id] = np.asarray(array, dtype=np.float32)

    def unmapped(self, onnx_node, why: str) -> None:
        label = onnx_node.name or (onnx_node.output[0] if onnx_node.output else "?")
        self.problems.append(f"node '{label}' ({onnx_node.op_type}, opset "
                             f"{self.model.opset}): {why}")
