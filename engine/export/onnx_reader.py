"""Read an ONNX model safely and fold what is known before running it.

:func:`read_model` checks the file (size, opset, external data only inside the model's folder,
declared sizes), runs ONNX shape inference and gives each symbolic dimension a Wiregrad symbol
(the first graph input's first one becomes the batch symbol ``B``); :mod:`engine.export.
onnx_fold` then folds what is known before running.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.base.errors import MissingExtraError, WiregradError

MAX_MODEL_BYTES = 2 * 1024**3
MAX_TENSOR_ELEMENTS = 256 * 1024**2  # one declared initializer or shape
MIN_OPSET, MAX_OPSET = 13, 23
SYMBOLS = ("B", "T", "S", "N", "M", "K", "L", "P", "Q", "R")

Dim = int | str


@dataclass
class OnnxModel:
    """What the importer needs of an ONNX model, read and checked."""

    path: Path
    graph: Any  # onnx.GraphProto with shapes inferred
    opset: int
    inputs: list[tuple[str, list[Dim], str]]  # (name, shape, "float" | "int")
    outputs: list[str]
    shapes: dict[str, list[Dim]] = field(default_factory=dict)  # value name → inferred shape
    initializers: dict[str, np.ndarray] = field(default_factory=dict)


def _onnx():
    try:
        import onnx
    except ImportError:
        raise MissingExtraError("importing ONNX models needs the onnx package",
                                extra="onnx") from None
    return onnx


def read_model(path: str | Path) -> OnnxModel:
    """Load *path*, refusing anything hostile or beyond what Wiregrad maps, with a clear error."""
    onnx = _onnx()
    path = Path(path)
    if not path.is_file():
        raise WiregradError(f"no ONNX model at {path}")
    if path.stat().st_size > MAX_MODEL_BYTES:
        raise WiregradError(f"{path} is larger than {MAX_MODEL_BYTES >> 30} GiB")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 (protobuf raises many kinds on broken files)
        raise WiregradError(f"{path} is not a readable ONNX model ({type(exc).__name__}: "
                            f"{str(exc)[:200]})") from None
    _load_external_data(onnx, model, path)
    opset = _default_opset(model)
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise WiregradError(f"{path} uses ONNX opset {opset}; Wiregrad imports opsets "
                            f"{MIN_OPSET}–{MAX_OPSET}")
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception as exc:  # noqa: BLE001
        raise WiregradError(f"ONNX shape inference failed on {path}: {str(exc)[:200]}") from None
    graph = inferred.graph
    initializers = {t.name: _array(onnx, t) for t in graph.initializer}
    symbols = _SymbolNames()
    shapes: dict[str, list[Dim]] = {}
    for info in graph.input:  # the inputs' sizes name the symbols (B first)
        if info.name not in initializers:
            _shape_of(info, symbols)
    symbols.closed = True
    for info in list(graph.input) + list(graph.value_info) + list(graph.output):
        shape = _shape_of(info, symbols)
        if shape is not None:
            shapes[info.name] = shape
    inputs = []
    for info in graph.input:
        if info.name in initializers:
            continue  # old exporters list initializers as inputs too
        if info.name not in shapes:
            raise WiregradError(f"graph input '{info.name}' has no declared shape")
        elem = info.type.tensor_type.elem_type
        kind = "int" if elem in (onnx.TensorProto.INT64, onnx.TensorProto.INT32) else "float"
        inputs.append((info.name, shapes[info.name], kind))
    return OnnxModel(path, graph, opset, inputs, [o.name for o in graph.output], shapes,
                     initializers)


def _default_opset(model) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    raise WiregradError("the model declares no default-domain ONNX opset")


def _load_external_data(onnx, model, path: Path) -> None:
    """Load tensors stored beside the model, only from files inside the model's folder."""
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    folder = path.parent.resolve()
    external = [t for t in _get_all_tensors(model) if uses_external_data(t)]
    for tensor in external:
        info = {e.key: e.value for e in tensor.external_data}
        location = info.get("location", "")
        target = (folder / location).resolve()
        if "\0" in location or os.path.isabs(location) or not target.is_relative_to(folder):
            raise WiregradError(f"tensor '{tensor.name}' stores its data outside the model's "
                                f"folder ({location!r}); refusing to read it")
        if not target.is_file():
            raise WiregradError(f"tensor '{tensor.name}': external data file {location!r} "
                                "is missing")
    if external:
        try:
            onnx.load_external_data_for_model(model, str(folder))
        except Exception as exc:  # noqa: BLE001
            raise WiregradError(f"cannot read the external data of {path}: "
                                f"{str(exc)[:200]}") from None


def _array(onnx, tensor) -> np.ndarray:
    count = int(np.prod([int(d) for d in tensor.dims], dtype=np.float64)) if tensor.dims else 1
    if count > MAX_TENSOR_ELEMENTS:
        raise WiregradError(f"initializer '{tensor.name}' declares {count:,} elements "
                            f"(more than {MAX_TENSOR_ELEMENTS:,})")
    try:
        array = onnx.numpy_helper.to_array(tensor)
    except Exception as exc:  # noqa: BLE001
        raise WiregradError(f"initializer '{tensor.name}' cannot be read: "
                            f"{str(exc)[:200]}") from None
    if array.size != count:
        raise WiregradError(f"initializer '{tensor.name}' holds {array.size} values but "
                            f"declares {count}")
    return array


class _SymbolNames:
    """ONNX dim_params (``batch``, ``s0``, ``unk__3``) → Wiregrad symbols (``B``, ``T``…)."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.closed = False  # after the inputs: other unknown sizes stay unnamed ("?…")

    def __call__(self, param: str) -> str:
        if param not in self.names and self.closed:
            return "?" + param
        if param not in self.names:
            if len(self.names) >= len(SYMBOLS):
                raise WiregradError(f"the model has more than {len(SYMBOLS)} symbolic sizes")
            self.names[param] = SYMBOLS[len(self.names)]
        return self.names[param]


def _shape_of(info, symbols: _SymbolNames) -> list[Dim] | None:
    t = info.type.tensor_type
    if not t.HasField("shape"):
        return None
    out: list[Dim] = []
    for d in t.shape.dim:
        if d.HasField("dim_value"):
            if not 0 <= d.dim_value <= MAX_TENSOR_ELEMENTS:
                raise WiregradError(f"value '{info.name}' declares a size of {d.dim_value}")
            out.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            out.append(symbols(d.dim_param))
        else:
            return None
    return out
