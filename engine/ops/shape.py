"""Shape ops: permute, transpose, reshape, concat, split, slice, index, broadcast_to.

Values of any dtype pass through (integer token ids can be reshaped or sliced); gradients flow
to float inputs only. Results may be views of the input, as in NumPy (``broadcast_to`` gives
a read-only view); no op writes into its inputs. Symbolic sizes (``"B"``) are bound at run
time from the input's actual shape, so targets such as ``["B", -1]`` work for any batch.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from engine.core.registry import (
    Example,
    OpSpec,
    Param,
    Port,
    ShapeError,
    TensorType,
    format_shape,
    normalize_axis,
    register,
)
from engine.ops import batch_rules, dims
from engine.ops._util import unbroadcast

SPLIT_MAX = 4  # split has out0..out3; ports are static in the registry


def _no_flops(inputs, outputs, params) -> int:
    return 0  # data movement only


def _grad(x_dtype: np.dtype, g):
    return g if np.dtype(x_dtype).kind == "f" else None


def _shape_op(name: str, doc: str, infer, forward, backward, params, examples,
              inputs=None, outputs=None, scatter_grad=None, batch_rule=None) -> OpSpec:
    return register(OpSpec(
        name=name, category="op", doc=doc,
        inputs=inputs or [Port("x", dtype="any")],
        outputs=outputs or [Port("out", dtype="any")],
        params=params, infer=infer, forward=forward, backward=backward,
        flops=_no_flops, examples=examples, family="shape", scatter_grad=scatter_grad,
        batch_rule=batch_rule,
    ))


def _input_shape(ctx, index: int = 0):
    types = getattr(ctx.eq, "input_types", None) or []
    t = types[index] if index < len(types) else None
    return t.shape if t is not None else None


# ------------------------------------------------------------------ permute / transpose


def permutation(axes, ndim: int) -> tuple[int, ...]:
    if len(axes) != ndim:
        raise ShapeError(f"axes {list(axes)} must list each of the {ndim} axes once", port="x")
    norm = tuple(normalize_axis(a, ndim, port="x") for a in axes)
    if sorted(norm) != list(range(ndim)):
        raise ShapeError(f"axes {list(axes)} is not a permutation of 0…{ndim - 1}", port="x")
    return norm


def _permute_infer(inputs, params):
    x = inputs[0]
    perm = permutation(params["axes"], len(x.shape))
    return [TensorType(tuple(x.shape[a] for a in perm), x.dtype)]


@lru_cache(maxsize=512)
def _cached_permutation(axes: tuple, ndim: int) -> tuple[int, ...]:
    """:func:`permutation` once per (axes, rank): it runs at every step's forward."""
    return permutation(axes, ndim)


def _permute_forward(ctx, params, x):
    perm = _cached_permutation(tuple(params["axes"]), x.ndim)
    ctx.save(perm, x.dtype)
    return np.transpose(x, perm)


@lru_cache(maxsize=512)
def _inverse_permutation(perm: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argsort(perm))


def _permute_backward(ctx, params, g):
    perm, dtype = ctx.saved
    return (_grad(dtype, np.transpose(g, _inverse_permutation(perm))),)


_shape_op("permute", """Reorder axes: out axis i is input axis axes[i] (a view, no copy).""",
          _permute_infer, _permute_forward, _permute_backward,
          [Param("axes", "ints", [1, 0], doc="Input axis for each output axis.")],
          [Example([((3, 4), "float")]),
           Example([((2, 3, 4), "float")], {"axes": [2, 0, 1]}),
           Example([((2, 3, 4, 5), "float")], {"axes": [0, 2, 1, 3]}, note="split heads"),
           Example([((1, 3, 2), "float")], {"axes": [-1, 0, 1]}, note="negative, batch of 1")],
          batch_rule=batch_rules.rowwise)


def _swap(params, ndim: int) -> tuple[int, int]:
    return (normalize_axis(params["dim0"], ndim, port="x"),
            normalize_axis(params["dim1"], ndim, port="x"))


