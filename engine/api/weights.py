"""Weights and the training process: the worker, weight files, loading weights into a
graph, importing ONNX models, the document's own weights and its data files."""

from __future__ import annotations

from pathlib import Path

from engine.base import paths

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
