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


# ------------------------------------------------------------------ graphs unlike the preset


def _embeddings(shared: bool, width: int, v: int) -> tuple[list, list, str, str]:
    """Source and target token embeddings: one table feeding two lookups, or two tables."""
    if shared:
        nodes = [node("table", "parameter", (0, 600), "Shared embedding", shape=[v, width],
                      init="normal", std=0.3),
                 node("src_emb", "embedding", (260, 0), "Source lookup"),
                 node("tgt_emb", "embedding", (260, 380), "Target lookup")]
        edges = [("pairs:source", "src_emb:ids"), ("table:out", "src_emb:weight"),
                 ("pairs:target_in", "tgt_emb:ids"), ("table:out", "tgt_emb:weight")]
        return nodes, edges, "src_emb:out", "tgt_emb:out"
    nodes = [node("src_emb", "Embedding", (260, 0), "Source embedding", num_embeddings=v,
                  embedding_dim=width, init_std=0.3),
             node("tgt_emb", "Embedding", (260, 380), "Target embedding", num_embeddings=v,
                  embedding_dim=width, init_std=0.3)]
    edges = [("pairs:source", "src_emb:ids"), ("pairs:target_in", "tgt_emb:ids")]
    return nodes, edges, "src_emb:y", "tgt_emb:y"


def _shared_positions(width: int, s: int, t: int) -> tuple[list, list]:
    """One position table (max(S, T), C) read by both sides through ``positions`` ops."""
    nodes = [node("pos_table", "parameter", (0, 700), "Shared positions",
                  shape=[max(s, t), width], init="normal", std=0.3)]
    edges = []
    for side, y in (("src", 0), ("tgt", 380)):
        nodes += [node(f"{side}_ids", "positions", (400, y + 60), axis=1, limit=max(s, t)),
                  node(f"{side}_where", "embedding", (460, y + 60)),
                  node(f"{side}_pos", "add", (500, y))]
        edges += [(f"{side}_ids:out", f"{side}_where:ids"),
                  ("pos_table:out", f"{side}_where:weight"),
                  (f"{side}_where:out", f"{side}_pos:b")]
    return nodes, edges


def _decoder_layer(i: int, width: int, heads: int, prev: str, memory: str,
                   self_causal: bool) -> tuple[list, list, str]:
    """A decoder layer wired from parts (no TransformerDecoderBlock): causal self-attention,
    cross-attention over *memory*, a Linear + ReLU feed-forward, post-residual adds."""
    p = f"d{i}_"
    nodes = [
        node(f"{p}self", "MultiHeadAttention", (500 + 240 * i, 380), f"Self-attention {i}",
             embed_dim=width, num_heads=heads, causal=self_causal, key_padding_mask=False),
        node(f"{p}res1", "add", (500 + 240 * i, 440)),
        node(f"{p}ln", "LayerNorm", (500 + 240 * i, 500), normalized_shape=width),
        node(f"{p}cross", "MultiHeadAttention", (500 + 240 * i, 560), f"Cross-attention {i}",
             embed_dim=width, num_heads=heads, causal=False, key_padding_mask=True),
        node(f"{p}res2", "add", (500 + 240 * i, 620)),
        node(f"{p}ff", "Linear", (500 + 240 * i, 680), in_features=width, out_features=width),
        node(f"{p}relu", "relu", (500 + 240 * i, 740)),
        node(f"{p}res3", "add", (500 + 240 * i, 800)),
    ]
    edges = [(prev, f"{p}self:query"), (prev, f"{p}self:key_value"),
             (prev, f"{p}res1:a"), (f"{p}self:y", f"{p}res1:b"),
             (f"{p}res1:out", f"{p}ln:x"), (f"{p}ln:y", f"{p}cross:query"),
             (memory, f"{p}cross:key_value"), ("pairs:source_mask", f"{p}cross:key_mask"),
             (f"{p}res1:out", f"{p}res2:a"), (f"{p}cross:y", f"{p}res2:b"),
             (f"{p}res2:out", f"{p}ff:x"), (f"{p}ff:y", f"{p}relu:x"),
             (f"{p}res2:out", f"{p}res3:a"), (f"{p}relu:out", f"{p}res3:b")]
    return nodes, edges, f"{p}res3:out"


def _gru_decoder(width: int, heads: int, prev: str, memory: str) -> tuple[list, list, str]:
    """The classic attention decoder: a GRU over the target, then attention of its states over
    *memory*, added back (no self-attention at all)."""
    nodes = [node("gru", "GRU", (740, 380), "Decoder GRU", input_size=width, hidden_size=width),
             node("attend", "MultiHeadAttention", (980, 380), "Attention over the source",
                  embed_dim=width, num_heads=heads, causal=False, key_padding_mask=True),
             node("mix", "add", (1220, 380))]
    edges = [(prev, "gru:x"), ("gru:y", "attend:query"), (memory, "attend:key_value"),
             ("pairs:source_mask", "attend:key_mask"), ("gru:y", "mix:a"),
             ("attend:y", "mix:b")]
    return nodes, edges, "mix:out"


