"""The training-graph convention (docs/training.md): data-source nodes feed the model's
inputs and labels, exactly one loss node, one optimizer node wired to the loss, and metric
nodes wired to model outputs and labels. "The model" is the subgraph from the data nodes to
the loss's prediction input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.base.errors import WiregradError
from engine.core.program import Program
from engine.core.registry import get as get_spec


@dataclass
class TrainingGraph:
    loss: str  # loss node id
    loss_value: str
    prediction_value: str  # the value wired into the loss's first input
    optimizer: str
    optimizer_params: dict
    datasets: dict = field(default_factory=dict)  # data node id -> engine.data.datasets.Dataset
    data_ports: dict[str, list[str]] = field(default_factory=dict)
    batch_sizes: dict[str, int] = field(default_factory=dict)
    metric_values: dict[str, str] = field(default_factory=dict)  # metric node id -> value
    metric_types: dict[str, str] = field(default_factory=dict)
    embedding_weights: set[str] = field(default_factory=set)
    sequence_nodes: set[str] = field(default_factory=set)  # data nodes yielding token windows

    def batch_examples(self, batches: dict) -> int:
        for batch in batches.values():
            for arr in batch.values():
                return int(arr.shape[0]) if arr.ndim else 1
        return 0

    def batch_tokens(self, batches: dict) -> int:
        total = 0
        for node in self.sequence_nodes:
            first = next(iter(batches[node].values()))
            total += int(first.size)
        return total


def _single(doc: dict, category: str, what: str) -> dict:
    found = [n for n in doc["nodes"] if _category(n["type"]) == category]
    if len(found) != 1:
        ids = ", ".join(n["id"] for n in found) or "none"
        raise WiregradError(f"a trainable graph needs exactly one {what} node (found: {ids})",
                            node=found[1]["id"] if len(found) > 1 else None)
    return found[0]


def _category(type_name: str) -> str | None:
    try:
        return get_spec(type_name).category
    except KeyError:
        return None


def analyse(doc: dict, program: Program, base_dir: str | Path | None = None) -> TrainingGraph:
    """Check the convention and load the data; errors name the offending node."""
    from engine.data.datasets import load_dataset

    loss = _single(doc, "loss", "loss")
    opt = _single(doc, "optimizer", "optimizer")
    wired = [e for e in doc["edges"] if e["dst"]["node"] == opt["id"]]
    if not wired or wired[0]["src"]["node"] != loss["id"]:
        raise WiregradError(f"the optimizer must be wired to the loss '{loss['id']}'",
                            node=opt["id"], port="loss")
    loss_eq = next(eq for eq in program.equations if eq.path == loss["id"])
    prediction = loss_eq.inputs[0]
    if prediction is None:
        raise WiregradError("wire the model's output into the loss", node=loss["id"],
                            port=loss_eq.op.inputs[0].name)
    graph = TrainingGraph(
        loss=loss["id"], loss_value=loss_eq.outputs[0], prediction_value=prediction,
        optimizer=opt["id"],
        optimizer_params=next(eq for eq in program.equations if eq.path == opt["id"]).params,
    )
    for eq in program.equations:
        if eq.op.name == "input" and eq.top == eq.path:
            raise WiregradError("this input is not fed by a data source; replace it with a data "
                                "node (e.g. classification_2d) to train", node=eq.path)
        if eq.op.category == "data":
            graph.datasets[eq.path] = load_dataset(eq.op.name, eq.params, Path(base_dir)
                                                   if base_dir else None, node=eq.path)
            graph.data_ports[eq.path] = [p.name for p in eq.op.outputs]
            graph.batch_sizes[eq.path] = int(eq.params["batch_size"])
            if eq.op.name == "text_corpus":
                graph.sequence_nodes.add(eq.path)
        elif eq.op.category == "metric" and eq.top == eq.path:
            graph.metric_values[eq.path] = eq.outputs[0]
            graph.metric_types[eq.path] = eq.op.name
        elif eq.op.name == "embedding":
            weight = eq.inputs[1] if len(eq.inputs) > 1 else None
            if weight is not None:
                graph.embedding_weights.add(weight.rsplit(":", 1)[0])
    if not graph.datasets:
        raise WiregradError("a trainable graph needs a data-source node feeding the model",
                            node=loss["id"])
    for node, ds in graph.datasets.items():
        if not len(next(iter(ds.train.values()), np.zeros(0))):
            raise WiregradError("the training split is empty", node=node)
    return graph
