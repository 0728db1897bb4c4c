"""Regenerate the classic preset documents in presets/ (run: python tools/make_presets.py).

Presets are data; this script is how we author them reproducibly. It writes canonical JSON
(engine.document.dumps) with the layer definitions embedded.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine import api, document  # noqa: E402
from engine.layers.builtin import edge  # noqa: E402


def node(node_id, type_name, pos, title=None, **params):
    ui = {"pos": list(pos)}
    if title:
        ui["title"] = title
    return {"id": node_id, "type": type_name, "params": params, "ui": ui}


def finish(name, description, nodes, edges, training) -> dict:
    doc = document.new_document(name, description)
    doc["nodes"], doc["edges"], doc["training"] = nodes, [edge(*e) for e in edges], training
    doc = api.embed_layer_definitions(doc)
    return document.loads(document.dumps(doc))


def spiral_mlp() -> dict:
    nodes = [
        node("spirals", "classification_2d", (0, 80), "Three spirals", kind="spirals",
             classes=3, n_samples=1500, batch_size=64),
        node("fc1", "Linear", (300, 0), in_features=2, out_features=64),
        node("act1", "relu", (560, 0)),
        node("fc2", "Linear", (780, 0), in_features=64, out_features=3),
        node("loss", "cross_entropy", (1060, 60)),
        node("optimizer", "optimizer", (1320, 60), algorithm="adam", lr=0.01),
        node("accuracy", "accuracy", (1060, 240)),
    ]
    edges = [("spirals:points", "fc1:x"), ("fc1:y", "act1:x"), ("act1:out", "fc2:x"),
             ("fc2:y", "loss:logits"), ("spirals:labels", "loss:labels"),
             ("loss:loss", "optimizer:loss"), ("fc2:y", "accuracy:logits"),
             ("spirals:labels", "accuracy:labels")]
    return finish(
        "Spiral MLP",
        "Classifies points of three interleaved spirals with a two-layer perceptron: "
        "Linear(2→64) → ReLU → Linear(64→3) → cross-entropy, trained with Adam.",
        nodes, edges,
        {"steps": 2000, "eval_every": 200, "eval_batches": 0, "checkpoint_every": 0,
         "seed": 0, "dtype": "float32"})


PRESETS = {"spiral_mlp": spiral_mlp}


def main(names: list[str]) -> None:
    for name in names or list(PRESETS):
        doc = PRESETS[name]()
        path = ROOT / "presets" / f"{name}.json"
        document.save(doc, path)
        print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