def seq2seq_custom(enc_layers: int = 1, dec_layers: int = 3, width: int = 16, heads: int = 2,
                   shared_embedding: bool = False, tied_head: bool = False,
                   final_norm: bool = True, between: str = "none", target_positions: str = "own",
                   decoder: str = "blocks", self_causal: bool = True, vocab: str = DATES_VOCAB,
                   source: str = "dates", path: str = "", max_source_len: int = 34,
                   max_target_len: int = 10, tokenizer: str = "char",
                   vocab_size: int = 512) -> dict:
    """An encoder–decoder as a user might build it from the palette, unlike the preset:
    *enc_layers* / *dec_layers* blocks, one shared or two embedding tables, a head tied to the
    target table (logits = x · tableᵀ) or a Linear, a final norm or none, a ``dropout`` or a
    ``linear`` between the encoder blocks, *target_positions* ``own`` (a PositionalEmbedding
    per side), ``shared`` (one table, both sides, through ``positions`` ops) or ``none``, and
    a decoder of
    TransformerDecoderBlocks, of ``parts`` (attention layers wired by hand; *self_causal*
    False makes its self-attention see later positions, which only full recomputation
    decodes) or a ``gru`` with attention over the source (*dec_layers* unused)."""
    s, t = max_source_len, max_target_len + 1
    v = 3 + (vocab_size if tokenizer == "bpe" else len(vocab))
    nodes = [node("pairs", "sequence_pairs", (0, 180), "Pairs", source=source, path=path,
                  vocab=vocab, max_source_len=s, max_target_len=t - 1, batch_size=8,
                  n_train=200, n_val=20, tokenizer=tokenizer, vocab_size=vocab_size)]
    emb_nodes, edges, src, tgt = _embeddings(shared_embedding or tied_head, width, v)
    nodes += emb_nodes
    if target_positions == "shared":
        pos_nodes, pos_edges = _shared_positions(width, s, t)
        nodes, edges = nodes + pos_nodes, edges + pos_edges
        edges += [(src, "src_ids:x"), (src, "src_pos:a"), (tgt, "tgt_ids:x"), (tgt, "tgt_pos:a")]
        prev, tgt = "src_pos:out", "tgt_pos:out"
    else:
        nodes.append(node("src_pos", "PositionalEmbedding", (500, 0), block_size=s,
                          embedding_dim=width, init_std=0.3))
        edges.append((src, "src_pos:x"))
        prev = "src_pos:y"
    for i in range(1, enc_layers + 1):
        nodes.append(node(f"enc{i}", "TransformerEncoderBlock", (500 + 240 * i, 0),
                          embed_dim=width, num_heads=heads, mlp_ratio=2))
        edges += [(prev, f"enc{i}:x"), ("pairs:source_mask", f"enc{i}:key_mask")]
        prev = f"enc{i}:y"
        if between == "dropout":
            nodes.append(node(f"enc{i}_drop", "Dropout", (620 + 240 * i, 60), p=0.1))
            edges.append((prev, f"enc{i}_drop:x"))
            prev = f"enc{i}_drop:y"
        elif between == "linear":
            nodes.append(node(f"enc{i}_mix", "Linear", (620 + 240 * i, 60),
                              in_features=width, out_features=width))
            edges.append((prev, f"enc{i}_mix:x"))
            prev = f"enc{i}_mix:y"
    memory = prev
    if target_positions == "own":
        nodes.append(node("tgt_pos", "PositionalEmbedding", (500, 380), block_size=t,
                          embedding_dim=width, init_std=0.3))
        edges.append((tgt, "tgt_pos:x"))
        tgt = "tgt_pos:y"
    for i in range(1, dec_layers + 1 if decoder != "gru" else 1):
        if decoder == "blocks":
            nodes.append(node(f"dec{i}", "TransformerDecoderBlock", (500 + 240 * i, 380),
                              embed_dim=width, num_heads=heads, mlp_ratio=2))
            edges += [(tgt, f"dec{i}:x"), (memory, f"dec{i}:memory"),
                      ("pairs:source_mask", f"dec{i}:memory_mask")]
            tgt = f"dec{i}:y"
        else:
            more, wires, tgt = _decoder_layer(i, width, heads, tgt, memory, self_causal)
            nodes, edges = nodes + more, edges + wires
    if decoder == "gru":
        more, wires, tgt = _gru_decoder(width, heads, tgt, memory)
        nodes, edges = nodes + more, edges + wires
    if final_norm:
        nodes.append(node("dec_ln", "LayerNorm", (1400, 380), normalized_shape=width))
        edges.append((tgt, "dec_ln:x"))
        tgt = "dec_ln:y"
    if tied_head:
        nodes.append(node("head", "matmul", (1640, 380), "Tied head", transpose_b=True))
        edges += [(tgt, "head:a"), ("table:out", "head:b")]
        logits = "head:out"
    else:
        nodes.append(node("head", "Linear", (1640, 380), in_features=width, out_features=v))
        edges.append((tgt, "head:x"))
        logits = "head:y"
    nodes += [node("loss", "cross_entropy", (1880, 380)),
              node("optimizer", "optimizer", (2120, 380), algorithm="adamw", lr=3e-3)]
    edges += [(logits, "loss:logits"), ("pairs:target_out", "loss:labels"),
              ("loss:loss", "optimizer:loss")]
    return finish("Seq2seq (custom)", "An encoder–decoder built unlike the preset.", nodes,
                  edges, {"steps": 20, "eval_every": 10, "eval_batches": 1, "seed": 1,
                          "dtype": "float64"})
