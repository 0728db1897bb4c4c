"""Headless command line: ``wiregrad train | evaluate | sample | validate | gradcheck | ops ...``.

Exit codes: 0 success; 1 a check failed; 2 bad input (usage, a bad option value, unreadable or
invalid graph, missing optional extra — the message gives the pip command); 3 training stopped
by the NaN guard; 130 interrupted; 141 stdout closed early (``| head``: ends quietly, as other
Unix tools). Bad input prints one clear paragraph, never a traceback. Never imports Qt.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from engine.base import heap
from engine.base.argtypes import count, non_negative, positive_int, probability, seed
from engine.base.errors import GraphError, WiregradError

SUBCOMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what the shell shows for `yes | head`


def command(name: str):
    def wrap(fn):
        SUBCOMMANDS[name] = fn
        return fn

    return wrap


# ----------------------------------------------------------------- helpers


def _print_json(data) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def _human(n: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


def _load(graph: str) -> tuple[dict, str]:
    from engine.graphs import presets

    doc, path = presets.load(graph)
    return doc, str(path)


# ----------------------------------------------------------------- commands


@command("validate")
def cmd_validate(args: argparse.Namespace) -> int:
    """Shapes, parameter counts and FLOPs per node; every diagnostic."""
    from engine import api
    from engine.core.registry import format_shape

    doc, path = _load(args.graph)
    report = api.validate(doc)
    if args.json:
        _print_json(report)
    else:
        name = doc.get("meta", {}).get("name") or args.graph
        print(f"{name}  ({path})")
        rows = []
        for n in report["nodes"]:
            outs = ", ".join(f"{p}: {format_shape(s)}" for p, s in n["outputs"].items()) or "-"
            rows.append([n["id"], n["type"], outs, f"{n['param_count']:,}", _human(n["flops"])])
        print(_table(rows, ["node", "type", "outputs", "params", "FLOPs/example"]))
        print(f"\ntotal: {report['total_params']:,} parameters, "
              f"{_human(report['total_flops'])} FLOPs per example (forward)")
        for d in report["diagnostics"]:
            where = d["node"] or "graph"
            if d["port"]:
                where += f":{d['port']}"
            print(f"{d['severity']}: {where}: {d['message']}", file=sys.stderr)
        if report["ok"]:
            print("ok")
    return 0 if report["ok"] else 2


@command("gradcheck")
def cmd_gradcheck(args: argparse.Namespace) -> int:
    """Backprop against float64 central differences, per node."""
    from engine import api
    from engine.core.gradcheck import ATOL, RTOL

    doc, path = _load(args.graph)
    result = api.gradcheck(doc, args.node, args.seed, Path(path).parent)
    if args.json:
        _print_json(result)
    else:
        rows = [[n["id"], f"{n['max_abs_err']:.2e}", f"{n['max_rel_err']:.2e}", n["checked"],
                 "ok" if n["ok"] else "FAIL", n["worst"]] for n in result["nodes"]]
        print(_table(rows, ["node", "max abs err", "max rel err", "coords", "result",
                            "worst tensor"]))
        verdict = "all nodes pass" if result["ok"] else "some nodes FAIL"
        print(f"\n{verdict} (|analytic - numeric| <= {ATOL:g} + {RTOL:g} * |numeric|, "
              "float64 central differences)")
    return 0 if result["ok"] else 1


@command("ops")
def cmd_ops(args: argparse.Namespace) -> int:
    """The op registry as a table or as Markdown (docs/ops.md)."""
    from engine.core import registry
    from engine.core.opsdoc import ops_markdown

    if args.markdown:
        sys.stdout.write(ops_markdown())
        return 0
    if args.json:
        _print_json(registry.catalog())
        return 0
    rows = [[s.name, s.category, s.summary] for s in registry.all_ops()]
    print(_table(rows, ["op", "category", "summary"]))
    return 0


@command("train")
def cmd_train(args: argparse.Namespace) -> int:
    """Train a graph headless: progress bar, JSONL metrics, checkpoints."""
    from engine.train.cli import train_command

    return train_command(args, _eval_hooks)  # a seq2seq graph: exact_match at each evaluation


def _eval_hooks(doc: dict) -> list:
    """exact_match on a seq2seq graph (a sequence_pairs source), nothing otherwise. The
    seq2seq decoder (its Numba kernels, tokenizers) is imported for such a graph only: for
    any other it cost `wiregrad train` ~0.1-0.2 s CPU of imports before its first step."""
    if not any(n.get("type") == "sequence_pairs" for n in doc.get("nodes", [])):
        return []
    from engine.insight.seq2seq_metrics import eval_hooks

    return eval_hooks(doc)


@command("evaluate")
def cmd_evaluate(args: argparse.Namespace) -> int:
    """Validation loss and metrics of some weights."""
    from engine.insight.seq2seq_metrics import evaluate_metrics
    from engine.train.cli import evaluate_command

    return evaluate_command(args, lambda doc, trainer, a: evaluate_metrics(doc, trainer, a.pairs))


@command("sample")
def cmd_sample(args: argparse.Namespace) -> int:
    """Generate text from a language model, streaming each token's text."""
    from engine.sample.sampler import Sampler
    from engine.train.cli import _doc_weights

    doc, path = _load(args.graph)
    weights = _doc_weights(doc, Path(path), args.weights, "sample")
    if weights is None:
        raise WiregradError("this graph has no trained weights: pass --weights (a weights file "
                            "or checkpoint from `wiregrad train`)")
    from engine.sample.seq2seq_command import is_seq2seq, sample_seq2seq

    if is_seq2seq(doc):
        if args.show_tokens:
            raise WiregradError("--show-tokens marks a language model's streamed tokens; a "
                                "sequence-to-sequence graph prints whole outputs",
                                field="--show-tokens")
        return sample_seq2seq(doc, weights, args)
    if args.input is not None or args.input_file is not None or args.beam != 1:
        raise WiregradError("--input, --input-file and --beam are for sequence-to-sequence "
                            "graphs; a language model continues --prompt", field="--input")
    sampler = Sampler(doc, weights)
    if args.verbose:
        print(f"decoding: {sampler.decoding.describe()}", file=sys.stderr)
    prompt = args.prompt if args.prompt is not None else "\n"
    temperature = 0.8 if args.temperature is None else args.temperature
    stream = sampler.generate(prompt, args.n, temperature=temperature, top_k=args.top_k,
                              top_p=args.top_p, seed=args.seed)
    if args.show_tokens:
        from engine.sample.sampler import mark_pieces

        tty = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        stream = mark_pieces(stream, ansi=tty)
    first = next(stream, "")  # the prompt is validated before anything is printed
    if not args.no_echo:
        sys.stdout.write(prompt)
    for piece in itertools.chain([first], stream):
        sys.stdout.write(piece)  # each token's text as soon as it is drawn
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0


