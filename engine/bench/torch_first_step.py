"""Bench probe: process start → PyTorch's first finished training step (the twin of
:mod:`engine.bench.first_step`), for the char-GPT or the spiral MLP.

``python -m engine.bench.torch_first_step START THREADS [PRESET]`` (PRESET: ``char_gpt``, the
default, or ``spiral_mlp``) prints one JSON line ``{"s": seconds}``.
"""

from __future__ import annotations

import json
import sys
import time


def _gpt_step(torch) -> None:
    from engine.bench.gpt_twin import build_twin
    from engine.core.compile import compile_document
    from engine.core.run import init_weights
    from engine.data.datasets import batcher_for, load_dataset
    from engine.graphs import presets

    doc, path = presets.load("char_gpt")
    program = compile_document(doc)
    model = build_twin(doc, init_weights(program.parameters, 0, "float32"))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    text = next(n for n in doc["nodes"] if n["type"] == "text_corpus")
    batch = batcher_for(load_dataset("text_corpus", text["params"], path.parent, text["id"]),
                        text["params"]["batch_size"], 0).next()
    logits = model(torch.from_numpy(batch["tokens"]))  # (B, T, V)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                             torch.from_numpy(batch["targets"]).reshape(-1))
    loss.backward()
    opt.step()


def _mlp_step(torch) -> None:
    from engine.bench.twins import mlp_twin
    from engine.core.compile import compile_document
    from engine.core.run import init_weights
    from engine.data.datasets import batcher_for, load_dataset
    from engine.graphs import presets

    doc, path = presets.load("spiral_mlp")
    program = compile_document(doc)
    model = mlp_twin(init_weights(program.parameters, 0, "float32"))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    data = next(n for n in doc["nodes"] if n["type"] == "classification_2d")
    batch = batcher_for(load_dataset("classification_2d", data["params"], path.parent,
                                     data["id"]), data["params"]["batch_size"], 0).next()
    x, y = torch.from_numpy(batch["points"]), torch.from_numpy(batch["labels"])  # (N,2), (N,)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()


def main(argv: list[str]) -> None:
    start, threads = float(argv[1]), int(argv[2])
    preset = argv[3] if len(argv) > 3 else "char_gpt"
    import torch

    torch.set_num_threads(threads)
    {"char_gpt": _gpt_step, "spiral_mlp": _mlp_step}[preset](torch)
    print(json.dumps({"s": time.time() - start}))


if __name__ == "__main__":
    main(sys.argv)
