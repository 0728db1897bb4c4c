"""Python source for a model's ``nn.Module`` (``model.py`` of a PyTorch project export).

Each top-level layer node becomes a submodule whose class is generated from its primitive
equations (identical instances share a class, e.g. ``block1``…``block4``: ``TransformerBlock``);
top-level ops are written inline in ``Model.forward``. Parameters and state sit at the same
dotted names as in Wiregrad (``block1.attn.qkv.weight``), so ``state_dict()`` keys are
Wiregrad's parameter names. Every statement carries the value's shape as a comment.

:data:`TORCH_OPS` maps each primitive op to a function ``(ctx, eq, args) -> expression``;
ops in :data:`engine.export.onnx_export.NOT_EXPORTABLE` never reach it.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Callable

from engine.base.errors import WiregradError
from engine.core.inference import Model
from engine.core.program import Equation
from engine.core.registry import TensorType, normalize_axis
from engine.ops.shape import unify_target

RESERVED = {"self", "torch", "nn", "F", "math", "Model", "INPUTS", "OUTPUTS"}
HELPERS = {
    "causal_keep": '''
def causal_keep(tq: int, tk: int, offset: int, device) -> torch.Tensor:
    """Bool (tq, tk): True where key j may be seen by query i, i.e. j <= i + offset."""
    i = torch.arange(tq, device=device)[:, None]
    j = torch.arange(tk, device=device)[None, :]
    return j <= i + offset
''',
    "causal_mask": '''
def causal_mask(x: torch.Tensor, offset: int, value: float) -> torch.Tensor:
    """Fill the scores of keys a query may not see (last two axes) with *value*."""
    keep = causal_keep(x.shape[-2], x.shape[-1], offset, x.device)
    return x.masked_fill(~keep, value)
''',
    "attention": '''
def attention(q, k, v, causal: bool, scale: float | None, key_mask=None) -> torch.Tensor:
    """softmax(q·kᵀ·scale [+ causal mask])·v; query i sees keys j <= i + (Tk - Tq);
    keys where the (B, Tk) key_mask is 0 are padding."""
    if causal and q.shape[-2] == k.shape[-2] and key_mask is None:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)
    mask = None
    if causal:
        mask = causal_keep(q.shape[-2], k.shape[-2], k.shape[-2] - q.shape[-2], q.device)
    if key_mask is not None:  # (B, Tk) -> (B, 1, …, 1, Tk)
        real = (key_mask != 0).reshape(key_mask.shape[:1] + (1,) * (q.dim() - 2)
                                       + key_mask.shape[1:])
        mask = real if mask is None else mask & real
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
''',
    "batch_norm": '''
def batch_norm(x, running_mean, running_var, weight, bias, training: bool, momentum: float,
               eps: float) -> torch.Tensor:
    """F.batch_norm, with batch statistics over every process's slice under torchrun: the
    per-channel sum, sum of squares and count are all-reduced (differentiably, so the backward
    is that of one process on the whole batch) and every process keeps the same running
    statistics. One process, or evaluation: plain F.batch_norm."""
    import torch.distributed as dist

    if not (training and dist.is_available() and dist.is_initialized()
            and dist.get_world_size() > 1):
        return F.batch_norm(x, running_mean, running_var, weight, bias, training, momentum,
                            eps)
    from torch.distributed.nn.functional import all_reduce

    channels = x.shape[1]
    dims = [0] + list(range(2, x.dim()))
    count = torch.full((1,), x.numel() / channels, dtype=x.dtype, device=x.device)
    stats = all_reduce(torch.cat([x.sum(dims), (x * x).sum(dims), count]))
    n = stats[2 * channels]
    mean = stats[:channels] / n
    var = stats[channels:2 * channels] / n - mean * mean  # biased, as the normalisation uses
    with torch.no_grad():
        running_mean.mul_(1 - momentum).add_(momentum * mean)
        running_var.mul_(1 - momentum).add_(momentum * var * n / max(float(n) - 1, 1.0))
    shape = [1, channels] + [1] * (x.dim() - 2)
    y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + eps)
    if weight is not None:
        y = y * weight.view(shape)
    if bias is not None:
        y = y + bias.view(shape)
    return y
''',
    "split_parts": '''
def split_parts(x: torch.Tensor, dim: int, parts: int, sizes: list[int]) -> tuple:
    """Wiregrad's split: equal parts, or explicit sizes (one may be -1); always 4 outputs."""
    n = x.shape[dim]
    if sizes:
        rest = n - sum(s for s in sizes if s != -1)
        lengths = [rest if s == -1 else s for s in sizes]
    else:
        lengths = [n // parts] * parts
    pieces = list(torch.split(x, lengths, dim=dim))
    return tuple(pieces + [x.narrow(dim, n, 0)] * (4 - len(pieces)))
''',
}
RESERVED |= set(HELPERS)  # a node named like a helper must not shadow it

HELPER_NEEDS = {"causal_mask": ["causal_keep"], "attention": ["causal_keep"]}


def py_literal(value: object) -> str:
    """The one way a document's string (or plain data) enters generated code: a ``repr``."""
    return repr(value)


def doc_text(text: str) -> str:
    """*text* as the body of a ``\"\"\"docstring\"\"\"`` or a ``# comment``: one line, inert.

    Built on :func:`py_literal`: backslashes, quotes, line breaks and unprintable characters
    are escaped, so the text can neither end the string or comment nor start a statement.
    """
    body = py_literal(str(text))[1:-1]
    return body.replace('"', '\\"')  # repr never escapes '"' itself


def identifier(text: str) -> str:
    """A Python identifier for *text* (``block1.attn.qkv`` → ``block1_attn_qkv``)."""
    name = re.sub(r"\W", "_", text)
    if not name or name[0].isdigit():
        name = "_" + name
    if keyword.iskeyword(name) or name in RESERVED:
        name += "_"
    return name


def shape_comment(t: TensorType | None) -> str:
    if t is None:
        return ""
    dims = ", ".join(str(d) for d in t.shape)
    text = f"({dims},)" if len(t.shape) == 1 else f"({dims})"
    return doc_text(text + (" int64" if t.dtype == "int" else ""))  # a comment stays one line


class Scope:
    """Local names and attribute paths inside one generated ``forward``."""

    def __init__(self, prefix: str, args: dict[str, str]) -> None:
        self.prefix = prefix  # "" for Model, "block1." inside the class of block1
        self.exprs: dict[str, str] = dict(args)  # program value -> Python expression
        self.taken = set(args.values()) | RESERVED
        self.helpers: set[str] = set()

    def attr(self, full_name: str) -> str:
        rel = full_name[len(self.prefix):]
        for part in rel.split("."):
            if not part.isidentifier() or keyword.iskeyword(part):
                raise WiregradError(f"'{part}' (in {full_name}) is not a Python identifier; "
                                    "rename the node to export it to PyTorch",
                                    node=full_name.split(".")[0])
        return "self." + rel

    def local(self, hint: str) -> str:
        name = identifier(hint)
        while name in self.taken:
            name += "_"
        self.taken.add(name)
        return name

    def use(self, helper: str) -> None:
        self.helpers.add(helper)
        self.helpers.update(HELPER_NEEDS.get(helper, []))


TorchOp = Callable[[Scope, Equation, list[str]], str]
TORCH_OPS: dict[str, TorchOp] = {}


def op(*names: str):
    def wrap(fn: TorchOp) -> TorchOp:
        for name in names:
            TORCH_OPS[name] = fn
        return fn

    return wrap


def _rank(eq: Equation, i: int = 0) -> int:
    return len(eq.input_type(i).shape)


def _call(name: str) -> TorchOp:
    return lambda s, eq, a: f"{name}({a[0]})"


for _n, _f in {"exp": "torch.exp", "log": "torch.log", "sqrt": "torch.sqrt", "abs": "torch.abs",
               "relu": "F.relu", "tanh": "torch.tanh", "sigmoid": "torch.sigmoid",
               "silu": "F.silu"}.items():
    TORCH_OPS[_n] = _call(_f)
for _n, _sym in {"add": "+", "sub": "-", "mul": "*", "div": "/"}.items():
    TORCH_OPS[_n] = (lambda sym: lambda s, eq, a: f"{a[0]} {sym} {a[1]}")(_sym)

op("neg")(lambda s, eq, a: f"-{a[0]}")
op("leaky_relu")(lambda s, eq, a: f"F.leaky_relu({a[0]}, {eq.params['negative_slope']!r})")
op("pow")(lambda s, eq, a: f"torch.pow({a[0]}, {float(eq.params['exponent'])!r})")
op("gelu")(lambda s, eq, a: f"F.gelu({a[0]}, approximate={eq.params['approximate']!r})")
op("where")(lambda s, eq, a: f"torch.where({a[0]} != 0, {a[1]}, {a[2]})")
op("embedding")(lambda s, eq, a: f"F.embedding({a[0]}, {a[1]})")
op("dropout")(lambda s, eq, a: f"F.dropout({a[0]}, {eq.params['p']!r}, self.training)")
op("masked_fill")(lambda s, eq, a: f"{a[0]}.masked_fill({a[1]} != 0, {eq.params['value']!r})")


@op("clamp")
def _clamp(s, eq, a):
    lo, hi = eq.params["min"], eq.params["max"]
    if lo is None and hi is None:
        return f"{a[0]}.clone()"
    return f"torch.clamp({a[0]}, min={lo!r}, max={hi!r})"


@op("matmul")
def _matmul(s, eq, a):
    left = a[0] + (".mT" if eq.params["transpose_a"] else "")
    right = a[1] + (".mT" if eq.params["transpose_b"] else "")
    return f"{left} @ {right}"


@op("softmax", "log_softmax")
def _softmax(s, eq, a):
    fn = "torch.softmax" if eq.op.name == "softmax" else "torch.log_softmax"
    return f"{fn}({a[0]}, dim={eq.params['axis']})"


@op("causal_mask")
def _causal_mask(s, eq, a):
    s.use("causal_mask")
    return f"causal_mask({a[0]}, {eq.params['offset']}, {eq.params['value']!r})"


@op("scaled_dot_product_attention")
def _attention(s, eq, a):
    s.use("attention")
    mask = f", {a[3]}" if len(a) > 3 and a[3] else ""
    return (f"attention({a[0]}, {a[1]}, {a[2]}, {eq.params['causal']}, "
            f"{eq.params['scale']!r}{mask})")


@op("layer_norm")
def _layer_norm(s, eq, a):
    w, b = (a[1] if a[1] else "None"), (a[2] if a[2] else "None")
    return f"F.layer_norm({a[0]}, {a[0]}.shape[-1:], {w}, {b}, {eq.params['eps']!r})"


@op("batch_norm")
def _batch_norm(s, eq, a):
    w, b = (a[1] if a[1] else "None"), (a[2] if a[2] else "None")
    mean, var = s.attr(eq.state["running_mean"]), s.attr(eq.state["running_var"])
    s.use("batch_norm")
    return (f"batch_norm({a[0]}, {mean}, {var}, {w}, {b}, self.training, "
            f"{eq.params['momentum']!r}, {eq.params['eps']!r})")


@op("conv2d")
def _conv2d(s, eq, a):
    b = a[2] if len(a) > 2 and a[2] else "None"
    p = eq.params
    return (f"F.conv2d({a[0]}, {a[1]}, {b}, stride={p['stride']}, padding={p['padding']}, "
            f"dilation={p['dilation']}, groups={p['groups']})")


@op("max_pool2d", "avg_pool2d")
def _pool(s, eq, a):
    p = eq.params
    stride = p["stride"] or p["kernel"]
    if eq.op.name == "max_pool2d":
        return f"F.max_pool2d({a[0]}, {p['kernel']}, {stride}, {p['padding']})"
    return (f"F.avg_pool2d({a[0]}, {p['kernel']}, {stride}, {p['padding']}, "
            f"count_include_pad={p['count_include_pad']})")


def _dims(eq: Equation) -> str:
    from engine.ops.reduce import reduce_axes

    return repr(tuple(reduce_axes(eq.params, _rank(eq))))


op("sum")(lambda s, eq, a: f"{a[0]}.sum(dim={_dims(eq)}, keepdim={eq.params['keepdims']})")
op("mean")(lambda s, eq, a: f"{a[0]}.mean(dim={_dims(eq)}, keepdim={eq.params['keepdims']})")
op("max")(lambda s, eq, a: f"torch.amax({a[0]}, dim={_dims(eq)}, "
                           f"keepdim={eq.params['keepdims']})")
op("var")(lambda s, eq, a: f"torch.var({a[0]}, dim={_dims(eq)}, "
                           f"correction={eq.params['correction']}, "
                           f"keepdim={eq.params['keepdims']})")


@op("permute")
def _permute(s, eq, a):
    from engine.ops.shape import permutation

    return f"{a[0]}.permute{tuple(permutation(eq.params['axes'], _rank(eq)))!r}"


@op("transpose")
def _transpose(s, eq, a):
    rank = _rank(eq)
    i = normalize_axis(eq.params["dim0"], rank, "x")
    j = normalize_axis(eq.params["dim1"], rank, "x")
    return f"{a[0]}.transpose({i}, {j})"


def _reshape_target(x: str, eq: Equation) -> str:
    """reshape's target, its symbols unified with fixed sizes as the op does."""
    declared = eq.input_type(0).shape
    return _target(x, declared, unify_target(declared, eq.params["shape"]))


def _target(x: str, declared: tuple, target: list) -> str:
    parts = []
    for d in target:
        if isinstance(d, int):
            parts.append(str(d))
        elif d in declared:
            parts.append(f"{x}.shape[{list(declared).index(d)}]")
        else:
            parts.append("-1")
    return ", ".join(parts)


op("reshape")(lambda s, eq, a: f"{a[0]}.reshape({_reshape_target(a[0], eq)})")
op("broadcast_to")(lambda s, eq, a: f"{a[0]}.expand("
                   f"{_target(a[0], eq.input_types[0].shape, list(eq.params['shape']))})")
op("concat")(lambda s, eq, a: f"torch.cat([{', '.join(a)}], "
             f"dim={normalize_axis(eq.params['axis'], _rank(eq), 'inputs')})")


@op("split")
def _split(s, eq, a):
    s.use("split_parts")
    axis = normalize_axis(eq.params["axis"], _rank(eq), "x")
    return f"split_parts({a[0]}, {axis}, {eq.params['parts']}, {list(eq.params['sizes'])})"


@op("slice")
def _slice(s, eq, a):
    axis = normalize_axis(eq.params["axis"], _rank(eq), "x")
    p = eq.params
    stop = "" if p["stop"] is None else p["stop"]
    step = "" if p["step"] == 1 else f":{p['step']}"
    return f"{a[0]}[{':, ' * axis}{p['start'] or ''}:{stop}{step}]"


op("index")(lambda s, eq, a: f"{a[0]}.select("
            f"{normalize_axis(eq.params['axis'], _rank(eq), 'x')}, {eq.params['index']})")


@op("positions")
def _positions(s, eq, a):
    axis = normalize_axis(eq.params["axis"], _rank(eq), "x")
    off = eq.params["offset"]
    start = f"{off}, {off} + " if off else ""
    return f"torch.arange({start}{a[0]}.shape[{axis}], device={a[0]}.device)"


# parameter and constant are attributes, not expressions: see ``statements``.
TORCH_OPS["parameter"] = lambda s, eq, a: s.attr(eq.weights[""])
TORCH_OPS["constant"] = lambda s, eq, a: s.attr(eq.path)


def check_exportable(model: Model) -> None:
    from engine.export.onnx_export import NOT_EXPORTABLE

    for eq in model.equations:
        if eq.op.name not in TORCH_OPS:
            why = NOT_EXPORTABLE.get(eq.op.name, "no PyTorch mapping exists for it yet")
            raise WiregradError(f"'{eq.op.name}' (in {eq.path}) cannot be exported to "
                                f"PyTorch: {why}", node=eq.top)


def statements(scope: Scope, eqs: list[Equation]) -> list[str]:
    """``name = expression  # shape`` lines for *eqs*; fills ``scope.exprs``."""
    lines = []
    for eq in eqs:
        args = [scope.exprs.get(v, "None") if v is not None else "" for v in eq.inputs]
        expr = TORCH_OPS[eq.op.name](scope, eq, args)
        if eq.op.name in ("parameter", "constant"):
            scope.exprs[eq.outputs[0]] = expr
            continue
        rel = eq.path[len(scope.prefix):]
        if len(eq.outputs) == 1:
            name = scope.local(rel)
            scope.exprs[eq.outputs[0]] = name
            lines.append(f"{name} = {expr}  # {shape_comment(eq.output_types[0])}")
        else:
            names = [scope.local(f"{rel}_{p.name}") for p in eq.op.outputs]
            scope.exprs.update(zip(eq.outputs, names))
            shapes = ", ".join(shape_comment(t) for t in eq.output_types)
            lines.append(f"{', '.join(names)} = {expr}  # {shapes}")
    return lines


from engine.export import torch_recurrent  # noqa: E402

TORCH_OPS.update(torch_recurrent.OPS)  # rnn / lstm / gru
HELPERS["recurrent"] = torch_recurrent.HELPER
