"""The single op registry: every node type the editor, validator and engine know.

An :class:`OpSpec` describes one node type: its ports, typed params, trainable weights
and non-trainable state, shape inference, FLOP count, and the forward/backward pair.
Op families register themselves from ``engine/ops/*.py`` with :func:`register`;
:func:`catalog` returns the same information as plain JSON-able data (no callables),
which is all the editor sees.

Conventions for implementers
----------------------------
* ``infer(inputs: list[TensorType], params: dict) -> list[TensorType]`` — shapes hold ints or
  symbol strings (``"B"``, ``"T"``); raise :class:`ShapeError` naming the port on mismatch.
* ``forward(ctx, params, *inputs) -> tuple[np.ndarray, ...]`` — weights arrive in
  ``ctx.weights`` (by spec name), state in ``ctx.state``; save what backward needs on ``ctx``.
* ``backward(ctx, params, *grad_outputs) -> tuple[np.ndarray | None, ...]`` — one gradient per
  input (``None`` for integer/non-differentiable inputs); weight gradients go to
  ``ctx.weight_grads[name]`` (the executor accumulates them).
* ``examples`` — small input cases the registry-wide gradient check and the PyTorch parity
  test run; every differentiable op must have at least one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.base.errors import WiregradError

CATEGORIES = ("op", "layer", "loss", "optimizer", "data", "metric", "output")
DTYPES = ("float", "int")

Dim = int | str
Shape = tuple[Dim, ...]


@dataclass(frozen=True)
class TensorType:
    """Shape (ints and symbols) and dtype kind (``float`` or ``int``) of a value."""

    shape: Shape
    dtype: str = "float"

    def to_json(self) -> dict:
        return {"shape": list(self.shape), "dtype": self.dtype}


class ShapeError(WiregradError):
    """Shape or dtype inference failed for an op; ``port`` names the offending input."""


@dataclass(frozen=True)
class Port:
    """An input or output of a node. A variadic input is addressed ``name[i]``."""

    name: str
    dtype: str = "float"  # "float", "int" or "any"
    variadic: bool = False
    optional: bool = False
    doc: str = ""
    differentiable: bool = True

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "dtype": self.dtype,
            "variadic": self.variadic,
            "optional": self.optional,
            "doc": self.doc,
        }


@dataclass(frozen=True)
class Param:
    """A typed, user-editable parameter of a node (shown in the inspector).

    kinds: ``int``, ``float``, ``bool``, ``choice``, ``string``, ``shape`` (list of ints or
    symbols), ``target_shape`` (like ``shape`` with at most one -1, for reshape), ``ints``
    (list of ints, e.g. axes), ``strings`` (list of strings).
    """

    name: str
    kind: str
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple = ()
    doc: str = ""
    optional: bool = False  # None allowed (e.g. axis=None means all axes)
    hot: bool = False  # may change while training runs
    exclusive_maximum: bool = False  # the value must lie strictly below ``maximum``

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "default": self.default,
            "min": self.minimum,
            "max": self.maximum,
            "choices": list(self.choices),
            "doc": self.doc,
            "optional": self.optional,
            "hot": self.hot,
            "exclusive_max": self.exclusive_maximum,
        }


@dataclass(frozen=True)
class WeightSpec:
    """A trainable weight (or non-trainable state tensor) owned by a node.

    ``shape(params, inputs) -> tuple[int, ...]`` gives its concrete shape;
    ``init`` names an initialiser in :mod:`engine.core.init`. ``name`` becomes the suffix of the
    parameter's full name ``<node path>.<name>``; an empty name means the node path itself.
    """

    name: str
    shape: Callable[[dict, list[TensorType]], tuple[int, ...]]
    init: str = "zeros"
    doc: str = ""
    decay: bool = True  # eligible for weight decay when 2-D or more


@dataclass(frozen=True)
class Example:
    """One input case for generated tests: shapes (concrete ints) and params.

    ``inputs`` is a list of ``(shape, dtype)`` or ``(shape, "int", high)`` for integer
    inputs drawn from ``[0, high)``. ``low``/``high`` bound float inputs (defaults -1, 1).
    """

    inputs: Sequence[tuple]
    params: dict = field(default_factory=dict)
    low: float = -1.0
    high: float = 1.0
    note: str = ""


@dataclass
class OpSpec:
    """Everything the engine and the editor know about one node type."""

    name: str
    category: str
    doc: str
    inputs: list[Port]
    outputs: list[Port]
    params: list[Param] = field(default_factory=list)
    infer: Callable | None = None
    forward: Callable | None = None
    backward: Callable | None = None
    weights: list[WeightSpec] = field(default_factory=list)
    state: list[WeightSpec] = field(default_factory=list)
    flops: Callable | None = None  # (inputs, outputs, params) -> int, per example
    examples: list[Example] = field(default_factory=list)
    family: str = "core"
    layer: dict | None = None  # subgraph definition for category "layer"
    # (ctx) -> (key, shape) or None, for ops whose input gradient is zero except the output
    # gradient at ``x[key]`` (index, slice): the executor adds it in place into the input's
    # accumulated gradient instead of materialising a zero-filled array per consumer.
    scatter_grad: Callable | None = None
    # How the op treats the batch axis, for the two-core batch split (engine.train.batch_split):
    # ``(params, in_axes, in_types, out_types) -> "rowwise" | "shape_only" | "mean" | None``
    # where ``in_axes[i]`` is the batch axis of input i (None: it does not depend on the
    # batch). None, the default, means the op may mix examples: such a graph trains unsplit.
    # Rules live in :mod:`engine.ops.batch_rules`.
    batch_rule: Callable | None = None
    # For a "mean" loss: ``(ctx) -> int``, how many elements the forward averaged (default:
    # every element of its first input), so the parts of a split batch weigh in exactly.
    mean_count: Callable | None = None
    # The op's one output is its one weight, unchanged (``parameter``): the executor puts the
    # weight in the values itself and hands the output's summed gradient to the weight, with
    # no context, call or backward of its own (27 of char-GPT's 105 equations).
    weight_value: bool = False

    @property
    def summary(self) -> str:
        """First line of the doc: the palette tooltip."""
        return self.doc.strip().splitlines()[0] if self.doc.strip() else self.name

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def defaults(self) -> dict:
        return {p.name: p.default for p in self.params}

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "category": self.category,
            "family": self.family,
            "summary": self.summary,
            "doc": self.doc.strip(),
            "inputs": [p.to_json() for p in self.inputs],
            "outputs": [p.to_json() for p in self.outputs],
            "params": [p.to_json() for p in self.params],
            "weights": [{"name": w.name, "init": w.init, "doc": w.doc} for w in self.weights],
            "state": [{"name": s.name, "init": s.init, "doc": s.doc} for s in self.state],
            "is_layer": self.layer is not None,
        }


_REGISTRY: dict[str, OpSpec] = {}
_LOADED = False

# Modules that register op families; imported on first registry access.
OP_MODULES = (
    "engine.ops.io",
    "engine.ops.elementwise",
    "engine.ops.reduce",
    "engine.ops.shape",
    "engine.ops.linalg",
    "engine.ops.sequence",
    "engine.ops.nn",
    "engine.ops.conv",
    "engine.ops.pool",
    "engine.ops.attention",
    "engine.ops.recurrent",
    "engine.ops.norm",
    "engine.ops.loss",
    "engine.ops.metrics",
    "engine.ops.optimizer",
    "engine.ops.data",
    "engine.ops.text_data",
    "engine.ops.seq2seq",
    "engine.layers.builtin",
    "engine.layers.recurrent",
    "engine.layers.encoder_decoder",
)


def register(spec: OpSpec) -> OpSpec:
    """Add *spec* to the registry (names are unique and stable)."""
    if spec.category not in CATEGORIES:
        raise ValueError(f"op {spec.name}: unknown category {spec.category!r}")
    if spec.name in _REGISTRY:
        raise ValueError(f"op {spec.name} registered twice")
    if not spec.doc.strip():
        raise ValueError(f"op {spec.name} has no doc")
    _REGISTRY[spec.name] = spec
    return spec


def _ensure_loaded() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    import importlib
    import importlib.util

    for module in OP_MODULES:
        if importlib.util.find_spec(module) is not None:
            importlib.import_module(module)


def get(name: str) -> OpSpec:
    """The spec called *name*; raises ``KeyError`` if unknown."""
    _ensure_loaded()
    return _REGISTRY[name]


def has(name: str) -> bool:
    _ensure_loaded()
    return name in _REGISTRY


def all_ops() -> list[OpSpec]:
    """Every registered spec, sorted by category then name."""
    _ensure_loaded()
    order = {c: i for i, c in enumerate(CATEGORIES)}
    return sorted(_REGISTRY.values(), key=lambda s: (order[s.category], s.name))


def catalog() -> dict:
    """The registry as plain JSON-able data (no callables): what the editor reads."""
    return {
        "categories": list(CATEGORIES),
        "ops": [spec.to_json() for spec in all_ops()],
    }


# ---------------------------------------------------------------- shape helpers


def numel(shape: Sequence[Dim], symbol_value: int = 1) -> int:
    """Number of elements, counting each symbolic dim as *symbol_value*."""
    return math.prod(d if isinstance(d, int) else symbol_value for d in shape)


def broadcast_shapes(*shapes: Shape, port_names: Sequence[str] | None = None) -> Shape:
    """NumPy broadcasting over ints and symbols; raises :class:`ShapeError` on mismatch."""
    ndim = max((len(s) for s in shapes), default=0)
    out: list[Dim] = []
    for axis in range(ndim):
        dim: Dim = 1
        for i, s in enumerate(shapes):
            offset = ndim - len(s)
            if axis < offset:
                continue
            d = s[axis - offset]
            if d == 1:
                continue
            if dim == 1:
                dim = d
            elif d != dim:
                if isinstance(d, str) or isinstance(dim, str):
                    # A symbol meets a concrete size or another symbol: bind to the int.
                    dim = dim if isinstance(dim, int) else d
                    continue
                port = port_names[i] if port_names else None
                raise ShapeError(
                    "shapes "
                    + " and ".join(format_shape(x) for x in shapes)
                    + " do not broadcast",
                    port=port,
                )
        out.append(dim)
    return tuple(out)


def format_shape(shape: Sequence[Dim]) -> str:
    """``(B, 64, 128)`` → ``B×64×128``; a scalar is ``scalar``."""
    return "×".join(str(d) for d in shape) if len(shape) else "scalar"


def normalize_axis(axis: int, ndim: int, port: str | None = None) -> int:
    if not -ndim <= axis < max(ndim, 1):
        raise ShapeError(f"axis {axis} out of range for a {ndim}-D input", port=port)
    return axis % max(ndim, 1)


