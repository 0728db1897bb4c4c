"""Import an ONNX model as an editable, trainable Wiregrad graph document with its weights.

The inverse of :mod:`engine.export.onnx_export`: each ONNX node becomes registry ops
(:data:`ONNX_TO_WIREGRAD` in :mod:`engine.export.onnx_ops`), constants and shape arithmetic are
folded first (:mod:`engine.export.onnx_reader`), and the patterns exporters emit for layers are
folded back into layer nodes (:mod:`engine.export.onnx_layers`). Anything that does not map is
reported — node name, op type, opset — and nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.base.errors import WiregradError
from engine.export.onnx_attention import find_attention
from engine.export.onnx_build import Builder, UnmappedError
from engine.export.onnx_fold import Known
from engine.export.onnx_gelu import find_gelu
from engine.export.onnx_layers import fold_layers
from engine.export.onnx_ops import translate
from engine.export.onnx_ops_nn import RECURRENT  # noqa: F401  (registers the nn translators)
from engine.export.onnx_reader import OnnxModel, read_model


@dataclass
class ImportResult:
    """The imported document, its weights (by parameter name) and what was folded."""

    doc: dict
    weights: dict[str, np.ndarray]
    layers: dict[str, int]  # layer type → instances folded back
    primitive_ops: dict[str, int]


def import_onnx(path: str | Path, name: str | None = None) -> ImportResult:
    """Translate the ONNX model at *path*; raises :class:`UnmappedError` listing every ONNX
    node that does not map."""
    model = read_model(path)
    known = Known(model)
    b = Builder(model, known)
    for input_name, shape, kind in model.inputs:
        params: dict = {"shape": list(shape), "dtype": kind}
        if kind == "int":
            params["high"] = _index_bound(model, input_name)
        b.add("input", input_name, params, outs={"out": input_name})
    folded = {i for i, onnx_node in enumerate(model.graph.node) if known.fold(onnx_node)}
    attention = find_attention(model, known)
    gelus = find_gelu(model, known)
    internal = {i for a in attention.values() for i in a.internal}
    internal |= {i for _, _, nodes in gelus.values() for i in nodes}
    live = _live_nodes(model, attention, internal, gelus)
    nodes = list(model.graph.node)
    b.used |= {v for i in live for v in nodes[i].input}
    b.used |= {v for a in attention.values() for v in (a.q, a.k, a.v, a.key_mask) if v}
    b.used |= {g[0] for g in gelus.values()}
    for i, onnx_node in enumerate(model.graph.node):
        if i not in live or i in folded:
            continue
        try:
            _translate_one(b, onnx_node, gelus.get(onnx_node.output[0]),
                           attention.get(onnx_node.output[0]))
        except WiregradError:
            if not b.problems:  # else it follows from a node already reported
                raise
    if b.problems:
        raise UnmappedError("the ONNX model uses what Wiregrad cannot import:\n  "
                            + "\n  ".join(b.problems))
    outputs = []
    for out in model.outputs:
        value = b.resolve(out)
        if value not in b.producer:
            b.materialise(value)
        outputs.append(value)
    layers = fold_layers(b)
    if b.problems:
        raise UnmappedError("the ONNX model uses what Wiregrad cannot import:\n  "
                            + "\n  ".join(b.problems))
    doc = _document(b, outputs, name or Path(path).stem)
    _check_compiles(doc)
    return ImportResult(doc, b.weights, layers,
                        _count(n.type for n in b.nodes if n.type[0].islower()))


def _check_compiles(doc: dict) -> None:
    """The imported graph must validate as it is, or nothing is written."""
    from engine.core import document
    from engine.core.compile import compile_graph

    program = compile_graph(document.from_dict(doc))
    errors = [d for d in program.diagnostics if d.severity == "error"]
    if errors:
        first = errors[0]
        raise UnmappedError(f"the imported graph does not validate ({len(errors)} error(s)); "
                            f"first: node '{first.node}': {first.message}", node=first.node)


def _translate_one(b: Builder, onnx_node, gelu, core) -> None:
    """One live ONNX node: a recognised GELU or attention core, or the op's translator."""
    if gelu is not None:
        b.materialise(gelu[0])
        b.add("gelu", onnx_node.name or "gelu", {"approximate": gelu[1]}, {"x": gelu[0]},
              {"out": onnx_node.output[0]})
        return
    if core is None:
        translate(b, onnx_node)
        return
    for value in (core.q, core.k, core.v) + ((core.key_mask,) if core.key_mask else ()):
        b.materialise(value)
    k = core.k
    if core.k_perm is not None:
        k = f"{core.out}::k"
        b.add("permute", "keys", {"axes": core.k_perm}, {"x": core.k}, {"out": k})
    b.add("scaled_dot_product_attention", onnx_node.name or "attention",
          {"causal": core.causal, "scale": _attention_scale(b, core)},
          {"q": core.q, "k": k, "v": core.v} | ({"key_mask": core.key_mask}
                                                   if core.key_mask else {}),
          {"out": core.out})