def _transpose_infer(inputs, params):
    x = inputs[0]
    a, b = _swap(params, len(x.shape))
    shape = list(x.shape)
    shape[a], shape[b] = shape[b], shape[a]
    return [TensorType(tuple(shape), x.dtype)]


def _transpose_forward(ctx, params, x):
    a, b = _swap(params, x.ndim)
    ctx.save(a, b, x.dtype)
    return np.swapaxes(x, a, b)


def _transpose_backward(ctx, params, g):
    a, b, dtype = ctx.saved
    return (_grad(dtype, np.swapaxes(g, a, b)),)


_shape_op("transpose", "Swap two axes, dim0 and dim1 (a view, no copy).",
          _transpose_infer, _transpose_forward, _transpose_backward,
          [Param("dim0", "int", -2, doc="First axis."),
           Param("dim1", "int", -1, doc="Second axis.")],
          [Example([((3, 4), "float")]),
           Example([((2, 3, 4), "float")], {"dim0": 0, "dim1": 2}),
           Example([((2, 3, 4), "float")], {"dim0": 1, "dim1": 1}, note="same axis"),
           Example([((1, 5), "float")], note="batch of 1")],
          batch_rule=batch_rules.rowwise)


# ------------------------------------------------------------------ reshape


def unify_target(x_shape, target, actual=None) -> list:
    """*target* with symbols and numbers unified where one size alone cannot be inferred.

    A target symbol the input lacks is inferred like -1; when that leaves more than one size
    unknown, such a symbol standing where the target's leading axes equal the input's takes
    the input's size on that axis (its *actual* runtime size when given). So a B×16×C input
    reshaped to ``["B", "T", 4, -1]`` reads T = 16: fixed and symbolic sizes work alike.
    """
    target = list(target)
    bound = {d for d in x_shape if isinstance(d, str)}
    unknown = [i for i, d in enumerate(target)
               if d == -1 or (isinstance(d, str) and d not in bound)]
    if len(unknown) < 2:
        return target
    given, unified = list(target), set()
    for i in unknown:
        d = given[i]
        if (isinstance(d, str) and i < len(x_shape) and not isinstance(x_shape[i], str)
                and all(given[j] == x_shape[j] or j in unified for j in range(i))):
            target[i] = int(actual[i]) if actual is not None else x_shape[i]
            unified.add(i)
    return target


def _reshape_infer(inputs, params):
    x = inputs[0]
    target = unify_target(x.shape, params["shape"])
    bound = {d for d in x.shape if isinstance(d, str)}
    unknown = [i for i, d in enumerate(target)
               if d == -1 or (isinstance(d, str) and d not in bound)]
    shown = format_shape(target)
    if len(unknown) > 1:
        raise ShapeError(f"cannot reshape {format_shape(x.shape)} to {shown}: only one size "
                         "can be inferred (-1, or a symbol the input does not have)", port="x")
    in_coef, in_syms = dims.product(x.shape)
    t_coef, t_syms = dims.product([d for i, d in enumerate(target) if i not in unknown])
    missing = t_syms - in_syms
    if missing or in_coef % t_coef:
        raise ShapeError(f"cannot reshape {format_shape(x.shape)} "
                         f"({dims.make_dim(in_coef, in_syms, x.shape)} elements) to {shown}",
                         port="x")
    rest_coef, rest_syms = in_coef // t_coef, in_syms - t_syms
    out = list(target)
    if unknown:
        i = unknown[0]
        if target[i] == -1:
            out[i] = dims.make_dim(rest_coef, rest_syms, x.shape)
    elif rest_coef != 1 or +rest_syms:
        raise ShapeError(f"cannot reshape {format_shape(x.shape)} "
                         f"({dims.make_dim(in_coef, in_syms, x.shape)} elements) to {shown} "
                         f"({dims.make_dim(t_coef, t_syms, target)} elements)", port="x")
    return [TensorType(tuple(out), x.dtype)]


def _reshape_batch(params, in_axes, out_axes, in_types):
    """Row-wise when the batch is x's first axis, alone (B, not B*T), and stays first: each
    example is then one contiguous block of rows on both sides."""
    lead = in_types[0].shape[0] if in_types[0].shape else None
    plain = isinstance(lead, str) and lead.isidentifier()
    return batch_rules.ROWWISE if in_axes[0] == 0 and plain and out_axes[0] == 0 else None


