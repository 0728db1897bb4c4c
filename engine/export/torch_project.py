"""A PyTorch project from a graph (``wiregrad export GRAPH --format torch --out DIR``).

Writes into DIR:

* ``model.py`` — a readable ``nn.Module`` (:mod:`engine.export.torch_codegen`): one attribute
  per top-level layer or parameter node, ``forward`` in topological order with shape comments;
  ``state_dict()`` keys are Wiregrad's parameter names.
* ``weights.safetensors`` — the starting weights under those names.
* ``train.py`` and ``data.npz`` (trainable graphs only) — training with the graph's loss,
  optimizer, schedule, clipping and data (the arrays, or the encoded text, stored in
  ``data.npz``, batched in the same order as ``wiregrad train``), as ``python train.py`` or
  under ``torchrun`` with DistributedDataParallel. It needs torch, numpy and safetensors only.
* ``tokenizer.json`` (graphs with a text data node) and ``sample.py`` (language models) —
  the tokenizer, and generation from a prompt with it (:mod:`engine.export.sample_script`).
"""

from __future__ import annotations

import io
import json
import textwrap
from pathlib import Path

import numpy as np

from engine.base.errors import WiregradError
from engine.core.compile import layer_definition
from engine.core.inference import Model
from engine.core.program import Equation
from engine.export.torch_codegen import (
    HELPERS,
    Scope,
    check_exportable,
    doc_text,
    identifier,
    shape_comment,
    statements,
)

HEADER = '''"""{title} — exported from Wiregrad (`wiregrad export --format torch`).

{description}

Inputs: {inputs}. Outputs: {outputs}.
Parameter names (state_dict keys) are Wiregrad's: weights.safetensors loads with
`model.load_state_dict(safetensors.torch.load_file("weights.safetensors"))`, and checkpoints
written by train.py load back into Wiregrad (`wiregrad evaluate GRAPH --weights ...`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

INPUTS = {input_list!r}
OUTPUTS = {output_list!r}
'''


# ------------------------------------------------------------------ structure


def _value_of(model: Model, node: str, port: str) -> str | None:
    summary = model.program.nodes.get(node)
    if summary is None or port not in summary.outputs:
        return None
    values = model.program.node_outputs[node]
    index = list(summary.outputs).index(port)
    return values[index] if index < len(values) else None


def _top_order(model: Model) -> list[str]:
    """Top-level nodes of the model in a topological order (first appearance breaks ties)."""
    import networkx as nx

    producer = {o: eq.top for eq in model.equations for o in eq.outputs}
    first: dict[str, int] = {}
    g = nx.DiGraph()
    for i, eq in enumerate(model.equations):
        first.setdefault(eq.top, i)
        g.add_node(eq.top)
        for v in eq.inputs:
            if v in producer and producer[v] != eq.top:
                g.add_edge(producer[v], eq.top)
    return list(nx.lexicographical_topological_sort(g, key=lambda n: first[n]))


def _is_layer(model: Model, node: dict) -> bool:
    return layer_definition(node["type"], model.doc.get("layers", {})) is not None


def _layer_args(model: Model, node: dict, eqs: list[Equation]) -> list[tuple[str, str]]:
    """(argument name, outer value) for a layer node, in the definition's port order."""
    ldef = layer_definition(node["type"], model.doc.get("layers", {}))
    if ldef is None:
        raise WiregradError(f"unknown layer type {node['type']!r}", node=node["id"])
    order = [p["name"] for p in ldef.get("inputs", [])]
    inside = {o for eq in eqs for o in eq.outputs}
    consumed = [v for eq in eqs for v in eq.inputs if v is not None and v not in inside]
    pairs: dict[str, str] = {}
    for e in model.doc["edges"]:
        if e["dst"]["node"] == node["id"]:
            value = _value_of(model, e["src"]["node"], e["src"]["port"])
            if value in consumed and value not in pairs.values():
                pairs[e["dst"]["port"]] = value
    args = sorted(pairs.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 99)
    for i, value in enumerate(dict.fromkeys(v for v in consumed if v not in pairs.values())):
        args.append((f"in{i}", value))
    return args