def _attention_scale(b: Builder, core) -> float | None:
    """None (Wiregrad's exact 1/√d) when the exported float32 scale is that, else the scale."""
    shape = b.shape(core.q)
    d = shape[-1] if shape else None
    if isinstance(d, int) and d > 0 and abs(core.scale * d**0.5 - 1.0) < 1e-6:
        return None
    return core.scale


def _live_nodes(model: OnnxModel, attention: dict, internal: set[int],
                gelus: dict) -> set[int]:
    """Indices of the ONNX nodes the outputs need, seeing each attention core as one node
    (the mask it no longer needs, and its construction, are dead)."""
    needed = set(model.outputs)
    live: set[int] = set()
    nodes = list(model.graph.node)
    for i in range(len(nodes) - 1, -1, -1):
        node = nodes[i]
        if not any(out in needed for out in node.output):
            continue
        core = attention.get(node.output[0])
        if core is not None:
            live.add(i)
            needed.update(v for v in (core.q, core.k, core.v, core.key_mask) if v)
        elif node.output[0] in gelus:
            live.add(i)
            needed.add(gelus[node.output[0]][0])
        elif i not in internal:
            live.add(i)
            needed.update(v for v in node.input if v)
    return live


def _index_bound(model: OnnxModel, value: str) -> int:
    """Token ids index an embedding table: its row count bounds them (1 if none is found)."""
    for node in model.graph.node:
        if node.op_type == "Gather" and len(node.input) > 1 and node.input[1] == value:
            table = model.initializers.get(node.input[0])
            if table is not None:
                return int(table.shape[0])
    return 1


def _count(types) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in types:
        out[t] = out.get(t, 0) + 1
    return dict(sorted(out.items()))


def _document(b: Builder, outputs: list[str], name: str) -> dict:
    from engine.core import document

    doc = document.new_document(name, f"Imported from ONNX ({b.model.path.name}, opset "
                                      f"{b.model.opset}).")
    edges = []
    for node in b.nodes:
        entry: dict = {"id": node.id, "type": node.type, "params": node.params}
        if not node.trainable:
            entry["trainable"] = False
        doc["nodes"].append(entry)
        for port, value in node.ins.items():
            src, src_port = b.producer[value]
            edges.append({"src": {"node": src.id, "port": src_port},
                          "dst": {"node": node.id, "port": port}})
    doc["edges"] = edges
    doc["extra"]["onnx_inputs"] = {name: b.producer[name][0].id for name, _, _ in b.model.inputs}
    _layout(doc)
    return doc


def _layout(doc: dict) -> None:
    """Columns by topological depth, wrapped every few columns so a long chain stays in view."""
    import networkx as nx

    graph = nx.DiGraph()
    graph.add_nodes_from(n["id"] for n in doc["nodes"])
    graph.add_edges_from((e["src"]["node"], e["dst"]["node"]) for e in doc["edges"])
    by_id = {n["id"]: n for n in doc["nodes"]}
    per_row = 8
    for depth, generation in enumerate(nx.topological_generations(graph)):
        band, column = divmod(depth, per_row)
        for k, node_id in enumerate(sorted(generation)):
            by_id[node_id]["ui"] = {"pos": [column * 260, band * 480 + k * 110]}


def write_import(result: ImportResult, out: str | Path) -> tuple[Path, Path]:
    """Write the document to *out* (``graph.json``) and its weights beside it
    (``graph.safetensors``, referenced with its sha256 like the presets' weights)."""
    from engine.base.io import atomic_write_text, save_weights, sha256_file
    from engine.core import document

    out = Path(out)
    if out.suffix != ".json":
        raise WiregradError(f"--out must name a .json graph document, got {out}", field="out")
    out.parent.mkdir(parents=True, exist_ok=True)
    weights_path = out.with_suffix(".safetensors")
    save_weights(weights_path, result.weights, {"format": "wiregrad-weights-1",
                                                "source": "onnx import"})
    doc = dict(result.doc)
    doc["weights"] = {"path": weights_path.name, "sha256": sha256_file(weights_path)}
    atomic_write_text(out, document.dumps(document.from_dict(doc)) + "\n")
    return out, weights_path


def summary(result: ImportResult) -> str:
    """What was imported, in a few lines for the terminal."""
    layers = ", ".join(f"{n}×{k}" for n, k in result.layers.items()) or "none"
    ops = ", ".join(f"{n}×{k}" for n, k in result.primitive_ops.items()
                    if n not in ("input", "parameter", "constant")) or "none"
    count = sum(int(np.prod(a.shape)) for a in result.weights.values())
    frozen = [n["id"] for n in result.doc["nodes"] if n.get("trainable") is False]
    inputs = ", ".join(result.doc["extra"].get("onnx_inputs", {}))
    lines = [f"layers: {layers}", f"primitive ops: {ops}",
             f"{count:,} weights in {len(result.weights)} tensors; inputs: {inputs}"]
    if frozen:
        lines.append(f"constants kept frozen (trainable: false): {', '.join(frozen)}")
    lines.append("to train it, add a data source, a loss and an optimizer (docs/import.md)")
    return "\n".join(lines)
