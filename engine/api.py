"""The engine's public surface for the editor and the CLI: plain data in, plain data out.

The editor imports only this module: besides the functions below it re-exports the graph
document module (``api.document``), the error types (``api.errors``) and the platform folders
(``api.paths``). Nothing here imports Qt.
"""

from __future__ import annotations

from pathlib import Path

from engine.base import errors as errors  # re-exported for the editor
from engine.base import paths as paths  # re-exported for the editor
from engine.base.errors import WiregradError
from engine.core import document, registry
from engine.core.registry import format_shape
from engine.graphs import presets


def catalog(include_user_layers: bool = True) -> dict:
    """Every node type as JSON-able data (palette, inspector, validator).

    Built-in layers carry their ``definition`` (so the editor can show their inside);
    layers from the user library are added with ``"user": true``.
    """
    from engine.core.hot import definition_hot_params

    data = registry.catalog()
    for op in data["ops"]:
        if op["is_layer"]:
            op["definition"] = registry.get(op["name"]).layer
            op["user"] = False
            hot = definition_hot_params(op["definition"])
            for p in op["params"]:
                p["hot"] = p["name"] in hot
    if include_user_layers:
        from engine.layers import library

        for name, definition in library.list_layers().items():
            data["ops"].append(layer_entry(name, definition, user=True))
    return data


def layer_entry(name: str, definition: dict, user: bool = True) -> dict:
    """A catalog entry for a layer definition (user layers, a document's own layers)."""
    from engine.core.hot import definition_hot_params
    from engine.core.params import layer_params

    hot = definition_hot_params(definition)
    doc = definition.get("doc") or name
    return {
        "name": name, "category": "layer", "family": "user" if user else "layers",
        "summary": doc.strip().splitlines()[0], "doc": doc.strip(),
        "inputs": [{"name": p["name"], "dtype": p.get("dtype", "float"), "variadic": False,
                    "optional": False, "doc": p.get("doc", "")}
                   for p in definition.get("inputs", [])],
        "outputs": [{"name": p["name"], "dtype": "float", "variadic": False, "optional": False,
                     "doc": ""} for p in definition.get("outputs", [])],
        "params": [{**p.to_json(), "hot": p.name in hot} for p in layer_params(definition)],
        "weights": [], "state": [], "is_layer": True, "definition": definition, "user": user,
    }


def save_user_layer(name: str, definition: dict) -> str:
    """Save a layer definition to the user library; returns the file path."""
    from engine.layers import library

    return str(library.save_layer(name, definition))


def delete_user_layer(name: str) -> None:
    from engine.layers import library

    library.delete_layer(name)


def list_presets() -> list[dict]:
    return presets.list_presets()


def open_graph(graph: str | Path) -> tuple[dict, Path]:
    """Load a document by path or preset name."""
    return presets.load(graph)


def layer_types_used(doc: dict) -> list[str]:
    """Names of the layer types *doc* uses, directly or inside other layers."""
    from engine.layers.definitions import layer_types_used as used

    return used(doc)


def embed_layer_definitions(doc: dict) -> dict:
    """A copy of *doc* whose ``layers`` holds every layer type it uses (self-contained)."""
    from engine.layers.definitions import embed_layer_definitions as embed

    return embed(doc)


def validate(doc: dict, dtype: str = "float32") -> dict:
    """Shapes, parameter counts, FLOPs and diagnostics as plain data (``validate --json``)."""
    from engine.core.compile import compile_graph

    program = compile_graph(doc, dtype)
    nodes = []
    for node in doc["nodes"]:
        summary = program.nodes.get(node["id"])
        outputs = {p: list(t.shape) for p, t in summary.outputs.items()} if summary else {}
        nodes.append({
            "id": node["id"],
            "type": node["type"],
            "outputs": outputs,
            "param_count": summary.param_count if summary else 0,
            "flops": summary.flops if summary else 0,
        })
    edges = [
        {"src": {"node": s, "port": sp}, "dst": {"node": d, "port": dp},
         "shape": list(t.shape), "label": format_shape(t.shape), "dtype": t.dtype}
        for (s, sp, d, dp), t in program.edge_types.items()
    ]
    return {
        "ok": program.ok,
        "nodes": nodes,
        "edges": edges,
        "total_params": program.total_params,
        "total_flops": program.total_flops,
        "diagnostics": [d.to_json() for d in program.diagnostics],
    }


