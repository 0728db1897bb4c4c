"""Document templates: the classic presets as functions, so tools, tests and the editor can
build them at any size (``char_gpt(layers=1, width=16)`` for a fast test model).

``tools/make_presets.py`` writes the shipped ``presets/*.json`` from these.
"""

from __future__ import annotations

from engine.graphs.parts import finish, node

__all__ = ["finish", "node"]  # re-exported: tests and tools build documents with them


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
        node("text", "text_corpus", (0, 0), "Shakespeare", source="shakespeare",
             vocab=SHAKESPEARE_VOCAB, block_size=block, batch_size=batch),
        node("wte", "parameter", (0, 230), "Token embedding table", shape=[vocab, width],
             init="normal", std=0.02),
        node("tok_emb", "embedding", (260, 0), "Token embedding"),
        node("pos_emb", "PositionalEmbedding", (500, 0), "Position embedding",
             block_size=block, embedding_dim=width, init_std=0.02),
    ]
    edges = [("text:tokens", "tok_emb:ids"), ("wte:out", "tok_emb:weight"),
             ("tok_emb:out", "pos_emb:x")]
    previous = "pos_emb:y"
    for i in range(1, layers + 1):
        # Two rows that both read left to right: half the blocks on each.
        row, col = divmod(i - 1, (layers + 1) // 2)
        pos = (740 + 240 * col, 0) if row == 0 else (260 + 240 * col, 420)
        nodes.append(node(f"block{i}", "TransformerBlock", pos,
                          embed_dim=width, num_heads=heads, mlp_ratio=4, dropout=0.0,
                          bias=False, init="normal", init_std=0.02, proj_init_std=proj_std))
        edges.append((previous, f"block{i}:x"))
        previous = f"block{i}:y"
    x = 260 + 240 * (layers - (layers + 1) // 2)
    nodes += [
        node("ln_f", "LayerNorm", (x, 420), "Final LayerNorm", normalized_shape=width,
             bias=False),
        node("head", "matmul", (x + 240, 420), "Tied head (× token embeddingᵀ)",
             transpose_b=True),
        node("loss", "cross_entropy", (x + 480, 420)),
        node("optimizer", "optimizer", (x + 720, 420), algorithm="adamw", lr=1e-3, beta1=0.9,
             beta2=0.99, weight_decay=0.1, decay_set="all_2d", schedule="cosine", warmup=100,
             min_lr=1e-4, clip_norm=1.0),
        node("perplexity", "perplexity", (x + 720, 620)),
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


def sine_regression(steps: int = 1500) -> dict:
    nodes = [
        node("sine", "regression_1d", (0, 80), "Noisy sine", n_samples=1000, noise=0.05,
             batch_size=64, val_fraction=0.2),
        node("mlp", "MLP", (300, 0), in_features=1, hidden_features=64, out_features=1,
             activation="tanh"),
        node("loss", "mse", (600, 60)),
        node("optimizer", "optimizer", (860, 60), algorithm="adam", lr=0.01,
             schedule="cosine", min_lr=0.0005),
        node("mean_squared_error", "mean_squared_error", (600, 240), "Validation MSE"),
    ]
    edges = [("sine:x", "mlp:x"), ("mlp:y", "loss:pred"), ("sine:y", "loss:target"),
             ("loss:loss", "optimizer:loss"), ("mlp:y", "mean_squared_error:pred"),
             ("sine:y", "mean_squared_error:target")]
    return finish(
        "Sine regression",
        "Fits y = sin(x) + noise on [−3, 3] with a small perceptron: MLP(1→64→1, tanh) → "
        "mean squared error, trained with Adam on a cosine schedule. The noise (σ = 0.05) "
        "sets the floor of the validation MSE at about 0.0025.",
        nodes, edges,
        {"steps": steps, "eval_every": 250, "eval_batches": 0, "checkpoint_every": 0,
         "seed": 0, "dtype": "float32"})


def _cnn(source: dict, channels: tuple[int, int], size: int, classes: int) -> tuple:
    """Two Conv2d → BatchNorm2d → ReLU → MaxPool2d stages, Flatten, Linear; edges from
    ``source`` (a data node with ``images`` and ``labels`` outputs)."""
    c1, c2 = channels
    sid = source["id"]
    nodes = [source]
    edges = []
    previous, cin, x = f"{sid}:images", 1, 300
    for i, cout in enumerate(channels, 1):
        nodes += [
            node(f"conv{i}", "Conv2d", (x, 0), in_channels=cin, out_channels=cout,
                 kernel_size=3, padding=1),
            node(f"bn{i}", "BatchNorm2d", (x + 240, 0), num_features=cout),
            node(f"act{i}", "relu", (x + 480, 0)),
            node(f"pool{i}", "MaxPool2d", (x + 680, 0), kernel_size=2, stride=2),
        ]
        edges += [(previous, f"conv{i}:x"), (f"conv{i}:y", f"bn{i}:x"),
                  (f"bn{i}:y", f"act{i}:x"), (f"act{i}:out", f"pool{i}:x")]
        previous, cin, x = f"pool{i}:y", cout, x + 920
    flat = c2 * (size // 4) ** 2
    nodes += [
        node("flatten", "Flatten", (x, 0)),
        node("fc", "Linear", (x + 220, 0), in_features=flat, out_features=classes),
        node("loss", "cross_entropy", (x + 500, 60)),
        node("accuracy", "accuracy", (x + 500, 240)),
    ]
    edges += [(previous, "flatten:x"), ("flatten:y", "fc:x"), ("fc:y", "loss:logits"),
              (f"{sid}:labels", "loss:labels"), ("fc:y", "accuracy:logits"),
              (f"{sid}:labels", "accuracy:labels")]
    return nodes, edges, x + 760


def shapes_cnn(steps: int = 800) -> dict:
    source = node("shapes", "shapes_images", (0, 80), "Generated shapes", classes=4, size=16,
                  n_samples=2000, batch_size=32, val_fraction=0.2)
    nodes, edges, x = _cnn(source, (8, 16), 16, 4)
    nodes.append(node("optimizer", "optimizer", (x, 60), algorithm="adam", lr=0.003,
                      schedule="cosine", min_lr=0.0003))
    edges.append(("loss:loss", "optimizer:loss"))
    return finish(
        "Shapes CNN",
        "Tells generated 16×16 images of circles, squares, triangles and crosses apart "
        "(rotated, scaled, shifted, noisy): two Conv2d(3×3) → BatchNorm2d → ReLU → "
        "MaxPool2d stages (8 and 16 channels), Flatten, Linear(256→4) → cross-entropy, "
        "trained with Adam.",
        nodes, edges,
        {"steps": steps, "eval_every": 100, "eval_batches": 0, "checkpoint_every": 0,
         "seed": 0, "dtype": "float32"})


def digits_cnn(steps: int = 1500) -> dict:
    source = node("digits", "digits", (0, 80), "Handwritten digits (8×8)", batch_size=32,
                  val_fraction=0.2)
    nodes, edges, x = _cnn(source, (16, 32), 8, 10)
    nodes.append(node("optimizer", "optimizer", (x, 60), algorithm="adamw", lr=0.003,
                      weight_decay=0.01, schedule="cosine", min_lr=0.0001))
    edges.append(("loss:loss", "optimizer:loss"))
    return finish(
        "Digits CNN",
        "Reads scikit-learn's bundled 8×8 handwritten digits (1,797 images, 20 % held out "
        "for validation): two Conv2d(3×3) → BatchNorm2d → ReLU → MaxPool2d stages (16 and "
        "32 channels), Flatten, Linear(128→10) → cross-entropy, trained with AdamW. Needs "
        'the datasets extra: pip install "wiregrad[datasets]".',
        nodes, edges,
        {"steps": steps, "eval_every": 250, "eval_batches": 0, "checkpoint_every": 0,
         "seed": 0, "dtype": "float32"})


def seq2seq_dates(**sizes) -> dict:
    """The encoder–decoder dates preset (:mod:`engine.graphs.seq2seq_builder`)."""
    from engine.graphs.seq2seq_builder import seq2seq_dates as build

    return build(**sizes)


def char_lstm(layers: int = 2, width: int = 64, hidden: int = 192, block: int = 64,
              batch: int = 16, steps: int = 3000) -> dict:
    """Shakespeare one character at a time through a stacked LSTM (the recurrent counterpart
    of ``char_gpt``; sampled with the LSTM's state, unbounded context)."""
    from engine.ops.text_data import SHAKESPEARE_VOCAB

    vocab = len(SHAKESPEARE_VOCAB)
    nodes = [
        node("text", "text_corpus", (0, 0), "Shakespeare", source="shakespeare",
             vocab=SHAKESPEARE_VOCAB, block_size=block, batch_size=batch),
        node("tok_emb", "Embedding", (260, 0), "Token embedding", num_embeddings=vocab,
             embedding_dim=width),
        node("lstm", "LSTM", (520, 0), f"{layers}-layer LSTM", input_size=width,
             hidden_size=hidden, num_layers=layers),
        node("head", "Linear", (780, 0), "Next-character logits", in_features=hidden,
             out_features=vocab),
        node("loss", "cross_entropy", (1040, 0)),
        node("optimizer", "optimizer", (1300, 0), algorithm="adamw", lr=3e-3, beta1=0.9,
             beta2=0.99, weight_decay=0.01, decay_set="all_2d", schedule="cosine", warmup=100,
             min_lr=3e-4, clip_norm=1.0),
        node("perplexity", "perplexity", (1300, 200)),
    ]
    edges = [("text:tokens", "tok_emb:ids"), ("tok_emb:y", "lstm:x"), ("lstm:y", "head:x"),
             ("head:y", "loss:logits"), ("text:targets", "loss:labels"),
             ("loss:loss", "optimizer:loss"), ("loss:loss", "perplexity:loss")]
    return finish(
        "Character-level LSTM",
        f"Shakespeare's plays one character at a time through a recurrent network: token "
        f"embedding ({width}) → {layers}-layer LSTM ({hidden} hidden units; i, f, g, o gates as "
        f"in torch.nn.LSTM, the time loop in one fused op per layer) → Linear head → "
        f"cross-entropy on the next character. Trained on windows of {block} characters; "
        f"sampling carries the LSTM's state, so the context is unbounded.",
        nodes, edges,
        {"steps": steps, "eval_every": 250, "eval_batches": 20, "checkpoint_every": 1000,
         "seed": 1337, "dtype": "float32"})


TEMPLATES = {"spiral_mlp": spiral_mlp, "sine_regression": sine_regression,
             "shapes_cnn": shapes_cnn, "digits_cnn": digits_cnn, "char_gpt": char_gpt,
             "seq2seq_dates": seq2seq_dates}
TEMPLATES["char_lstm"] = char_lstm