@lru_cache(maxsize=1024)
def _reshape_target(declared: tuple | None, shape: tuple, actual: tuple) -> tuple:
    """The concrete target of a reshape of an *actual*-shaped input declared *declared* to
    the *shape* parameter (-1 where numpy infers it); cached: it runs at every forward."""
    sizes = dims.bind_symbols(declared, actual)
    target = (unify_target(declared, list(shape), actual) if declared is not None
              and len(declared) == len(actual) else shape)
    return tuple(d if isinstance(d, int) else sizes.get(d, -1) for d in target)


def _reshape_forward(ctx, params, x):
    declared = _input_shape(ctx)
    target = _reshape_target(None if declared is None else tuple(declared),
                             tuple(params["shape"]), x.shape)
    try:
        out = np.reshape(x, target)
    except ValueError as exc:
        raise ShapeError(f"cannot reshape {format_shape(x.shape)} to "
                         f"{format_shape(params['shape'])}: {exc}", port="x") from None
    ctx.save(x.shape, x.dtype)
    return out


def _reshape_backward(ctx, params, g):
    shape, dtype = ctx.saved
    return (_grad(dtype, np.reshape(g, shape)),)


_shape_op("reshape", """Give x a new shape with the same number of elements.

    One size may be -1 (inferred). Symbols such as B are taken from the input at run time;
    a symbol the input lacks is inferred like -1. E.g. B×T×C with ["B", -1] gives B×T*C.
    Where that leaves two sizes unknown, a symbol standing where the target's leading axes
    equal the input's takes the input's size: B×16×C to ["B", "T", 4, -1] reads T = 16.""",
          _reshape_infer, _reshape_forward, _reshape_backward,
          [Param("shape", "target_shape", ["B", -1],
                 doc="Target sizes: integers, symbols (B, T) and at most one -1.")],
          [Example([((2, 3, 4), "float")], {"shape": [6, 4]}),
           Example([((2, 3, 4), "float")], {"shape": [2, -1]}),
           Example([((2, 12), "float")], {"shape": [2, 3, 2, 2]}),
           Example([((1, 6), "float")], {"shape": [-1]}, note="flatten, batch of 1"),
           Example([((2, 3, 4), "float")], {"shape": ["B", 12]}, note="keep the batch"),
           Example([((2, 3, 4), "float")], {"shape": ["B", "T", 2, -1]},
                   note="a symbol unified with a fixed size")],
          batch_rule=_reshape_batch)


# ------------------------------------------------------------------ concat


def _concat_infer(inputs, params):
    if not inputs:
        raise ShapeError("needs at least one input", port="inputs")
    first = inputs[0]
    ndim = len(first.shape)
    if ndim == 0:
        raise ShapeError("cannot concatenate scalars (reshape them to 1-D first)",
                         port="inputs[0]")
    axis = normalize_axis(params["axis"], ndim, port="inputs[0]")
    out = list(first.shape)
    for i, t in enumerate(inputs[1:], start=1):
        port = f"inputs[{i}]"
        if t.dtype != first.dtype:
            raise ShapeError(f"{port} holds {t.dtype} values but inputs[0] holds "
                             f"{first.dtype}", port=port)
        if len(t.shape) != ndim:
            raise ShapeError(f"{port} is {format_shape(t.shape)} but inputs[0] is "
                             f"{format_shape(first.shape)}: ranks differ", port=port)
        for j, d in enumerate(t.shape):
            if j == axis:
                continue
            if isinstance(d, int) and isinstance(out[j], int) and d != out[j]:
                raise ShapeError(f"{port} is {format_shape(t.shape)} but inputs[0] is "
                                 f"{format_shape(first.shape)}: axis {j} differs "
                                 f"({d} ≠ {out[j]}); only axis {axis} may differ", port=port)
            if isinstance(out[j], str) and isinstance(d, int):
                out[j] = d
    out[axis] = dims.add_dims([t.shape[axis] for t in inputs])
    return [TensorType(tuple(out), first.dtype)]


