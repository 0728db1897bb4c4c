"""``wiregrad export`` and ``wiregrad run``: the command-line side of :mod:`engine.export`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from engine.base.errors import WiregradError


def _model_and_weights(graph: str, weights: str | None):
    from engine.core.inference import extract_model, resolve_weights
    from engine.graphs import presets

    doc, doc_path = presets.load(graph)
    model = extract_model(doc)
    arrays, source = resolve_weights(model, doc_path, weights)
    return doc, doc_path, model, arrays, source


def export_command(args: argparse.Namespace) -> int:
    doc, doc_path, model, arrays, source = _model_and_weights(args.graph, args.weights)
    if source == "fresh initialisation":
        print("note: the graph has no trained weights; exporting a fresh initialisation "
              "(pass --weights to export trained ones)", file=sys.stderr)
    if args.format == "onnx-decoder":
        from engine.export.onnx_seq2seq import export_seq2seq
        from engine.export.tokenizer_file import tokenize_folder
        from engine.sample.seq2seq import load_model

        base = Path(doc_path).parent  # a TSV path is relative to the graph's folder
        folder = export_seq2seq(load_model(doc, arrays, np.float32, base), args.out)
        tokenize_folder(folder, doc, ("encoder.onnx", "decoder_step.onnx"), base)
        print(f"wrote {folder}: encoder.onnx, decoder_step.onnx, seq2seq.json, "
              f"tokenizer.json and decode.py (python {folder / 'decode.py'} \"TEXT\")")
        return 0
    if args.format == "onnx":
        from engine.export.onnx_export import export_onnx
        from engine.export.tokenizer_file import TEXT_NODES, sibling_path

        out = export_onnx(model, arrays, args.out, args.opset, Path(doc_path).parent)
        print(f"wrote {out} (opset {args.opset}; inputs: {', '.join(model.input_names)}; "
              f"outputs: {', '.join(model.output_names)})")
        if any(n.get("type") in TEXT_NODES for n in doc.get("nodes", [])):
            print(f"wrote {sibling_path(out)} (the tokenizer; also in the model's "
                  "metadata_props)")
        return 0
    from engine.export.torch_project import export_torch

    files = export_torch(doc, model, arrays, args.out, base_dir=Path(doc_path).parent)
    print(f"wrote {', '.join(str(f) for f in files)}")
    return 0


def _read_npz(path: str) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise WiregradError(f"no such file: {path}", field="inputs") from None
    except (OSError, ValueError) as exc:
        raise WiregradError(f"{path} is not a readable .npz file of arrays: {exc}",
                            field="inputs") from None


def run_command(args: argparse.Namespace) -> int:
    from engine.base.io import atomic_write_bytes
    from engine.core.inference import run_model

    _, _, model, arrays, source = _model_and_weights(args.graph, args.weights)
    inputs = _read_npz(args.inputs)
    outputs = run_model(model, arrays, inputs)
    import io

    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **outputs)  # numeric arrays; _read_npz refuses pickles
    atomic_write_bytes(args.outputs, buffer.getvalue())
    shapes = ", ".join(f"{k}: {list(v.shape)}" for k, v in outputs.items())
    print(f"wrote {args.outputs} ({shapes}; weights: {source})")
    return 0


def import_command(args: argparse.Namespace) -> int:
    """``wiregrad import MODEL.onnx --out graph.json``: nothing is written unless all maps."""
    from engine.export.onnx_import import import_onnx, summary, write_import

    result = import_onnx(args.model, name=args.name)
    out, weights = write_import(result, args.out)
    print(f"wrote {out} and {weights}")
    print(summary(result))
    return 0