def _attributes(model: Model, eqs: list[Equation], prefix: str) -> list[str]:
    """``__init__`` lines creating the parameters, state and constants of *eqs*."""
    lines: list[str] = []
    made: set[str] = set()

    def holder(rel: str) -> tuple[str, str]:
        parts = rel.split(".")
        for i in range(1, len(parts)):
            path = ".".join(parts[:i])
            if path not in made:
                made.add(path)
                lines.append(f"self.{path} = nn.Module()")
        return ".".join(["self", *parts[:-1]]), parts[-1]

    def dims(shape) -> str:
        return ", ".join(str(d) for d in shape)

    for eq in eqs:
        for name in eq.weights.values():
            owner, leaf = holder(name[len(prefix):])
            shape = model.program.parameters[name].shape
            lines.append(f"{owner}.{leaf} = nn.Parameter(torch.zeros({dims(shape)}))")
        for name in eq.state.values():
            owner, leaf = holder(name[len(prefix):])
            shape = model.program.state[name].shape
            lines.append(f"{owner}.register_buffer({leaf!r}, torch.zeros({dims(shape)}))")
        if eq.op.name == "constant":
            owner, leaf = holder(eq.path[len(prefix):])
            shape = tuple(eq.params["shape"])
            lines.append(f"{owner}.register_buffer({leaf!r}, torch.full({shape!r}, "
                         f"{float(eq.params['value'])!r}), persistent=False)")
    return lines


def _function(name: str, args: list[str], arg_types: list, body: list[str],
              returns: list[str]) -> list[str]:
    signature = ", ".join(["self", *args])
    out = [f"    def {name}({signature}):"]
    for arg, t in zip(args, arg_types):
        out.append(f"        # {arg}: {shape_comment(t)}")
    out += [f"        {line}" for line in body]
    out.append(f"        return {', '.join(returns) if returns else 'None'}")
    return out


def _class_text(doc_line: str, init: list[str], forward: list[str]) -> str:
    lines = ["class {name}(nn.Module):", f'    """{doc_line}"""', "",
             "    def __init__(self) -> None:", "        super().__init__()"]
    lines += [f"        {line}" for line in init]
    lines += [""] + forward
    return "\n".join(lines) + "\n"


def _plain(text: str) -> str:
    """*text* made safe inside a triple-quoted docstring (see :func:`doc_text`)."""
    return doc_text(text)


def _doc_line(model: Model, node: dict) -> str:
    ldef = layer_definition(node["type"], model.doc.get("layers", {})) or {}
    text = str(ldef.get("doc") or node["type"]).strip()
    return _plain(text.splitlines()[0] if text else node["type"])


def generate_model_source(model: Model) -> str:
    """The text of ``model.py``."""
    check_exportable(model)
    nodes = {n["id"]: n for n in model.doc["nodes"]}
    by_top: dict[str, list[Equation]] = {}
    for eq in model.equations:
        by_top.setdefault(eq.top, []).append(eq)
    used = {v for eq in model.equations for v in eq.inputs if v is not None}
    used |= {p.value for p in model.outputs}

    arg_names = _input_arg_names(model)
    top = Scope("", {p.value: arg_names[p.name] for p in model.inputs})
    classes: dict[str, str] = {}  # class text (name as "{name}") -> class name
    init: list[str] = []
    body: list[str] = []
    helpers: set[str] = set()
    for nid in _top_order(model):
        eqs = by_top[nid]
        node = nodes[nid]
        if not _is_layer(model, node):
            init += _attributes(model, eqs, "")
            body += statements(top, eqs)
            continue
        args = _layer_args(model, node, eqs)
        scope = Scope(nid + ".", {v: identifier(a) for a, v in args})
        inner = statements(scope, eqs)
        helpers |= scope.helpers
        produced = {o for eq in eqs for o in eq.outputs}
        outs = [v for v in model.program.node_outputs[nid] if v in produced and v in used]
        forward = _function("forward", [identifier(a) for a, _ in args],
                            [model.program.values[v] for _, v in args], inner,
                            [scope.exprs[v] for v in outs])
        text = _class_text(_doc_line(model, node), _attributes(model, eqs, nid + "."), forward)
        if text not in classes:
            base = identifier(node["type"])
            name, k = base, 2
            while name in classes.values():
                name, k = f"{base}{k}", k + 1
            classes[text] = name
        init.append(f"self.{identifier(nid)} = {classes[text]}()")
        call = f"self.{identifier(nid)}({', '.join(top.exprs[v] for _, v in args)})"
        names = [top.local(nid if len(outs) == 1 else f"{nid}_{_port(model, v)}")
                 for v in outs]
        top.exprs.update(zip(outs, names))
        shapes = ", ".join(shape_comment(model.program.values[v]) for v in outs)
        if names:
            body.append(f"{', '.join(names)} = {call}  # {shapes}")
    helpers |= top.helpers
    return _assemble(model, classes, init, body, top, helpers, arg_names)