def _concat_forward(ctx, params, *xs):
    axis = normalize_axis(params["axis"], xs[0].ndim, port="inputs[0]")
    ctx.save(axis, [x.shape[axis] for x in xs], [x.dtype for x in xs])
    return np.concatenate(xs, axis=axis)


def _concat_backward(ctx, params, g):
    axis, sizes, dtypes = ctx.saved
    parts = np.split(g, np.cumsum(sizes)[:-1], axis=axis)
    return tuple(_grad(dt, p) for dt, p in zip(dtypes, parts))


_shape_op("concat", """Join inputs[0], inputs[1], … along an axis (other sizes must match).""",
          _concat_infer, _concat_forward, _concat_backward,
          [Param("axis", "int", -1, doc="Axis to join along.")],
          [Example([((2, 3), "float"), ((2, 5), "float")]),
           Example([((2, 3, 4), "float"), ((1, 3, 4), "float"), ((3, 3, 4), "float")],
                   {"axis": 0}, note="three inputs"),
           Example([((2, 3), "float")], note="single input"),
           Example([((1, 2), "float"), ((1, 3), "float")], {"axis": 1}, note="batch of 1")],
          inputs=[Port("inputs", dtype="any", variadic=True,
                       doc="Values to join, wired as inputs[0], inputs[1], …")],
          batch_rule=batch_rules.rowwise_unless(batch_rules.param_axis("axis")))


# ------------------------------------------------------------------ split