@command("embeddings")
def cmd_embeddings(args: argparse.Namespace) -> int:
    """Nearest tokens of a text model's embedding table by cosine similarity."""
    from engine.insight.embeddings import format_report, neighbours
    from engine.train.cli import _doc_weights

    doc, path = _load(args.graph)
    weights = _doc_weights(doc, Path(path), args.weights, "embeddings")
    if weights is None:
        raise WiregradError("this graph has no trained weights: pass --weights (a weights file "
                            "or checkpoint from `wiregrad train`)")
    report = neighbours(doc, weights, args.neighbours, args.k)
    if args.json:
        _print_json(report)
    else:
        print(format_report(report))
    return 0


@command("pack")
def cmd_pack(args: argparse.Namespace) -> int:
    """Document + weights (+ metadata) → one .wgz bundle; a BPE text or pairs node carries
    its trained tokenizer, so the bundle samples without the corpus or TSV file."""
    from engine import api
    from engine.base.io import model_weights
    from engine.graphs import bundle

    doc, path = _load(args.graph)
    doc = api.store_tokenizers(doc, Path(path).parent)
    out = bundle.pack(doc, model_weights(args.weights), args.out)
    print(f"wrote {out}")
    return 0


@command("import")
def cmd_import(args: argparse.Namespace) -> int:
    """An ONNX model → an editable graph document and its weights."""
    from engine.export.commands import import_command

    return import_command(args)


@command("export")
def cmd_export(args: argparse.Namespace) -> int:
    """The model as ONNX or as a PyTorch project (docs/export.md)."""
    from engine.export.commands import export_command

    return export_command(args)


@command("run")
def cmd_run(args: argparse.Namespace) -> int:
    """The model's outputs for inputs from an .npz file (names as in the ONNX export)."""
    from engine.export.commands import run_command

    return run_command(args)


