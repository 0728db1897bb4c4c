"""The model of a graph: the equations that compute the loss's prediction input.

"The model" (docs/training.md) is the subgraph from the data inputs to the loss's prediction
input; loss, optimizer, metric and data nodes are not part of it. Its inputs and outputs get
names that every export and ``wiregrad run`` share (docs/export.md):

* an input is a port of a data node the model reads: ``<node>.<port>`` (``text.tokens``,
  ``spirals.points``); a graph ``input`` node (one port) is named by its id alone (``x``);
* an output is named after the node that produces the prediction (``fc2``, ``head``), or
  ``<node>.<port>`` when that node has several output ports. A graph without a loss node
  exports the outputs of its sink nodes (nodes whose outputs feed nothing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.base import paths
from engine.base.errors import WiregradError
from engine.core.compile import compile_document
from engine.core.program import Equation, Program, WeightInfo, closure
from engine.core.registry import TensorType, format_shape

SKIPPED_CATEGORIES = ("loss", "metric", "optimizer")


@dataclass
class Port:
    """One model input or output: its export name, program value, node, port and type."""

    name: str
    value: str
    node: str
    port: str
    type: TensorType


@dataclass
class Model:
    program: Program
    doc: dict
    equations: list[Equation]  # model equations in program order (no data sources)
    inputs: list[Port]
    outputs: list[Port]
    loss: Equation | None
    parameters: dict[str, WeightInfo] = field(default_factory=dict)
    state: dict[str, WeightInfo] = field(default_factory=dict)

    @property
    def input_names(self) -> list[str]:
        return [p.name for p in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [p.name for p in self.outputs]


def _port_of(program: Program, value: str) -> tuple[str, str]:
    """(top-level node, exposed port) of a value a top-level node exposes."""
    for node, values in program.node_outputs.items():
        if value in values:
            ports = list(program.nodes[node].outputs)
            return node, ports[values.index(value)]
    path, _, port = value.rpartition(":")
    return path.split(".")[0], port


def _output_ports(program: Program, values: list[str]) -> list[Port]:
    out = []
    for value in values:
        node, port = _port_of(program, value)
        several = len(program.node_outputs.get(node, [])) > 1
        out.append(Port(f"{node}.{port}" if several else node, value, node, port,
                        program.values[value]))
    return out


def _sinks(program: Program) -> list[str]:
    used = {v for eq in program.equations for v in eq.inputs if v is not None}
    values = []
    for node, outs in program.node_outputs.items():
        eqs = [eq for eq in program.equations if eq.top == node]
        if not eqs or not outs or any(eq.op.category in SKIPPED_CATEGORIES + ("data",)
                                      for eq in eqs if eq.path == node):
            continue
        if not any(o in used for o in outs):
            values += outs
    return values


def extract_model(doc: dict, dtype: str = "float32", program: Program | None = None) -> Model:
    """Compile *doc* and cut out its model; errors name the node at fault."""
    program = program or compile_document(doc, dtype)
    losses = [eq for eq in program.equations if eq.op.category == "loss" and eq.path == eq.top]
    if len(losses) > 1:
        raise WiregradError("the graph has several loss nodes; the model is ambiguous",
                            node=losses[1].path)
    loss = losses[0] if losses else None
    if loss is not None:
        if loss.inputs[0] is None:
            raise WiregradError("the loss's prediction input is not connected", node=loss.path)
        targets = [loss.inputs[0]]
    else:
        targets = _sinks(program)
        if not targets:
            raise WiregradError("the graph has no loss node and no output to export")
    eqs = closure(program.equations, targets)
    data = [eq for eq in eqs if eq.op.category == "data"]
    body = [eq for eq in eqs if eq.op.category != "data"]
    consumed = {v for eq in body for v in eq.inputs if v is not None} | set(targets)
    inputs = []
    for eq in data:
        for port, value in zip(eq.op.outputs, eq.outputs):
            if value in consumed:
                name = eq.path if eq.op.name == "input" else f"{eq.path}.{port.name}"
                inputs.append(Port(name, value, eq.path, port.name, program.values[value]))
    outputs = _output_ports(program, targets)
    params = {n: w for eq in body for n in eq.weights.values()
              for w in [program.parameters[n]]}
    state = {n: w for eq in body for n in eq.state.values() for w in [program.state[n]]}
    return Model(program, doc, body, inputs, outputs, loss, params, state)


# ------------------------------------------------------------------ weights


def resolve_weights(model: Model, doc_path: str | Path | None = None,
                    weights: str | Path | dict | None = None,
                    seed: int | None = None) -> tuple[dict[str, np.ndarray], str]:
    """The model's parameters and state: from *weights* (a file or a dict), else the document's
    own weights file, else a fresh initialisation with the training seed.

    Returns ``(arrays by Wiregrad name, where they came from)``.
    """
    from engine.base.io import model_weights
    from engine.core import document
    from engine.core.run import init_weights

    source = "fresh initialisation"
    loaded: dict[str, np.ndarray] | None = None
    if isinstance(weights, dict):
        loaded, source = weights, "the given weights"
    elif weights is not None:
        loaded, source = model_weights(weights), str(weights)
    elif model.doc.get("weights") and doc_path is not None:
        path = paths.contained(Path(doc_path).parent, model.doc["weights"]["path"],
                               "weights.path")
        if not path.is_file():
            raise WiregradError(f"the document's weights file {path} is missing",
                                field="weights")
        loaded, source = model_weights(path), str(path)
    elif doc_path is not None and Path(doc_path).with_suffix(".safetensors").is_file():
        path = Path(doc_path).with_suffix(".safetensors")  # how presets ship their weights
        loaded, source = model_weights(path), str(path)
    if seed is None:
        seed = document.training_settings(model.doc)["seed"]
    out = init_weights(model.parameters, seed, np.float32)
    out.update(init_weights(model.state, seed, np.float32))
    if loaded is None:
        return out, source
    for name, info in {**model.parameters, **model.state}.items():
        if name not in loaded:
            if name in model.parameters:
                raise WiregradError(f"the weights lack the parameter '{name}'",
                                    node=info.node.split(".")[0])
            continue
        value = np.asarray(loaded[name])
        if tuple(value.shape) != tuple(info.shape):
            raise WiregradError(f"weight '{name}' has shape {list(value.shape)} but the graph "
                                f"needs {list(info.shape)}", node=info.node.split(".")[0])
        out[name] = np.ascontiguousarray(value, dtype=np.float32)
    return out, source


# ------------------------------------------------------------------ forward runs


def check_inputs(model: Model, inputs: dict[str, np.ndarray],
                 dtype=np.float32) -> dict[str, np.ndarray]:
    """Inputs by export name, checked against the model's ports and cast to their dtype.

    A graph imported from ONNX also takes its inputs by their ONNX names (kept in the
    document's ``extra.onnx_inputs``), which may hold characters node ids cannot."""
    aliases = (model.doc.get("extra") or {}).get("onnx_inputs")
    if isinstance(aliases, dict):
        inputs = {aliases[k] if k in aliases and isinstance(aliases[k], str) else k: v
                  for k, v in inputs.items()}
    missing = [p.name for p in model.inputs if p.name not in inputs]
    unknown = sorted(set(inputs) - set(model.input_names))
    if missing or unknown:
        parts = []
        if missing:
            parts.append("missing " + ", ".join(f"'{m}'" for m in missing))
        if unknown:
            parts.append("unknown " + ", ".join(f"'{u}'" for u in unknown))
        raise WiregradError(f"the inputs do not match the model ({'; '.join(parts)}); the "
                            f"model takes: {', '.join(model.input_names)}", field="inputs")
    out = {}
    bound: dict[str, int] = {}
    for p in model.inputs:
        arr = np.asarray(inputs[p.name])
        declared = p.type.shape
        ok = arr.ndim == len(declared)
        for have, d in zip(arr.shape, declared):
            ok = ok and (have == d if isinstance(d, int) else bound.setdefault(d, have) == have)
        if not ok:
            raise WiregradError(f"input '{p.name}' has shape {format_shape(arr.shape)} but the "
                                f"model expects {format_shape(declared)}", node=p.node)
        if p.type.dtype == "int":
            if arr.dtype.kind not in "iu":
                raise WiregradError(f"input '{p.name}' must hold integers (token ids or "
                                    f"labels), got {arr.dtype}", node=p.node)
            arr = arr.astype(np.int64)
        else:
            arr = arr.astype(dtype)
        out[p.name] = np.ascontiguousarray(arr)
    return out


def run_model(model: Model, weights: dict[str, np.ndarray],
              inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The model's outputs (evaluation mode) for *inputs*, both keyed by export name."""
    from engine.core.run import Executor

    executor = Executor(model.program)
    dtype = executor.dtype
    feeds = check_inputs(model, inputs, dtype)
    arrays = {k: np.ascontiguousarray(v, dtype=dtype) for k, v in weights.items()}
    state = {k: arrays[k].copy() for k in model.state}
    tape = executor.forward({}, arrays, state, training=False, equations=model.equations,
                            values={p.value: feeds[p.name] for p in model.inputs})
    return {p.name: np.asarray(tape.values[p.value]) for p in model.outputs}


def example_inputs(model: Model, sizes: dict[str, int] | None = None,
                   seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs for the model (symbolic sizes from *sizes*, default 2)."""
    from engine.core.compile import concrete_shape

    rng = np.random.default_rng(seed)
    out = {}
    for p in model.inputs:
        shape = concrete_shape(p.type.shape, sizes, 2)
        if p.type.dtype == "int":
            out[p.name] = rng.integers(0, _int_bound(model, p), size=shape, dtype=np.int64)
        else:
            out[p.name] = rng.standard_normal(shape).astype(np.float32)
    return out


def _int_bound(model: Model, port: Port) -> int:
    """Exclusive upper bound for random integer inputs: the smallest table they index."""
    bound = None
    for eq in model.equations:
        table_value = eq.inputs[1] if len(eq.inputs) > 1 else None
        if eq.op.name == "embedding" and eq.inputs[:1] == [port.value] and table_value:
            table = model.program.values[table_value].shape[0]
            if isinstance(table, int):
                bound = table if bound is None else min(bound, table)
    if bound is None:
        for eq in model.program.equations:
            if eq.path == port.node:
                bound = eq.params.get("high") or len(eq.params.get("vocab") or "") or None
    return int(bound or 2)