def split_sizes(n, params: dict, port: str = "x") -> list:
    """Sizes of the used parts for an axis of size *n* (an int, or a symbol at inference)."""
    sizes = list(params["sizes"])
    if not sizes:
        parts = params["parts"]
        if isinstance(n, int):
            if n % parts:
                raise ShapeError(f"size {n} does not split into {parts} equal parts", port=port)
            return [n // parts] * parts
        return [f"{n}/{parts}"] * parts
    if len(sizes) > SPLIT_MAX:
        raise ShapeError(f"sizes {sizes}: at most {SPLIT_MAX} parts", port=port)
    if any(s < -1 for s in sizes) or sizes.count(-1) > 1:
        raise ShapeError(f"sizes {sizes}: sizes must be ≥ 0, with at most one -1", port=port)
    known = sum(s for s in sizes if s != -1)
    if isinstance(n, int):
        if (-1 in sizes and known > n) or (-1 not in sizes and known != n):
            raise ShapeError(f"sizes {sizes} do not add up to the axis size {n}", port=port)
        return [n - known if s == -1 else s for s in sizes]
    return [f"{n}-{known}" if s == -1 and known else (n if s == -1 else s) for s in sizes]


def _split_infer(inputs, params):
    x = inputs[0]
    axis = normalize_axis(params["axis"], len(x.shape), port="x")
    sizes = split_sizes(x.shape[axis], params) + [0] * SPLIT_MAX
    return [TensorType(tuple(sizes[k] if j == axis else d for j, d in enumerate(x.shape)),
                       x.dtype) for k in range(SPLIT_MAX)]


def _split_forward(ctx, params, x):
    axis = normalize_axis(params["axis"], x.ndim, port="x")
    n = x.shape[axis]
    sizes = split_sizes(n, params)
    bounds = np.cumsum([0] + sizes + [0] * (SPLIT_MAX - len(sizes)))
    lead = (slice(None),) * axis
    ctx.save(axis, len(sizes), x.dtype)
    return tuple(x[lead + (slice(int(a), int(b)),)] for a, b in zip(bounds[:-1], bounds[1:]))


def _split_backward(ctx, params, *grads):
    axis, parts, dtype = ctx.saved
    return (_grad(dtype, np.concatenate(grads[:parts], axis=axis)),)


_shape_op("split", """Cut x along an axis into up to 4 parts, out0…out3 (views).

    With ``sizes`` empty, x splits into ``parts`` equal pieces; otherwise ``sizes`` gives each
    piece's length (one may be -1: the rest) and sets the number of parts (``parts`` is then
    ignored). Outputs past the last part are empty (size 0 along the axis).""",
          _split_infer, _split_forward, _split_backward,
          [Param("axis", "int", -1, doc="Axis to cut."),
           Param("parts", "int", 2, minimum=1, maximum=SPLIT_MAX,
                 doc="Number of equal parts (when sizes is empty)."),
           Param("sizes", "ints", [], doc="Explicit part sizes (at most 4; one may be -1).")],
          [Example([((4, 6), "float")]),
           Example([((3, 2, 6), "float")], {"parts": 3}, note="qkv"),
           Example([((2, 7), "float")], {"sizes": [2, -1, 3]}, note="sizes with -1"),
           Example([((5, 3), "float")], {"axis": 0, "sizes": [1, 4]}),
           Example([((1, 8), "float")], {"parts": 4}, note="batch of 1")],
          outputs=[Port(f"out{k}", dtype="any", doc=f"Part {k} (empty if unused).")
                   for k in range(SPLIT_MAX)],
          batch_rule=batch_rules.rowwise_unless(batch_rules.param_axis("axis")))


# ------------------------------------------------------------------ slice / index


def _slice_len(n, start: int, stop, step: int):
    if isinstance(n, int):
        return len(range(*slice(start, stop, step).indices(n)))
    if start >= 0 and stop is not None and stop >= 0:  # assumes the axis is long enough
        return max(0, -(-(stop - start) // step))
    if start < 0 and stop is None and step == 1:
        return -start
    if step == 1 and start >= 0 and (stop is None or stop < 0):
        cut = start - (stop or 0)
        return f"{n}-{cut}" if cut else n
    return f"{n}[{start}:{'' if stop is None else stop}:{step}]"


def _slicer(params, ndim: int) -> tuple:
    axis = normalize_axis(params["axis"], ndim, port="x")
    return (slice(None),) * axis + (slice(params["start"], params["stop"], params["step"]),)


def _slice_infer(inputs, params):
    x = inputs[0]
    axis = normalize_axis(params["axis"], len(x.shape), port="x")
    shape = list(x.shape)
    shape[axis] = _slice_len(shape[axis], params["start"], params["stop"], params["step"])
    return [TensorType(tuple(shape), x.dtype)]


def _slice_forward(ctx, params, x):
    key = _slicer(params, x.ndim)
    ctx.save(key, x.shape, x.dtype)
    return x[key]


def _scatter_backward(ctx, params, g):
    key, shape, dtype = ctx.saved
    if np.dtype(dtype).kind != "f":
        return (None,)
    gx = np.zeros(shape, dtype=g.dtype)
    gx[key] = g
    return (gx,)


def _scatter_key(ctx):
    """Where the output gradient lands in the input's (``_scatter_backward`` without zeros)."""
    key, shape, dtype = ctx.saved
    return (key, shape) if np.dtype(dtype).kind == "f" else None


_shape_op("slice", """Take x[start:stop:step] along one axis (Python rules; a view).

    Negative start/stop count from the end; an empty stop means the end.""",
          _slice_infer, _slice_forward, _scatter_backward,
          [Param("axis", "int", 0, doc="Axis to slice."),
           Param("start", "int", 0, doc="First index (negative: from the end)."),
           Param("stop", "int", None, optional=True, doc="End index, exclusive (empty: end)."),
           Param("step", "int", 1, minimum=1, doc="Stride (positive).")],
          [Example([((5, 4), "float")], {"start": 1, "stop": 4}),
           Example([((2, 6, 3), "float")], {"axis": 1, "start": -4, "step": 2},
                   note="negative start"),
           Example([((3, 8), "float")], {"axis": -1, "stop": -2, "step": 3}),
           Example([((3, 4), "float")], {"start": 2, "stop": 1}, note="empty"),
           Example([((1, 5), "float")], {"axis": 1, "start": 2}, note="batch of 1")],
          scatter_grad=_scatter_key,
          batch_rule=batch_rules.rowwise_unless(batch_rules.param_axis("axis")))


def _index_infer(inputs, params):
    x = inputs[0]
    ndim = len(x.shape)
    axis = normalize_axis(params["axis"], ndim, port="x")
    n, i = x.shape[axis], params["index"]
    if isinstance(n, int) and not -n <= i < n:
        raise ShapeError(f"index {i} is out of range for axis {axis} of size {n}", port="x")
    return [TensorType(x.shape[:axis] + x.shape[axis + 1:], x.dtype)]


def _index_forward(ctx, params, x):
    axis = normalize_axis(params["axis"], x.ndim, port="x")
    i = params["index"]
    if not -x.shape[axis] <= i < x.shape[axis]:
        raise ShapeError(f"index {i} is out of range for axis {axis} of size "
                         f"{x.shape[axis]}", port="x")
    key = (slice(None),) * axis + (i,)
    ctx.save(key, x.shape, x.dtype)
    return x[key]


_shape_op("index", """Pick one position along an axis, dropping that axis (x[..., i, ...]).""",
          _index_infer, _index_forward, _scatter_backward,
          [Param("axis", "int", 0, doc="Axis to index."),
           Param("index", "int", 0, doc="Position (negative: from the end).")],
          [Example([((3, 4), "float")], {"index": 1}),
           Example([((2, 3, 4), "float")], {"axis": -1, "index": -1}, note="last"),
           Example([((2, 3, 4), "float")], {"axis": 1, "index": 2}),
           Example([((1, 5), "float")], note="batch of 1")],
          scatter_grad=_scatter_key,
          batch_rule=batch_rules.rowwise_unless(batch_rules.param_axis("axis")))


# ------------------------------------------------------------------ broadcast_to


def _broadcast_infer(inputs, params):
    x = inputs[0]
    target = tuple(params["shape"])
    shown = f"cannot broadcast {format_shape(x.shape)} to {format_shape(target)}"
    if len(x.shape) > len(target):
        raise ShapeError(shown + ": the input has more axes", port="x")
    offset = len(target) - len(x.shape)
    for j, d in enumerate(x.shape):
        t = target[offset + j]
        if d != 1 and d != t and isinstance(d, int) and isinstance(t, int):
            raise ShapeError(shown + f": size {d} on axis {j} must be 1 or {t}", port="x")
    known = {d for d in x.shape if isinstance(d, str)}
    for d in target:
        if isinstance(d, str) and d not in known:
            raise ShapeError(shown + f": symbol {d} must also appear in the input's shape "
                             "(its size is read from there)", port="x")
    return [TensorType(target, x.dtype)]


def _broadcast_forward(ctx, params, x):
    sizes = dims.bind_symbols(_input_shape(ctx), x.shape)
    target = tuple(d if isinstance(d, int) else sizes.get(d, -1) for d in params["shape"])
    try:
        out = np.broadcast_to(x, target)
    except ValueError:
        raise ShapeError(f"cannot broadcast {format_shape(x.shape)} to "
                         f"{format_shape(params['shape'])}", port="x") from None
    ctx.save(x.shape, x.dtype)
    return out


def _broadcast_backward(ctx, params, g):
    shape, dtype = ctx.saved
    return (_grad(dtype, unbroadcast(g, shape)),)


_shape_op("broadcast_to", """Repeat size-1 (or missing leading) axes to reach a shape.

    Follows NumPy broadcasting; the result is a read-only view. Symbols in the target take
    their size from the input, e.g. B×1×C to ["B", 4, "C"].""",
          _broadcast_infer, _broadcast_forward, _broadcast_backward,
          [Param("shape", "shape", ["B", 1], doc="Target shape.")],
          [Example([((3, 1), "float")], {"shape": [3, 4]}),
           Example([((4,), "float")], {"shape": [2, 3, 4]}, note="new leading axes"),
           Example([((2, 1, 4), "float")], {"shape": [2, 3, 4]}),
           Example([((), "float")], {"shape": [2, 2]}, note="scalar"),
           Example([((1, 1), "float")], {"shape": [1, 5]}, note="batch of 1")],
          batch_rule=batch_rules.broadcast_rowwise)