def gradcheck(doc: dict, node: str | None = None, seed: int = 0,
              base_dir: str | Path | None = None) -> dict:
    """Float64 gradient check of every node (or one); ``{"ok", "nodes": [...]}``.

    *base_dir* resolves relative data-file paths (the document's folder).
    """
    from engine.core.gradcheck import gradcheck_document, summarize
    from engine.data.examples import feeds_for

    return summarize(gradcheck_document(doc, node, seed, feeds_for(seed, base_dir)))


def warm_up(doc: dict | None = None, progress=None) -> int:
    """Compile the Numba kernels a graph needs (all kernels when *doc* is None).

    Returns the number of kernels warmed; *progress(done, total)* is called as they compile.
    """
    from engine.core.warmup import warm_up as _warm

    return _warm(doc, progress)


# ---------------------------------------------------------------------------------------------
# Training, inspection and sampling from the editor (plain data; the work runs elsewhere)


def start_worker(threads: int | None = None, nice: int = 5):
    """Start an engine worker process (``engine.worker``); returns its handle.

    The handle's ``send(cmd, **fields)`` and ``poll()`` exchange plain dicts (see
    ``engine/worker.py`` for the protocol); ``pid``, ``alive()``, ``close()``, ``kill()``.
    """
    from engine import worker

    return worker.start(threads, nice)


def default_worker_threads() -> int:
    from engine.base.runtime import default_threads

    return default_threads()


def graph_hash(doc: dict) -> str:
    """The hash that names what a document computes (nodes, edges, layers; not positions)."""
    from engine.core.document import graph_hash as _hash

    return _hash(doc)


def load_weights_file(path: str | Path) -> dict:
    """Parameters and state (name → array) from a weights file or a checkpoint."""
    from engine.base.io import model_weights

    return model_weights(path)


def load_weights_into(doc: dict, path: str | Path) -> dict:
    """Weights for *doc* from a weights file, checkpoint or ONNX model, matched by parameter
    name and shape: ``{"weights", "matched", "missing", "unused", "mismatched"}``."""
    from engine.export.weights_transfer import match_weights, read_source

    transfer = match_weights(doc, read_source(path))
    return {"weights": transfer.weights, **transfer.to_json()}


def save_loaded_weights(doc: dict, weights: dict, out: str | Path) -> Path:
    """Write *weights* (from :func:`load_weights_into`) to *out* as a complete weights file
    for *doc*: what the source lacked gets a fresh initialisation (the document's seed), so a
    run, sampling or an export can start from it."""
    import numpy as np

    from engine.base.io import save_weights
    from engine.core.compile import compile_document
    from engine.core.document import training_settings
    from engine.core.run import init_weights

    program = compile_document(doc)
    seed = int(training_settings(doc).get("seed") or 0)
    full: dict = {}
    for infos in (program.parameters, program.state):
        lacking = {k: v for k, v in infos.items() if k not in weights}
        full.update(init_weights(lacking, seed, np.float32))
    full.update({k: np.asarray(v) for k, v in weights.items()})
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_weights(out, full)
    return out


def import_onnx(path: str | Path, name: str | None = None) -> dict:
    """An ONNX model as ``{"doc", "weights", "layers", "summary"}`` (File ▸ Import)."""
    from engine.export.onnx_import import import_onnx as _import
    from engine.export.onnx_import import summary

    result = _import(path, name)
    return {"doc": result.doc, "weights": result.weights, "layers": result.layers,
            "summary": summary(result)}


def import_onnx_to(path: str | Path, out: str | Path, name: str | None = None) -> dict:
    """Import *path* and write the document to *out* with its weights beside it:
    ``{"path", "weights_path", "summary", "layers"}`` (what ``wiregrad import`` does)."""
    from engine.export.onnx_import import import_onnx as _import
    from engine.export.onnx_import import summary, write_import

    result = _import(path, name)
    doc_path, weights_path = write_import(result, out)
    return {"path": str(doc_path), "weights_path": str(weights_path),
            "summary": summary(result), "layers": result.layers}


def document_weights_path(doc: dict, path: str | Path | None) -> Path | None:
    """The weights file a document opened from *path* comes with, or None.

    The document's own ``weights`` reference wins; otherwise ``NAME.safetensors`` beside
    ``NAME.json`` (how presets ship their weights).
    """
    if path is None:
        return None
    path = Path(path)
    ref = doc.get("weights")
    if isinstance(ref, dict) and ref.get("path"):
        candidate = paths.contained(path.parent, ref["path"], "weights.path")
        return candidate if paths.is_file(candidate) else None
    sibling = path.with_suffix(".safetensors") if path.name else None
    return sibling if sibling is not None and paths.is_file(sibling) else None


