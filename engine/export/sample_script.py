"""``sample.py`` and ``tokenizer.json`` of a PyTorch project export (text models).

Every project of a graph with a text data node gets the tokenizer as ``tokenizer.json`` (a
Hugging Face ``tokenizers`` JSON, :mod:`engine.export.tokenizer_file`). A language model's
project (a ``text_corpus`` node whose tokens are the model's only input) also gets
``sample.py``: it loads ``model.py``, the weights (the exported ones, or a checkpoint of
``train.py``) and the tokenizer, and continues a prompt token by token the way
``wiregrad sample`` does — the same distribution (temperature, top-k, top-p in float64) and the
same draw from the same seeded numpy stream, recomputing the last ``block_size`` tokens for
each new one. While prompt and continuation fit in one block, its text equals
``wiregrad sample``'s for the same arguments (up to float32 rounding of near ties).
"""

from __future__ import annotations

import pprint
from pathlib import Path

from engine.core.inference import Model

SCRIPT = r'''
import argparse
import os
import sys

import numpy as np
import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from model import Model  # noqa: E402


def load_model(weights: str) -> Model:
    """model.py's Model with *weights* (weights.safetensors or a train.py checkpoint)."""
    model = Model()
    state = load_file(weights)
    model.load_state_dict({k: v for k, v in state.items() if k in model.state_dict()})
    return model.eval()


def distribution(logits: np.ndarray, temperature: float, top_k: int, top_p: float):
    """Softmax of logits / temperature within the top-k and the top-p nucleus (float64)."""
    logits = np.asarray(logits, dtype=np.float64)
    if temperature == 0:
        out = np.zeros_like(logits)
        out[int(np.argmax(logits))] = 1.0
        return out
    z = logits / temperature
    keep = np.ones(z.shape, dtype=bool)
    if top_k and top_k < len(z):
        keep &= z >= np.partition(z, -top_k)[-top_k]
    z = np.where(keep, z, -np.inf)
    probs = np.exp(z - z.max())
    probs /= probs.sum()
    if top_p < 1.0:
        order = np.argsort(-probs, kind="stable")
        cut = int(np.searchsorted(np.cumsum(probs[order]), top_p)) + 1
        nucleus = np.zeros_like(keep)
        nucleus[order[:cut]] = True
        probs = np.where(nucleus, probs, 0.0)
        probs /= probs.sum()
    return probs


def draw(probs: np.ndarray, rng) -> int:
    cdf = np.cumsum(probs)
    cdf /= cdf[-1]
    return int(cdf.searchsorted(rng.random(), side="right"))


def generate(model, ids: list, n: int, temperature: float, top_k: int, top_p: float,
             seed: int):
    """Yield *n* token ids continuing *ids*."""
    rng = np.random.default_rng(seed)
    ids = list(ids)
    for _ in range(n):
        window = torch.tensor([ids[-CONFIG["block_size"]:]], dtype=torch.int64)  # (1, T)
        with torch.no_grad():
            out = model(window)
        logits = out[CONFIG["logits_index"]] if isinstance(out, (tuple, list)) else out
        probs = distribution(logits[0, -1].double().numpy(), temperature, top_k, top_p)
        token = int(np.argmax(probs)) if temperature == 0 else draw(probs, rng)
        ids.append(token)
        yield token


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=f"Generate text with {CONFIG['name']}.")
    parser.add_argument("--prompt", default="\n", help="text to continue (default: a new line)")
    parser.add_argument("-n", type=int, default=200, help="tokens to generate")
    parser.add_argument("--temperature", type=float, default=0.8, help="0 picks the likeliest")
    parser.add_argument("--top-k", type=int, default=0, help="keep only the k likeliest (0: all)")
    parser.add_argument("--top-p", type=float, default=1.0, help="nucleus probability")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--weights", default=os.path.join(HERE, "weights.safetensors"),
                        help="weights.safetensors or a train.py checkpoint")
    parser.add_argument("--no-echo", action="store_true", help="print only the continuation")
    args = parser.parse_args(argv)
    if args.temperature < 0 or not 0 < args.top_p <= 1 or args.top_k < 0 or args.n < 1:
        parser.error("temperature >= 0, 0 < top-p <= 1, top-k >= 0 and n >= 1 are required")
    tokenizer = Tokenizer.from_file(os.path.join(HERE, CONFIG["tokenizer"]))
    prompt = args.prompt or "\n"
    unknown = sorted(set(prompt) - set(tokenizer.get_vocab())) if CONFIG["kind"] == "char" else []
    if unknown:  # a character model meets characters outside its vocabulary
        parser.error(f"the prompt cannot be encoded by this char tokenizer: characters "
                     f"{''.join(unknown)!r} are not in the model's vocabulary")
    try:
        ids = tokenizer.encode(prompt).ids
    except Exception as exc:
        parser.error(f"the prompt cannot be encoded by this {CONFIG['kind']} tokenizer: {exc}")
    model = load_model(args.weights)
    if not args.no_echo:
        sys.stdout.write(prompt)
    made, shown = [], 0
    for token in generate(model, ids, args.n, args.temperature, args.top_k, args.top_p,
                          args.seed):
        made.append(token)
        text = tokenizer.decode(made)
        if not text.endswith("\ufffd"):  # a character split over tokens waits for the rest
            sys.stdout.write(text[shown:])
            sys.stdout.flush()
            shown = len(text)
    sys.stdout.write(tokenizer.decode(made)[shown:] + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''


def sample_config(doc: dict, model: Model, tokenizer_kind: str) -> dict | None:
    """sample.py's CONFIG, or None when the model is not a language model over one
    ``text_corpus`` token input whose logits the loss reads."""
    if model.loss is None or len(model.inputs) != 1:
        return None
    port = model.inputs[0]
    node = next((n for n in doc.get("nodes", []) if n.get("id") == port.node), None)
    logits = model.loss.inputs[0]
    values = [p.value for p in model.outputs]
    if node is None or node.get("type") != "text_corpus" or logits not in values:
        return None
    return {"name": doc.get("meta", {}).get("name", "") or "the model",
            "block_size": int(node["params"]["block_size"]),
            "logits_index": values.index(logits), "tokenizer": "tokenizer.json",
            "kind": tokenizer_kind}


def sample_source(config: dict) -> str:
    """The text of ``sample.py`` for *config*."""
    from engine.export.torch_codegen import doc_text

    head = (f'"""Generate text with \\"{doc_text(config["name"])}\\" (exported from Wiregrad).'
            "\n\n"
            "    python sample.py --prompt \\\"ROMEO:\\\" [-n 200] [--temperature 0.8] "
            "[--top-k K] [--top-p P]\n"
            "                     [--seed S] [--weights out/ckpt.safetensors] [--no-echo]\n"
            "\n"
            "Needs torch, numpy, safetensors and tokenizers (not Wiregrad). The tokenizer is\n"
            "tokenizer.json; the weights weights.safetensors or a checkpoint of train.py.\n"
            "Greedy (--temperature 0) or seeded, it continues the prompt as `wiregrad sample`\n"
            "does while prompt and continuation fit in one block.\n"
            '"""\n')
    body = SCRIPT.replace("from model import Model  # noqa: E402\n",
                          "from model import Model  # noqa: E402\n\n"
                          "CONFIG = " + pprint.pformat(config, width=96, sort_dicts=False)
                          + "\n", 1)
    return head + body


def write_text_files(doc: dict, model: Model, out: Path,
                     base_dir: str | Path | None) -> list[Path]:
    """``tokenizer.json`` (any text graph) and ``sample.py`` (a language model) in *out*."""
    from engine.base.io import atomic_write_text
    from engine.export.tokenizer_file import exported_tokenizer, write_tokenizer

    tok = exported_tokenizer(doc, Path(base_dir) if base_dir else None)
    if tok is None:
        return []
    files = [write_tokenizer(out / "tokenizer.json", tok)]
    config = sample_config(doc, model, tok.kind)
    if config is not None:
        atomic_write_text(out / "sample.py", sample_source(config))
        files.append(out / "sample.py")
    return files