@command("bench")
def cmd_bench(args: argparse.Namespace) -> int:
    """Wiregrad against PyTorch CPU on the presets (bench/RESULTS.md)."""
    from engine.bench.benchmark import bench_command

    return bench_command(args)


# ----------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    from engine import __version__

    parser = argparse.ArgumentParser(
        prog="wiregrad",
        description="Wiregrad: wire, train and sample neural networks. Without a subcommand, "
                    "`wiregrad [GRAPH]` opens the editor.",
    )
    parser.add_argument("--version", action="version", version=f"wiregrad {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("validate", help="check a graph: shapes, parameters, FLOPs, diagnostics")
    p.add_argument("graph", help="document path or preset name (e.g. spiral_mlp)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")

    p = sub.add_parser("gradcheck", help="compare backprop with float64 finite differences")
    p.add_argument("graph", help="document path or preset name")
    p.add_argument("--node", help="check only this node id")
    p.add_argument("--seed", type=seed, default=0, help="seed for data and coordinates")
    p.add_argument("--json", action="store_true", help="print the result as JSON")

    p = sub.add_parser("train", help="train a graph (progress bar, metrics, checkpoints)")
    p.add_argument("graph", help="document path or preset name")
    p.add_argument("--steps", type=positive_int, help="total steps; default: the document's "
                   "training.steps, or a resumed run's own total")
    p.add_argument("--seed", type=seed, help="seed (default: the document's training.seed, or "
                   "a resumed run's own)")
    p.add_argument("--out", help="folder for checkpoints and weights, created if needed "
                   "(default: a new run folder under the Wiregrad data folder; with --resume, "
                   "the checkpoint's folder)")
    p.add_argument("--resume", help="checkpoint to continue from: the same run (its steps, "
                   "seed, precision, patience and schedule) unless given explicitly")
    p.add_argument("--weights", help="start from these weights instead of a fresh init")
    p.add_argument("--metrics", help="write one JSON record per line to this file (a new "
                   "file; with --resume, appended)")
    p.add_argument("--threads", type=positive_int, help="compute threads (BLAS and kernels)")
    p.add_argument("--dtype", choices=["float32", "float64"], help="override training.dtype")
    p.add_argument("--anomaly", action="store_true",
                   help="check every op's output for NaN/Inf (slower)")
    p.add_argument("--patience", type=count,
                   help="stop after this many evaluations without improvement (0: off)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="end with a JSON summary on stdout")

    p = sub.add_parser("evaluate", help="validation loss and metrics of trained weights")
    p.add_argument("graph", help="document path, preset name or .wgz bundle")
    p.add_argument("--weights", help="weights or checkpoint (default: the document's own)")
    p.add_argument("--batches", type=count, default=None, help="evaluation batches (0: "
                   "all; default: all, or the document's eval_batches for text graphs, as "
                   "in training)")
    p.add_argument("--pairs", type=count, default=None, help="seq2seq graphs: validation "
                   "pairs decoded greedily for exact_match and cer (0: all; default: 1000)")
    p.add_argument("--threads", type=positive_int, help="compute threads (BLAS and kernels; "
                   "evaluation batches run one per thread)")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("sample", help="generate text from a language model (or seq2seq graph)")
    p.add_argument("graph", help="document path, preset name (e.g. char_gpt) or .wgz bundle")
    p.add_argument("--weights", help="weights or checkpoint (default: the document's own)")
    p.add_argument("--prompt", help="text to continue (default: a new line)")
    p.add_argument("--input", help="seq2seq graphs: the text to translate")
    p.add_argument("--input-file", help="seq2seq graphs: a UTF-8 file, one input per line")
    p.add_argument("--beam", type=positive_int, default=1,
                   help="seq2seq graphs: beam search width (1: greedy)")
    p.add_argument("-n", type=positive_int, default=500, help="tokens to generate (characters "
                   "for a char model, word pieces for BPE; seq2seq: the most output tokens)")
    p.add_argument("--temperature", type=non_negative, default=None,
                   help="0 picks the likeliest (default 0.8; seq2seq: greedy unless given)")
    p.add_argument("--top-k", type=count, default=0, help="keep only the k likeliest (0: all)")
    p.add_argument("--top-p", type=probability, default=1.0, help="nucleus: smallest set with this "
                   "total probability")
    p.add_argument("--seed", type=seed, default=0, help="random seed")
    p.add_argument("--no-echo", action="store_true", help="print only the continuation")
    p.add_argument("--show-tokens", action="store_true", help="mark where each token's text "
                   "ends: alternately normal and dim in a terminal, '|' between tokens "
                   "otherwise (or with NO_COLOR set)")
    p.add_argument("--verbose", action="store_true", help="say how the model is decoded (KV "
                   "cache, recurrent state or window recomputation; for a seq2seq graph, "
                   "token by token or full recomputation of the decoder, and why) on stderr")

    p = sub.add_parser("embeddings", help="nearest tokens of a text model's embeddings "
                       "(cosine similarity)")
    p.add_argument("graph", help="document path, preset name (e.g. word_gpt) or .wgz bundle")
    p.add_argument("--neighbours", required=True, metavar="WORD",
                   help="word or token to look up (BPE: ' WORD' mid-text form first)")
    p.add_argument("-k", type=positive_int, default=10, help="neighbours to list (default 10)")
    p.add_argument("--weights", help="weights or checkpoint (default: the document's own)")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("pack", help="bundle a document and its weights into one .wgz file")
    p.add_argument("graph", help="document path or preset name")
    p.add_argument("--weights", required=True, help="weights or checkpoint to include")
    p.add_argument("--out", required=True, help="bundle file to write (NAME.wgz)")

    p = sub.add_parser("export", help="export the model as ONNX or a PyTorch project")
    p.add_argument("graph", help="document path, preset name or .wgz bundle")
    p.add_argument("--format", choices=["onnx", "torch", "onnx-decoder"], required=True,
                   help="onnx: one .onnx file; torch: a folder with model.py, weights and "
                   "train.py; onnx-decoder (seq2seq graphs): a folder with encoder.onnx, "
                   "decoder_step.onnx and decode.py")
    p.add_argument("--out", required=True, help="file (onnx) or folder (torch) to write")
    p.add_argument("--weights", help="weights or checkpoint (default: the document's own)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")

    p = sub.add_parser("import", help="open an ONNX model as a graph document with weights")
    p.add_argument("model", help="the .onnx file (e.g. from torch.onnx.export)")
    p.add_argument("--out", required=True, help="graph document to write (NAME.json); the "
                   "weights go beside it (NAME.safetensors)")
    p.add_argument("--name", help="the graph's name (default: the model file's)")

    p = sub.add_parser("run", help="run the model forward on inputs from an .npz file")
    p.add_argument("graph", help="document path, preset name or .wgz bundle")
    p.add_argument("--weights", help="weights or checkpoint (default: the document's own)")
    p.add_argument("--inputs", required=True, help=".npz with one array per model input")
    p.add_argument("--outputs", required=True, help=".npz to write the model's outputs to")

    p = sub.add_parser("bench", help="time Wiregrad against PyTorch CPU on the presets")
    p.add_argument("--quick", action="store_true", help="a short run (about a minute)")
    p.add_argument("--json", help="write the results to this JSON file")
    p.add_argument("--threads", type=positive_int,
                   help="compute threads for both (default: all cores)")

    p = sub.add_parser("ops", help="list every op in the registry")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--markdown", action="store_true", help="print docs/ops.md")
    fmt.add_argument("--json", action="store_true", help="print the catalog as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help/--version exit 0, usage errors exit 2
        return _flushed(int(exc.code or 0))
    except BrokenPipeError:  # `wiregrad --help | head -1`
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    if args.command is None:
        parser.print_help()
        return _flushed(2)
    heap.keep_freed_memory()  # a step's freed arrays serve the next step (engine.base.heap)
    try:
        code = SUBCOMMANDS[args.command](args)
        sys.stdout.flush()  # a closed pipe shows up here, not in the interpreter's last flush
        return code
    except BrokenPipeError:  # `wiregrad ... | head`: the reader left; end quietly
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except GraphError as exc:
        for d in exc.diagnostics:
            print(f"{d.severity}: {d}", file=sys.stderr)
        return exc.exit_code
    except WiregradError as exc:
        print(f"wiregrad {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _flushed(code: int) -> int:
    """*code*, once stdout is flushed (a closed pipe becomes exit 141, not a traceback)."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    return code


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush cannot fail again."""
    # not a real file (e.g. captured in tests): nothing to redirect
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