def document_weights(doc: dict, path: str | Path | None) -> dict | None:
    """The weights of :func:`document_weights_path`, loaded; None when there are none."""
    found = document_weights_path(doc, path)
    return load_weights_file(found) if found is not None else None


def weights_detail(doc: dict, node: str, weights: dict) -> dict:
    """The Debugger's Node detail of *node* from *weights* alone, before any run: histograms
    and images of its parameters (no activations, no gradients)."""
    from engine.core.compile import compile_document
    from engine.insight.inspection import node_detail

    return node_detail(doc, compile_document(doc), node, weights, None, {})


def is_language_model(doc: dict) -> bool:
    """True when the document can be sampled from (a text_corpus data node and a loss)."""
    types = {n["type"] for n in doc.get("nodes", [])}
    return "text_corpus" in types


def sampler_for(doc: dict, weights: dict | None):
    """An opaque sampling handle for :func:`sample_tokens` and :func:`attention_maps`.

    *weights* None samples from freshly initialised weights (useful only for testing).
    """
    from engine.sample.sampler import Sampler

    return Sampler(doc, weights)


def sample_tokens(sampler, prompt: str, n: int, *, temperature: float = 0.8, top_k: int = 0,
                  top_p: float = 1.0, seed: int = 0):
    """Yield ``{"char", "p", "alternatives": [[char, p], ...]}`` for *n* generated characters.

    With the same arguments the characters equal ``wiregrad sample``'s. BLAS runs on one
    thread meanwhile (the editor samples while its worker may train on every core).
    """
    infos: list = []
    stream = sampler.generate(prompt, n, temperature=temperature, top_k=top_k, top_p=top_p,
                              seed=seed, callback=infos.append, blas_threads=1)
    for char in stream:
        info = infos.pop() if infos else None
        yield {"char": char, "token": info.token if info else char,  # token: its own label
               "p": info.probability if info else 1.0,
               "alternatives": [[c, p] for c, p in (info.alternatives if info else [])]}


def attention_maps(sampler, prompt: str) -> dict:
    """Attention layer → (heads, T, T) array over *prompt*; each row sums to 1."""
    from engine.insight.inspection import attention_maps as _maps

    return _maps(sampler, prompt)


def sampler_vocab(sampler) -> str:
    return "".join(sampler.codec.vocab)


def embedding_neighbours(doc: dict, weights: dict, word: str | int, k: int = 10,
                         table: str | None = None) -> dict:
    """The *k* tokens nearest to *word* (a word or token, or a token id) in the text model's
    embedding table (cosine), as ``wiregrad embeddings --json`` prints them; *table* picks a
    seq2seq graph's ``source`` or ``target`` table."""
    from engine.insight.embeddings import neighbours

    return neighbours(doc, weights, word, k, table)


def embedding_map(doc: dict, weights: dict, table: str | None = None) -> dict:
    """The token embeddings projected on their two leading principal components (the
    editor's explorer): ``{"weight", "table", "tables", "tokenizer", "vocab_size", "labels",
    "xy"}``; *table* as for :func:`embedding_neighbours`."""
    from engine.insight.embeddings import projection

    return projection(doc, weights, table)


def tokenize(doc: dict, text: str, base_dir: str | Path | None = None) -> list[dict]:
    """The editor's tokenizer view: ``[{"id", "token"}]`` for *text* under the document's text
    node's tokenizer, or a seq2seq graph's characters (a character outside a char vocabulary
    is a clear error)."""
    from engine.data.tokenizers import tokenizer_for
    from engine.insight.embeddings import pairs_vocab

    node = next((n for n in doc.get("nodes", []) if n.get("type") == "text_corpus"), None)
    pairs = next((n for n in doc.get("nodes", []) if n.get("type") == "sequence_pairs"), None)
    if node is not None:
        tok = tokenizer_for(node.get("params", {}), Path(base_dir) if base_dir else None,
                            node["id"])
    elif pairs is not None:  # a seq2seq graph: its characters, after the pad / begin / end ids
        node, tok = pairs, pairs_vocab(pairs.get("params", {}))
    else:
        raise WiregradError("this graph has no text data node, so it has no tokenizer")
    return [{"id": int(i), "token": tok.label(int(i))}
            for i in tok.encode(text, "the text", node["id"])]


