"""The encoder–decoder preset template: ``seq2seq_dates`` (human dates → ISO dates).

Source characters → embedding + positions → encoder blocks (bidirectional self-attention over
the source, padding hidden) → LayerNorm = the *memory*; target characters (begin token first)
→ embedding + positions → decoder blocks (causal self-attention, cross-attention over the
memory) → LayerNorm → Linear head → cross-entropy against the target shifted by one.
"""

from __future__ import annotations

from engine.graphs.parts import finish, node
from engine.ops.seq2seq import DATES_VOCAB, classes


def _encoder(layers: int, width: int, heads: int, s: int, v: int) -> tuple[list, list]:
    nodes = [
        node("src_emb", "Embedding", (260, 0), "Source embedding", num_embeddings=v,
             embedding_dim=width, init_std=0.1),
        node("src_pos", "PositionalEmbedding", (500, 0), "Source positions", block_size=s,
             embedding_dim=width, init_std=0.1),
    ]
    edges = [("pairs:source", "src_emb:ids"), ("src_emb:y", "src_pos:x")]
    prev = "src_pos:y"
    for i in range(1, layers + 1):
        nodes.append(node(f"enc{i}", "TransformerEncoderBlock", (500 + 240 * i, 0),
                          f"Encoder {i}", embed_dim=width, num_heads=heads, mlp_ratio=4))
        edges += [(prev, f"enc{i}:x"), ("pairs:source_mask", f"enc{i}:key_mask")]
        prev = f"enc{i}:y"
    nodes.append(node("enc_ln", "LayerNorm", (740 + 240 * layers, 0), "Memory LayerNorm",
                      normalized_shape=width))
    edges.append((prev, "enc_ln:x"))
    return nodes, edges


def _decoder(layers: int, width: int, heads: int, t: int, v: int) -> tuple[list, list, str]:
    nodes = [
        node("tgt_emb", "Embedding", (260, 380), "Target embedding", num_embeddings=v,
             embedding_dim=width, init_std=0.1),
        node("tgt_pos", "PositionalEmbedding", (500, 380), "Target positions", block_size=t,
             embedding_dim=width, init_std=0.1),
    ]
    edges = [("pairs:target_in", "tgt_emb:ids"), ("tgt_emb:y", "tgt_pos:x")]
    prev = "tgt_pos:y"
    for i in range(1, layers + 1):
        nodes.append(node(f"dec{i}", "TransformerDecoderBlock", (500 + 240 * i, 380),
                          f"Decoder {i}", embed_dim=width, num_heads=heads, mlp_ratio=4))
        edges += [(prev, f"dec{i}:x"), ("enc_ln:y", f"dec{i}:memory"),
                  ("pairs:source_mask", f"dec{i}:memory_mask")]
        prev = f"dec{i}:y"
    return nodes, edges, prev


def seq2seq_dates(layers: int = 2, width: int = 32, heads: int = 4, batch: int = 32,
                  steps: int = 3000, n_train: int = 50_000, lr: float = 3e-3) -> dict:
    """The dates translator: *layers* encoder + *layers* decoder blocks of *width*."""
    s, t, v = 34, 11, classes(DATES_VOCAB)
    nodes = [node("pairs", "sequence_pairs", (0, 180), "Dates → ISO", source="dates",
                  vocab=DATES_VOCAB, max_source_len=s, max_target_len=t - 1,
                  batch_size=batch, n_train=n_train, n_val=1000)]
    enc_nodes, enc_edges = _encoder(layers, width, heads, s, v)
    dec_nodes, dec_edges, last = _decoder(layers, width, heads, t, v)
    x = 740 + 240 * layers
    nodes += enc_nodes + dec_nodes + [
        node("dec_ln", "LayerNorm", (x, 380), "Final LayerNorm", normalized_shape=width),
        node("head", "Linear", (x + 240, 380), "Head", in_features=width, out_features=v),
        node("loss", "cross_entropy", (x + 480, 380)),
        node("optimizer", "optimizer", (x + 720, 380), algorithm="adamw", lr=lr, beta1=0.9,
             beta2=0.98, weight_decay=0.01, schedule="cosine", warmup=100, min_lr=lr / 20,
             clip_norm=1.0),
        node("token_accuracy", "token_accuracy", (x + 480, 580), "Token accuracy"),
    ]
    edges = enc_edges + dec_edges + [
        (last, "dec_ln:x"), ("dec_ln:y", "head:x"), ("head:y", "loss:logits"),
        ("pairs:target_out", "loss:labels"), ("loss:loss", "optimizer:loss"),
        ("head:y", "token_accuracy:logits"), ("pairs:target_out", "token_accuracy:labels"),
    ]
    return finish(
        "Seq2seq dates",
        f"An encoder–decoder transformer that reads a date written by a person (\"3rd of "
        f"March, 1987\", \"03/03/87\", \"march 3 1987\" …) and writes it as ISO 1987-03-03: "
        f"{layers} encoder blocks (self-attention over the source, padding hidden) and "
        f"{layers} decoder blocks (causal self-attention + cross-attention to the encoder), "
        f"{width} wide, {heads} heads. Validation dates are never seen in training. "
        f"Sample with `wiregrad sample seq2seq_dates --input \"3rd of March, 1987\"`.",
        nodes, edges,
        {"steps": steps, "eval_every": 250, "eval_batches": 8, "checkpoint_every": 500,
         "seed": 7, "dtype": "float32"})
