"""``wiregrad sample`` on a sequence-to-sequence graph: read inputs, print outputs.

``--input TEXT`` decodes one input, ``--input-file FILE`` one per line (UTF-8); ``-n`` caps
the output tokens; greedy by default, ``--beam N`` for beam search, and ``--temperature`` /
``--top-k`` / ``--top-p`` to sample instead. ``--prompt`` belongs to the language models.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from engine.base.errors import WiregradError
from engine.sample.seq2seq import load_model
from engine.sample.seq2seq_search import beam_search, sample, to_text, translate


def is_seq2seq(doc: dict) -> bool:
    """True when *doc* reads sequence pairs (an encoder–decoder graph)."""
    return any(n.get("type") == "sequence_pairs" for n in doc.get("nodes", []))


def _inputs(args: argparse.Namespace) -> list[str]:
    if args.input is not None and args.input_file is not None:
        raise WiregradError("give --input or --input-file, not both", field="--input")
    if args.input is not None:
        return [args.input]
    if args.input_file is None:
        raise WiregradError("a sequence-to-sequence graph decodes an input: pass --input TEXT "
                            "or --input-file FILE", field="--input")
    path = Path(args.input_file).expanduser()
    try:
        text = path.read_text(encoding="utf-8-sig")  # a leading BOM is no character
    except FileNotFoundError:
        raise WiregradError(f"no such file: {path}", field="--input-file") from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[:exc.start].count(b"\n") + 1
        raise WiregradError(f"{path.name}, line {line}: not UTF-8 text",
                            field="--input-file") from None
    lines = text.splitlines()
    if not any(lines):
        raise WiregradError(f"{path.name} has no input lines", field="--input-file")
    return lines


def sample_seq2seq(doc: dict, weights: dict, args: argparse.Namespace) -> int:
    """Decode every input of *args* with the graph *doc* and print one output per line."""
    if args.prompt is not None:
        raise WiregradError("--prompt continues a language model's text; a "
                            "sequence-to-sequence graph translates an input: use --input TEXT "
                            "(or --input-file FILE)", field="--prompt")
    texts = _inputs(args)
    graph = Path(str(args.graph)).expanduser()
    model = load_model(doc, weights, np.float64, graph.parent if graph.is_file() else None)
    if getattr(args, "verbose", False):
        print(f"decoding: {model.decoding}", file=sys.stderr)
    sampling = (args.temperature is not None and args.temperature > 0) or args.top_k or (
        args.top_p < 1.0)
    if sampling and args.beam != 1:
        raise WiregradError("--beam searches for the likeliest output; it does not mix with "
                            "--temperature / --top-k / --top-p sampling", field="--beam")
    rng = np.random.default_rng(args.seed)
    for number, text in enumerate(texts, start=1):
        if not text:
            print()
            continue
        try:
            if sampling:
                out = sample(model, text, rng, args.temperature or 1.0, args.top_k,
                             args.top_p, args.n)
            elif args.beam > 1:
                out = to_text(model, beam_search(model, text, args.beam, args.n)[0].tokens)
            else:
                out = translate(model, [text], 1, args.n)[0]
        except WiregradError as exc:
            if args.input_file is not None:
                raise WiregradError(f"{Path(args.input_file).name}, line {number}: "
                                    f"{exc.message}", field="--input-file") from None
            raise
        print(out)
        sys.stdout.flush()
    return 0
