"""The compiled form of a graph: equations in topological order over named values.

Values are named ``"<node path>:<port>"``; node paths are dotted (``block1.attn.qkv``) when a
layer was expanded. Parameters are named ``<node path>.<weight>`` (or the node path alone for
a ``parameter`` node), the schema shared by checkpoints, shipped weights and exports.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.core.registry import OpSpec, ShapeError, TensorType, format_shape


@dataclass(frozen=True)
class Diagnostic:
    """A problem found while compiling, keyed by the top-level node id the user sees."""

    node: str | None
    port: str | None
    severity: str  # "error" or "warning"
    message: str

    def to_json(self) -> dict:
        return {"node": self.node, "port": self.port, "severity": self.severity,
                "message": self.message}

    def __str__(self) -> str:
        where = f"node '{self.node}'" if self.node else "graph"
        if self.port:
            where += f", port '{self.port}'"
        return f"{where}: {self.message}"


@dataclass
class WeightInfo:
    """A trainable weight or state tensor: concrete shape, initialiser, owner."""

    name: str
    shape: tuple[int, ...]
    init: str
    node: str  # node path of the owning equation
    init_params: dict = field(default_factory=dict)
    decay: bool = True

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass
class Equation:
    """One primitive op applied to named values."""

    path: str  # full node path, e.g. "fc1.mm"
    top: str  # top-level node id (for diagnostics and per-node totals)
    op: OpSpec
    params: dict
    inputs: list[str | None]  # value names (None: optional input left unconnected)
    outputs: list[str]
    input_types: list[TensorType | None]
    output_types: list[TensorType]
    weights: dict[str, str] = field(default_factory=dict)  # spec name -> full name
    state: dict[str, str] = field(default_factory=dict)
    flops: int = 0

    def input_type(self, i: int = 0) -> TensorType:
        """The type of input *i*; a clear error when that (optional) input is not connected."""
        t = self.input_types[i]
        if t is None:
            port = self.op.inputs[min(i, len(self.op.inputs) - 1)].name
            raise ShapeError(f"{self.op.name} needs input {i} ({port!r}), which is not "
                             "connected", node=self.top, port=port)
        return t


@dataclass
class NodeSummary:
    """What the validator reports for a top-level node."""

    id: str
    type: str
    outputs: dict[str, TensorType]
    param_count: int = 0
    flops: int = 0


@dataclass
class Program:
    equations: list[Equation]
    values: dict[str, TensorType]
    inputs: dict[str, str]  # input node id -> value name
    parameters: dict[str, WeightInfo]
    state: dict[str, WeightInfo]
    nodes: dict[str, NodeSummary]  # top-level node id -> summary, in topological order
    node_outputs: dict[str, list[str]]  # top-level node id -> its exposed output values
    edge_types: dict[tuple[str, str, str, str], TensorType]  # (src, sport, dst, dport) -> type
    diagnostics: list[Diagnostic]
    dtype: str = "float32"

    @property
    def total_params(self) -> int:
        return sum(w.size for w in self.parameters.values())

    @property
    def total_flops(self) -> int:
        return sum(n.flops for n in self.nodes.values())

    @property
    def ok(self) -> bool:
        return not any(d.severity == "error" for d in self.diagnostics)

    def pretty(self) -> str:
        """A readable listing: one line per equation with shapes, then the parameters."""
        lines = [f"program ({len(self.equations)} equations, {self.total_params} parameters)"]
        for eq in self.equations:
            outs = ", ".join(
                f"{o}: {format_shape(t.shape)} {t.dtype}"
                for o, t in zip(eq.outputs, eq.output_types)
            )
            ins = ", ".join(i if i is not None else "-" for i in eq.inputs)
            extra = ""
            if eq.weights:
                extra = "  [" + ", ".join(eq.weights.values()) + "]"
            lines.append(f"  {outs} = {eq.op.name}({ins}){extra}")
        for w in self.parameters.values():
            lines.append(f"  param {w.name}: {format_shape(w.shape)} init={w.init}")
        return "\n".join(lines)


def off_loss_path(program: Program, loss_value: str) -> frozenset[str]:
    """Paths of the equations a training step need not run: neither the loss nor any stateful
    op (batch norm updating its running statistics, even off the loss path) depends on them —
    metrics such as accuracy, the optimizer node."""
    stateful = [o for eq in program.equations if eq.state for o in eq.outputs]
    needed = {eq.path for eq in closure(program.equations, [loss_value, *stateful])}
    return frozenset(eq.path for eq in program.equations if eq.path not in needed)


def closure(equations: list[Equation], targets: list[str]) -> list[Equation]:
    """The equations the values *targets* depend on, in program order."""
    producer = {o: eq for eq in equations for o in eq.outputs}
    needed: set[str] = set()
    stack = list(targets)
    while stack:
        eq = producer.get(stack.pop())
        if eq is None or eq.path in needed:
            continue
        needed.add(eq.path)
        stack.extend(v for v in eq.inputs if v is not None)
    return [eq for eq in equations if eq.path in needed]