def store_tokenizers(doc: dict, base_dir: str | Path | None = None) -> dict:
    """A copy of *doc* whose BPE text nodes carry their trained tokenizer (trains it on the
    corpus, or reads the cache), so the saved document samples without the corpus."""
    from engine.data.tokenizers import store_tokenizers as _store

    return _store(doc, Path(base_dir) if base_dir is not None else None)


__all__ = [
    "attention_maps",
    "catalog",
    "default_worker_threads",
    "document_weights",
    "document_weights_path",
    "embedding_map",
    "graph_hash",
    "is_language_model",
    "load_weights_file",
    "sample_tokens",
    "sampler_for",
    "sampler_vocab",
    "save_loaded_weights",
    "start_worker",
    "weights_detail",
    "delete_user_layer",
    "layer_entry",
    "save_user_layer",
    "document",
    "embed_layer_definitions",
    "gradcheck",
    "layer_types_used",
    "list_presets",
    "open_graph",
    "validate",
    "warm_up",
    "embedding_neighbours",
    "store_tokenizers",
    "tokenize",
]


# ----------------------------------------------------------------- export (docs/export.md)


def _export_model(doc: dict, weights, doc_path):
    from engine.core.inference import extract_model, resolve_weights

    model = extract_model(doc)
    arrays, source = resolve_weights(model, doc_path, weights)
    return model, arrays, source


def export_onnx(doc: dict, out: str | Path, weights=None, opset: int = 17,
                doc_path: str | Path | None = None) -> dict:
    """Write the model of *doc* as ONNX to *out*.

    *weights*: a weights/checkpoint path, a dict of arrays, or None (the document's own weights
    when *doc_path* is given and it references some, else a fresh initialisation).
    Returns ``{"path", "inputs", "outputs", "weights"}`` (names, and where the weights came
    from); raises :class:`WiregradError` naming the node that cannot be exported.
    """
    from engine.export.onnx_export import export_onnx as _export

    model, arrays, source = _export_model(doc, weights, doc_path)
    path = _export(model, arrays, out, opset)
    return {"path": str(path), "inputs": model.input_names, "outputs": model.output_names,
            "weights": source}


def export_torch(doc: dict, out_dir: str | Path, weights=None,
                 doc_path: str | Path | None = None) -> dict:
    """Write a PyTorch project (model.py, weights.safetensors, train.py, data.npz) for *doc*.

    Returns ``{"path", "files", "inputs", "outputs", "weights"}``.
    """
    from engine.export.torch_project import export_torch as _export

    model, arrays, source = _export_model(doc, weights, doc_path)
    base = Path(doc_path).parent if doc_path else None
    files = _export(doc, model, arrays, out_dir, base_dir=base)
    return {"path": str(out_dir), "files": [str(f) for f in files],
            "inputs": model.input_names, "outputs": model.output_names, "weights": source}


def run_model(doc: dict, weights, inputs: dict, doc_path: str | Path | None = None) -> dict:
    """The model's outputs for *inputs* (arrays keyed by the export's input names), keyed by
    the export's output names — what ``wiregrad run`` computes."""
    from engine.core.inference import run_model as _run

    model, arrays, _ = _export_model(doc, weights, doc_path)
    return _run(model, arrays, inputs)


__all__ += ["export_onnx", "export_torch", "run_model"]


# ----------------------------------------------------------------- predictions and data


def predict_file(doc: dict, path: str | Path, weights=None, doc_path: str | Path | None = None,
                 base_dir: str | Path | None = None, *, n: int = 200, temperature: float = 0.8,
                 seed: int = 0) -> dict:
    """The model's outputs for a file the user picks (Run ▸ Predict on File).

    A table (CSV / TSV / whitespace), a ``.npy`` array or an image (with Pillow) feeds the
    model's input: ``{"kind": "table", "columns", "rows", "count", "shape", "weights"}``.
    For a language model a text file is continued instead: ``{"kind": "text", "prompt",
    "continuation", "weights"}``. *weights* as for :func:`run_model`. Raises
    :class:`WiregradError` with a message for the user when the file does not fit the model.
    """
    from engine.core.inference import run_model as _run
    from engine.insight import predictions

    path = Path(path)
    if is_language_model(doc):
        if path.suffix.lower() in (".npy", ".png", ".jpg", ".jpeg"):
            raise WiregradError("a language model continues text: pick a UTF-8 text file")
        return _continue_text(doc, path, weights, doc_path, n, temperature, seed)
    model, arrays, source = _export_model(doc, weights, doc_path)
    inputs, labels = predictions.read_inputs(model, path)
    out = _run(model, arrays, inputs)[model.output_names[0]]
    table = predictions.output_table(model, out, labels,
                                     _input_class_names(doc, model, base_dir or (
                                         Path(doc_path).parent if doc_path else None)))
    return {**table, "weights": source, "file": str(path)}