def _port(model: Model, value: str) -> str:
    for node, values in model.program.node_outputs.items():
        if value in values:
            return list(model.program.nodes[node].outputs)[values.index(value)]
    return value.rpartition(":")[2]


def _input_arg_names(model: Model) -> dict[str, str]:
    ports = [p.port for p in model.inputs]
    return {p.name: identifier(p.port if ports.count(p.port) == 1 and p.node != p.name
                               else p.name) for p in model.inputs}


def _assemble(model, classes, init, body, top, helpers, arg_names) -> str:
    meta = model.doc.get("meta", {})
    parts = [HEADER.format(
        title=_plain(meta.get("name") or "Model"),
        description=textwrap.fill(_plain(meta.get("description") or ""), 96,
                                  break_long_words=False, break_on_hyphens=False),
        inputs=_plain(", ".join(model.input_names)),
        outputs=_plain(", ".join(model.output_names)),
        input_list=model.input_names, output_list=model.output_names)]
    for name in HELPERS:  # in definition order: a helper follows those it calls
        if name in helpers:
            parts.append(HELPERS[name])
    for text, name in classes.items():
        parts.append("\n" + text.replace("{name}", name, 1))
    args = [arg_names[p.name] for p in model.inputs]
    forward = _function("forward", args, [p.type for p in model.inputs], body,
                        [top.exprs[p.value] for p in model.outputs])
    model_class = _class_text(_plain(f"{meta.get('name') or 'The model'}: inputs "
                                     f"{', '.join(model.input_names)} → outputs "
                                     f"{', '.join(model.output_names)}."), init, forward)
    parts.append("\n" + model_class.replace("{name}", "Model", 1))
    return "\n".join(parts).rstrip() + "\n"


# ------------------------------------------------------------------ the project


def export_torch(doc: dict, model: Model, weights: dict[str, np.ndarray], out_dir: str | Path,
                 base_dir: str | Path | None = None) -> list[Path]:
    """Write the project into *out_dir*; returns the files written."""
    from engine.base.io import atomic_write_bytes, atomic_write_text, save_weights
    from engine.core.document import graph_hash

    source = generate_model_source(model)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise WiregradError(f"{out} exists and is not a folder", field="out")
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "model.py", out / "weights.safetensors"]
    atomic_write_text(files[0], source)
    names = list(model.parameters) + list(model.state)
    save_weights(files[1], {n: np.ascontiguousarray(weights[n]) for n in names},
                 {"graph_hash": graph_hash(doc), "source": "wiregrad export"})
    from engine.export.sample_script import write_text_files

    files += write_text_files(doc, model, out, base_dir)  # tokenizer.json, sample.py
    plan = training_plan(doc, model, base_dir)
    if plan is None:
        return files
    config, arrays = plan
    from engine.export.train_script import train_source

    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(out / "data.npz", buffer.getvalue())
    atomic_write_text(out / "train.py", train_source(config))
    return files + [out / "data.npz", out / "train.py"]


def _stream_dtype(n: int):
    return np.uint8 if n <= 256 else np.uint16 if n <= 65536 else np.int64


