"""Load weights into an existing graph by parameter name, from a safetensors weights file, a
training checkpoint or an ONNX model's initializers, reporting what matched and what did not.

Names are compared as written and, failing that, with ``_`` and ``.`` treated alike (an ONNX
initializer ``fc1.weight`` meets a Wiregrad parameter ``fc1.weight`` or ``fc1_weight``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.base.errors import WiregradError


@dataclass
class Transfer:
    """The arrays to load, by the graph's names, and what happened to every name."""

    weights: dict[str, np.ndarray] = field(default_factory=dict)
    matched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # the graph's, not in the file
    unused: list[str] = field(default_factory=list)  # the file's, not in the graph
    mismatched: list[dict] = field(default_factory=list)  # same name, another shape

    def to_json(self) -> dict:
        return {"matched": self.matched, "missing": self.missing, "unused": self.unused,
                "mismatched": self.mismatched}


def read_source(path: str | Path) -> dict[str, np.ndarray]:
    """Named arrays from a ``.onnx`` model (its initializers) or a weights/checkpoint file."""
    path = Path(path)
    if path.suffix == ".onnx":
        from engine.export.onnx_reader import read_model

        return {k: np.asarray(v) for k, v in read_model(path).initializers.items()
                if np.asarray(v).dtype.kind == "f"}
    from engine.base.io import model_weights

    return model_weights(path)


def _key(name: str) -> str:
    return name.replace("_", ".")


def match_weights(doc: dict, source: dict[str, np.ndarray]) -> Transfer:
    """Match *source* arrays to *doc*'s parameters and state by name and shape."""
    from engine.core.compile import compile_document

    program = compile_document(doc)
    wanted = {**program.parameters, **program.state}
    by_key: dict[str, str] = {}
    for name in source:
        by_key.setdefault(_key(name), name)
    out, used = Transfer(), set()
    for name, info in sorted(wanted.items()):
        found = name if name in source else by_key.get(_key(name))
        if found is None:
            out.missing.append(name)
            continue
        used.add(found)
        array = np.asarray(source[found])
        if tuple(array.shape) != tuple(info.shape):
            out.mismatched.append({"name": name, "file": list(array.shape),
                                   "graph": list(info.shape)})
            continue
        out.weights[name] = np.ascontiguousarray(array, dtype=np.float32)
        out.matched.append(name)
    out.unused = sorted(set(source) - used)
    if not out.matched:
        raise WiregradError(f"none of the file's {len(source)} tensors matches a parameter of "
                            "this graph by name and shape")
    return out
