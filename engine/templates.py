"""Document templates: the classic presets as functions, so tools, tests and the editor can
build them at any size (``char_gpt(layers=1, width=16)`` for a fast test model).

``tools/make_presets.py`` writes the shipped ``presets/*.json`` from these.
"""

from __future__ import annotations

from engine import api, document
from engine.layers.builtin import edge


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


def char_gpt(layers: int = 4, heads: int = 4, width: int = 128, block: int = 64,
             batch: int = 12, steps: int = 5000) -> dict:
    from engine.ops.text_data import SHAKESPEARE_VOCAB

    vocab = len(SHAKESPEARE_VOCAB)
    proj_std = round(0.02 / (2 * layers) ** 0.5, 6)
    nodes = [
        node("text", "text_corpus", (0, 120), "Shakespeare", source="shakespeare",
             vocab=SHAKESPEARE_VOCAB, block_size=block, batch_size=batch),
        node("wte", "parameter", (0, -120), "Token embedding table", shape=[vocab, width],
             init="normal", std=0.02),
        node("tok_emb", "embedding", (300, 0), "Token embedding"),
        node("pos_emb", "PositionalEmbedding", (560, 0), "Position embedding",
             block_size=block, embedding_dim=width, init_std=0.02),
    ]
    edges = [("text:tokens", "tok_emb:ids"), ("wte:out", "tok_emb:weight"),
             ("tok_emb:out", "pos_emb:x")]
    previous = "pos_emb:y"
    for i in range(1, layers + 1):
        nodes.append(node(f"block{i}", "TransformerBlock", (560 + 280 * i, 0),
                          embed_dim=width, num_heads=heads, mlp_ratio=4, dropout=0.0,
                          bias=False, init="normal", init_std=0.02, proj_init_std=proj_std))
        edges.append((previous, f"block{i}:x"))
        previous = f"block{i}:y"
    x = 560 + 280 * (layers + 1)
    nodes += [
        node("ln_f", "LayerNorm", (x, 0), "Final LayerNorm", normalized_shape=width, bias=False),
        node("head", "matmul", (x + 280, 0), "Tied head (× token embeddingᵀ)", transpose_b=True),
        node("loss", "cross_entropy", (x + 560, 60)),
        node("optimizer", "optimizer", (x + 840, 60), algorithm="adamw", lr=1e-3, beta1=0.9,
             beta2=0.99, weight_decay=0.1, decay_set="all_2d", schedule="cosine", warmup=100,
             min_lr=1e-4, clip_norm=1.0),
        node("perplexity", "perplexity", (x + 840, 240)),
    ]
    edges += [(previous, "ln_f:x"), ("ln_f:y", "head:a"), ("wte:out", "head:b"),
              ("head:out", "loss:logits"), ("text:targets", "loss:labels"),
              ("loss:loss", "optimizer:loss"), ("loss:loss", "perplexity:loss")]
    return finish(
        "Character-level GPT",
        f"A small decoder-only transformer trained on Shakespeare's plays, one character at a "
        f"time: token + learned position embeddings → {layers} × TransformerBlock (pre-norm, "
        f"causal {heads}-head self-attention, GELU MLP, no biases) → LayerNorm → a head tied "
        f"to the token embedding. nanoGPT's CPU configuration (≈0.8 M parameters). "
        f"Ships with trained weights: sample right away.",
        nodes, edges,
        {"steps": steps, "eval_every": 250, "eval_batches": 20, "checkpoint_every": 1000,
         "seed": 1337, "dtype": "float32"})


TEMPLATES = {"spiral_mlp": spiral_mlp, "char_gpt": char_gpt}
