"""Export, running a model on inputs, predictions on a user's file and data summaries."""

from __future__ import annotations

from pathlib import Path

from engine.api.text import is_language_model, sample_tokens, sampler_for
from engine.base import paths
from engine.base.errors import WiregradError
from engine.core import registry

# ----------------------------------------------------------------- export (docs/export.md)


def _export_model(doc: dict, weights, doc_path):
    from engine.core.inference import extract_model, resolve_weights

    model = extract_model(doc)
    arrays, source = resolve_weights(model, doc_path, weights)
    return model, arrays, source


def export_onnx(doc: dict, out: str | Path, weights=None, opset: int = 17,
                doc_path: str | Path | None = None) -> dict:
    """Write the model of *doc* as ONNX to *out* (a text model's tokenizer beside it, as
    ``<stem>.tokenizer.json``, and in its ``metadata_props``).

    *weights*: a weights/checkpoint path, a dict of arrays, or None (the document's own weights
    when *doc_path* is given and it references some, else a fresh initialisation).
    Returns ``{"path", "inputs", "outputs", "weights"}`` (names, and where the weights came
    from); raises :class:`WiregradError` naming the node that cannot be exported.
    """
    from engine.export.onnx_export import export_onnx as _export

    model, arrays, source = _export_model(doc, weights, doc_path)
    path = _export(model, arrays, out, opset, Path(doc_path).parent if doc_path else None)
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
    regression), ``description`` and, for a text corpus, ``characters`` and ``vocab_size``;
    ``note`` where the user should know something (a BPE smaller than its ``vocab_size``).

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
            "description", "file", "columns", "task", "note")
    out = {k: ds.info[k] for k in keys if k in ds.info}
    out.setdefault("classes", None)
    out["ports"] = {k: list(v.shape[1:]) for k, v in ds.train.items()}
    return out




def files_outside(doc: dict, doc_path: str | Path | None) -> list[str]:
    """Resolved paths of the data files *doc* reads from outside its own folder (a document
    opened from elsewhere says so before it trains)."""
    return paths.files_outside(doc, doc_path)