def _continue_text(doc, path: Path, weights, doc_path, n: int, temperature: float,
                   seed: int) -> dict:
    from engine.core.inference import extract_model, resolve_weights

    try:
        prompt = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise WiregradError(f"cannot read {path} as UTF-8 text: {exc}") from None
    if not prompt:
        raise WiregradError(f"{path} is empty: nothing to continue")
    arrays, source = resolve_weights(extract_model(doc), doc_path, weights)
    sampler = sampler_for(doc, arrays)
    prompt = prompt[-4 * sampler.block_size:]
    text = "".join(t["char"] for t in sample_tokens(sampler, prompt, n, temperature=temperature,
                                                    seed=seed))
    return {"kind": "text", "prompt": prompt, "continuation": text, "weights": source,
            "file": str(path)}


def _input_class_names(doc: dict, model, base_dir) -> list[str] | None:
    node = model.inputs[0].node if model.inputs else None
    try:
        return dataset_summary(doc, node, base_dir).get("class_names") if node else None
    except WiregradError:
        return None


def dataset_summary(doc: dict, node_id: str, base_dir: str | Path | None = None) -> dict:
    """What a data node holds: ``examples``, ``train``, ``val``, ``classes`` (None for
    regression), ``description`` and, for a text corpus, ``characters`` and ``vocab_size``.

    Raises :class:`WiregradError` (naming the node) when the data are unavailable — a missing
    file, a missing optional package — or the node is not a data source.
    """
    from engine.data.datasets import load_dataset

    node = next((n for n in doc.get("nodes", []) if n["id"] == node_id), None)
    if node is None:
        raise WiregradError("no such node in the graph", node=node_id)
    try:
        spec = registry.get(node["type"])
    except KeyError:
        raise WiregradError(f"unknown node type {node['type']!r}", node=node_id) from None
    if spec.category != "data" or node["type"] == "input":
        raise WiregradError(f"'{node['type']}' is not a data source", node=node_id)
    ds = load_dataset(node["type"], dict(node.get("params", {})),
                      Path(base_dir) if base_dir else None, node=node_id)
    keys = ("examples", "train", "val", "classes", "class_names", "characters", "vocab_size",
            "description", "file", "columns", "task")
    out = {k: ds.info[k] for k in keys if k in ds.info}
    out.setdefault("classes", None)
    out["ports"] = {k: list(v.shape[1:]) for k, v in ds.train.items()}
    return out


__all__ += ["dataset_summary", "predict_file"]


def files_outside(doc: dict, doc_path: str | Path | None) -> list[str]:
    """Resolved paths of the data files *doc* reads from outside its own folder (a document
    opened from elsewhere says so before it trains)."""
    return paths.files_outside(doc, doc_path)


__all__ += ["files_outside"]


# ----------------------------------------------------------------- seq2seq (the editor's panel)


def is_seq2seq(doc: dict) -> bool:
    """True when *doc* reads sequence pairs (an encoder–decoder graph decodes an input)."""
    return any(n.get("type") == "sequence_pairs" for n in doc.get("nodes", []))


def decode_pairs(doc: dict, weights: dict, text: str, beam: int = 1, temperature: float = 0.0,
                 *, top_k: int = 0, top_p: float = 1.0, seed: int = 0,
                 max_tokens: int | None = None) -> dict:
    """Decode *text* with the seq2seq graph *doc*: greedy by default, beam search for
    *beam* > 1, sampling for *temperature* > 0. Returns ``{"input", "output", "input_tokens",
    "tokens": [{"token", "id", "p", "alternatives"}], "cross_attention": {block: (H, out,
    in)}}`` — each output token (the end token included) with its probability."""
    import numpy as np

    from engine.sample.seq2seq import load_model
    from engine.sample.seq2seq_trace import decode_trace

    model = load_model(doc, weights, np.float64)
    return decode_trace(model, text, beam, temperature, top_k, top_p, seed, max_tokens)


__all__ += ["decode_pairs", "is_seq2seq"]
