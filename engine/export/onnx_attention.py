"""Recognise scaled dot-product attention in an ONNX graph.

Exporters write attention as ``MatMul(Softmax(scale·Q·Kᵀ + mask), V)`` in several spellings:
the scale on the scores or split as √scale on Q and on Kᵀ, the causal mask added (0 / −∞) or
selected with ``Where``, built from ``Trilu`` or ``Range`` + ``LessOrEqual`` of the inputs'
shapes. :func:`find_attention` matches the product-softmax-product core, folds the scale, and
decides the mask by *evaluating* it at two concrete sizes: lower-triangular (aligned to the
last key, as Wiregrad's causal attention is) means causal, all zeros means none, anything else
is not matched (and then imports as primitive ops, or is reported).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.export.onnx_fold import Known, attr
from engine.export.onnx_reader import OnnxModel

NEG_BELOW = -1e4  # a mask entry at or below this blocks attention


@dataclass
class Attention:
    q: str
    k: str
    v: str
    out: str
    scale: float
    causal: bool
    internal: set[int] = field(default_factory=set)  # ids (index) of the ONNX nodes it replaces
    k_perm: list[int] | None = None  # K is k permuted so (TorchScript writes Kᵀ in one go)
    key_mask: str | None = None  # a (B, Tk) key padding mask (nonzero = a real key)


def find_attention(model: OnnxModel, known: Known) -> dict[str, Attention]:
    """``{output value: Attention}`` for every attention core found."""
    nodes = list(model.graph.node)
    producer = {out: i for i, n in enumerate(nodes) for out in n.output}
    users: dict[str, int] = {}
    for n in nodes:
        for v in n.input:
            users[v] = users.get(v, 0) + 1
    for out in model.outputs:
        users[out] = users.get(out, 0) + 1
    found: dict[str, Attention] = {}
    for i, node in enumerate(nodes):
        if node.op_type != "MatMul":
            continue
        match = _match(nodes, producer, users, known, model, i)
        if match is not None:
            found[node.output[0]] = match
    return found


def _single_use(users: dict[str, int], value: str) -> bool:
    return users.get(value, 0) == 1


def _scalar(known: Known, value: str) -> float | None:
    array = known.array(value)
    if array is None or array.size != 1 or array.dtype.kind not in "fiu":
        return None
    return float(array.reshape(-1)[0])


def _match(nodes, producer, users, known: Known, model: OnnxModel, i: int) -> Attention | None:
    node = nodes[i]
    probs, v = node.input
    guard = _padding_guard(nodes, producer, users, probs)
    if guard is not None:  # probs·[the query sees some key]: zeros for all-padding rows
        probs, guard_nodes = guard
    j = producer.get(probs)
    if j is None or nodes[j].op_type != "Softmax" or not _single_use(users, probs):
        return None
    softmax = nodes[j]
    if int(attr(softmax, "axis", -1)) not in (-1, (len(model.shapes.get(probs, [])) - 1)):
        return None
    internal = {i, j} | (guard_nodes if guard is not None else set())
    scores = softmax.input[0]
    mask, keep = None, None
    k_ = producer.get(scores)
    if k_ is not None and _single_use(users, scores):
        op = nodes[k_]
        fill = _scalar(known, op.input[2]) if op.op_type == "Where" else None
        if op.op_type == "Add" and known.get(op.input[1]) is None:
            inner = [x for x in op.input if producer.get(x) is not None and
                     nodes[producer[x]].op_type in ("MatMul", "Mul", "Div")]
            if len(inner) == 1:
                mask = op.input[1] if op.input[0] == inner[0] else op.input[0]
                scores = inner[0]
                internal.add(k_)
        elif fill is not None and fill <= NEG_BELOW:
            keep, scores = op.input[0], op.input[1]
            internal.add(k_)
    scale, q, kt = 1.0, None, None
    for _ in range(3):  # peel Mul/Div by constants off the scores, then the product
        p = producer.get(scores)
        if p is None or not _single_use(users, scores):
            return None
        op = nodes[p]
        if op.op_type in ("Mul", "Div"):
            c = _scalar(known, op.input[1])
            if c is None:
                return None
            scale *= c if op.op_type == "Mul" else 1.0 / c
            scores = op.input[0]
            internal.add(p)
            continue
        if op.op_type != "MatMul":
            return None
        internal.add(p)
        q, kt = op.input
        break
    if q is None or kt is None:
        return None
    q, scale = _peel_scale(nodes, producer, users, known, q, scale, internal)
    kt, scale = _peel_scale(nodes, producer, users, known, kt, scale, internal)
    k_perm = None
    k = _swapped(nodes, producer, users, known, model, kt, internal)
    t = producer.get(kt)
    if k is None and t is not None and nodes[t].op_type == "Transpose" and _single_use(users, kt):
        perm = list(attr(nodes[t], "perm", []))  # Kᵀ = X permuted: K = X permuted, swapped
        if len(perm) >= 2:
            k_perm = perm[:-2] + [perm[-1], perm[-2]]
            k = nodes[t].input[0]
            internal.add(t)
    if k is None:
        return None
    key_mask = None
    if keep is not None:
        key_mask, keep = _key_mask(nodes, producer, keep, internal)
    if guard is not None and key_mask is None:
        return None
    if keep is None and mask is None:
        causal: bool | None = False
    else:
        causal = _causal(model, mask if mask is not None else keep, additive=mask is not None,
                         q=q, k=kt)
    if causal is None:
        return None
    return Attention(q, k, v, node.output[0], scale, causal, internal, k_perm, key_mask)


def _padding_guard(nodes, producer, users, probs: str) -> tuple[str, set[int]] | None:
    """``Mul(softmax, Cast(Greater(ReduceSum(Cast(keep)), 0)))`` → (softmax value, nodes)."""
    m = producer.get(probs)
    if m is None or nodes[m].op_type != "Mul" or not _single_use(users, probs):
        return None
    for a, b in ((0, 1), (1, 0)):
        soft = producer.get(nodes[m].input[a])
        if soft is None or nodes[soft].op_type != "Softmax":
            continue
        chain, value = {m}, nodes[m].input[b]
        for op_type in ("Cast", "Greater", "ReduceSum", "Cast"):
            p = producer.get(value)
            if p is None or nodes[p].op_type != op_type:
                return None
            chain.add(p)
            value = nodes[p].input[0]
        return nodes[m].input[a], chain
    return None


def _key_mask(nodes, producer, keep: str, internal: set[int]) -> tuple[str | None, str | None]:
    """Split a Where's keep into (the (B, Tk) key mask it reads, the rest of it — the causal
    part — or None): the mask is ``Unsqueeze(Cast(mask, bool))``, joined by ``And``."""
    p = producer.get(keep)
    parts = list(nodes[p].input) if p is not None and nodes[p].op_type == "And" else [keep]
    mask, rest = None, []
    for part in parts:
        u = producer.get(part)
        c = producer.get(nodes[u].input[0]) if u is not None and \
            nodes[u].op_type == "Unsqueeze" else None
        if c is not None and nodes[c].op_type == "Cast" and attr(nodes[c], "to") == 9:
            mask = nodes[c].input[0]
            internal.update((u, c))
        else:
            rest.append(part)
    if mask is None:
        return None, keep
    if p is not None and nodes[p].op_type == "And":
        internal.add(p)
    return mask, (rest[0] if len(rest) == 1 else None)


def _is_swap(perm: list[int]) -> bool:
    rank = len(perm)
    return rank >= 2 and perm == list(range(rank - 2)) + [rank - 1, rank - 2]


def _swapped(nodes, producer, users, known: Known, model: OnnxModel, kt: str,
             internal: set[int]) -> str | None:
    """K when *kt* is K with its last two axes swapped: ``Transpose``, or (PyTorch's dynamo
    exporter) ``Reshape`` to 3-D → ``Transpose`` → ``Reshape`` back."""
    t = producer.get(kt)
    if t is None or not _single_use(users, kt):
        return None
    op = nodes[t]
    if op.op_type == "Transpose" and _is_swap(list(attr(op, "perm", []))):
        internal.add(t)
        return op.input[0]
    if op.op_type != "Reshape":
        return None
    mid = producer.get(op.input[0])
    if mid is None or nodes[mid].op_type != "Transpose" or not _single_use(users, op.input[0]):
        return None
    flat = producer.get(nodes[mid].input[0])
    if flat is None or nodes[flat].op_type != "Reshape" or not _is_swap(
            list(attr(nodes[mid], "perm", []))):
        return None
    k = nodes[flat].input[0]
    k_shape, out_shape = model.shapes.get(k), known.get(op.input[1])
    if k_shape is None or out_shape is None or len(k_shape) < 2:
        return None
    if list(out_shape) != list(k_shape[:-2]) + [k_shape[-1], k_shape[-2]]:
        return None
    internal.update((t, mid, flat))
    return k


def _peel_scale(nodes, producer, users, known, value, scale, internal):
    p = producer.get(value)
    if p is not None and nodes[p].op_type in ("Mul", "Div") and _single_use(users, value):
        c = _scalar(known, nodes[p].input[1])
        if c is not None:
            internal.add(p)
            factor = c if nodes[p].op_type == "Mul" else 1.0 / c
            return nodes[p].input[0], scale * factor
    return value, scale


def _causal(model: OnnxModel, mask: str | None, additive: bool, q: str, k: str) -> bool | None:
    """True (causal), False (no mask) or None (some other mask), by evaluating *mask* with the
    symbolic sizes bound to two different concrete values."""
    if mask is None:
        return False
    verdicts = set()
    for size in (3, 5):
        values = _evaluate(model, mask, size)
        if values is None:
            return None
        rows, cols = _square_of(model, q, size), _columns_of(model, k, size)
        if rows is None or cols is None:
            return None
        try:
            grid = np.broadcast_to(values, values.shape[:-2] + (rows, cols))
        except ValueError:
            return None
        blocked = grid <= NEG_BELOW if additive else ~grid.astype(bool)
        allowed = grid == 0 if additive else grid.astype(bool)
        expected = np.tril(np.ones((rows, cols), bool), k=cols - rows)
        if np.all(allowed == expected) and np.all(blocked == ~expected):
            verdicts.add(True)
        elif np.all(allowed):
            verdicts.add(False)
        else:
            return None
    return verdicts.pop() if len(verdicts) == 1 else None


def _square_of(model: OnnxModel, value: str, size: int) -> int | None:
    shape = model.shapes.get(value)
    if shape is None or len(shape) < 2:
        return None
    d = shape[-2]
    return d if isinstance(d, int) else size


def _columns_of(model: OnnxModel, kt: str, size: int) -> int | None:
    shape = model.shapes.get(kt)
    if shape is None or len(shape) < 2:
        return None
    d = shape[-1]
    return d if isinstance(d, int) else size


def _evaluate(model: OnnxModel, value: str, size: int) -> np.ndarray | None:
    """*value* computed by the constant folder with every symbolic size set to *size*."""
    bound = OnnxModel(model.path, model.graph, model.opset, model.inputs, model.outputs,
                      {k: [d if isinstance(d, int) else size for d in s]
                       for k, s in model.shapes.items()}, model.initializers)
    known = Known(bound)
    known.FOLDABLE = known.FOLDABLE | {"Trilu"}
    for node in model.graph.node:
        known.fold(node)
        if value in node.output:
            break
    return known.array(value)