def training_plan(doc: dict, model: Model,
                  base_dir: str | Path | None) -> tuple[dict, dict] | None:
    """(train.py's CONFIG, data.npz arrays), or None for a graph that is not trainable."""
    from engine.core import document
    from engine.train.graph import analyse
    from engine.train.trainer import _node_seed

    if model.loss is None:
        return None
    program = model.program
    try:
        graph = analyse(doc, program, base_dir)
    except WiregradError as exc:
        if any(eq.op.name == "input" for eq in program.equations):
            return None  # a forward-only graph: model.py and weights only
        raise exc
    settings = document.training_settings(doc)
    producer = {o: eq for eq in program.equations for o in eq.outputs}
    label_value = model.loss.inputs[1]
    label_eq = None if label_value is None else producer.get(label_value)
    if label_value is None or label_eq is None or label_eq.op.category != "data":
        raise WiregradError("train.py needs the loss's second input wired straight from a "
                            "data node", node=model.loss.path)
    label_port = label_eq.op.outputs[label_eq.outputs.index(label_value)].name
    data, arrays = {}, {}
    for node, ds in graph.datasets.items():
        entry: dict[str, object] = {"batch_size": graph.batch_sizes[node],
                                    "seed": _node_seed(settings["seed"], node)}
        if node in graph.sequence_nodes:
            params = next(eq.params for eq in program.equations if eq.path == node)
            vocab = int(ds.info.get("classes") or len(params["vocab"]))  # BPE: vocab_size
            entry.update(kind="windows", block_size=int(params["block_size"]),
                         val_seed=int(params["seed"]), vocab_size=vocab)
            dtype = _stream_dtype(vocab)
            arrays[f"{node}/train/stream"] = ds.train["stream"].astype(dtype)
            arrays[f"{node}/val/stream"] = ds.val["stream"].astype(dtype)
        else:
            entry.update(kind="examples", ports=graph.data_ports[node])
            for split, part in (("train", ds.train), ("val", ds.val)):
                for port, arr in part.items():
                    arrays[f"{node}/{split}/{port}"] = np.asarray(arr)
        data[node] = entry
    opt = dict(graph.optimizer_params)
    decay = sorted(n for n, info in model.parameters.items()
                   if info.decay and len(info.shape) >= 2)
    if opt["decay_set"] == "no_embeddings":
        decay = [n for n in decay if n not in graph.embedding_weights]
    config = {
        "name": doc.get("meta", {}).get("name", ""),
        "steps": settings["steps"], "seed": settings["seed"], "dtype": settings["dtype"],
        "eval_every": settings["eval_every"], "eval_batches": settings["eval_batches"],
        "checkpoint_every": settings["checkpoint_every"],
        "data": data,
        "inputs": [[p.node, p.port] for p in model.inputs],
        "labels": [label_eq.path, label_port],
        "loss": {"kind": model.loss.op.name, **model.loss.params},
        "optimizer": {**opt, "decay": decay},
    }
    seq2seq = _seq2seq_plan(program, config["inputs"])
    if seq2seq is not None:
        config["seq2seq"] = seq2seq
    json.dumps(config)  # plain data only
    return config, arrays


DECODE_PAIRS = 200  # validation pairs train.py decodes for a seq2seq graph's exact match


def _seq2seq_plan(program, inputs: list[list[str]]) -> dict | None:
    """What train.py's greedy exact match needs on a seq2seq graph (every model input read
    from one ``sequence_pairs`` node, ``target_in`` among them): the node, which input is
    ``target_in``, the special tokens; None for any other graph."""
    from engine.ops.seq2seq import BOS, EOS, PAD, SPECIALS

    node = next((eq.path for eq in program.equations if eq.op.name == "sequence_pairs"), None)
    if node is None or [node, "target_in"] not in inputs or any(n != node for n, _ in inputs):
        return None
    return {"node": node, "target_in": inputs.index([node, "target_in"]), "pad": PAD,
            "bos": BOS, "eos": EOS, "specials": SPECIALS, "pairs": DECODE_PAIRS}
