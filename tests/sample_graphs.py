"""Hand-written language models unlike any preset, for the sampler's tests."""

from __future__ import annotations

from engine.graphs.builders import finish, node

VOCAB = "\n abcdefghijklmnopqrstuvwxyz.,"
TRAINING = {"steps": 10, "eval_every": 0, "eval_batches": 1, "checkpoint_every": 0, "seed": 0,
            "dtype": "float64"}


def _text(block: int) -> dict:
    return node("text", "text_corpus", (0, 0), vocab=VOCAB, block_size=block, batch_size=2)


def _tail(logits: str) -> tuple[list, list]:
    nodes = [node("loss", "cross_entropy", (900, 0)),
             node("optimizer", "optimizer", (1100, 0), algorithm="adam", lr=1e-3)]
    edges = [(logits, "loss:logits"), ("text:targets", "loss:labels"),
             ("loss:loss", "optimizer:loss")]
    return nodes, edges


def unrolled_elman(length: int = 6, emb: int = 8, hidden: int = 12) -> dict:
    """An Elman char-RNN unrolled by hand over exactly *length* positions in plain ops:
    h_t = tanh(x_t Wx + h_{t-1} Wh + b), logits_t = h_t Wo, concatenated along time."""
    v = len(VOCAB)
    nodes = [_text(length),
             node("wte", "parameter", (0, 200), shape=[v, emb], init="normal", std=0.5),
             node("wx", "parameter", (0, 300), shape=[emb, hidden], init="normal", std=0.5),
             node("wh", "parameter", (0, 400), shape=[hidden, hidden], init="normal", std=0.3),
             node("b", "parameter", (0, 500), shape=[hidden], init="normal", std=0.1),
             node("wo", "parameter", (0, 600), shape=[hidden, v], init="normal", std=0.5),
             node("emb", "embedding", (200, 0)),
             node("cat", "concat", (700, 0), axis=1)]
    edges = [("text:tokens", "emb:ids"), ("wte:out", "emb:weight")]
    h = None
    for t in range(length):
        nodes += [node(f"x{t}", "index", (300, 100 * t), axis=1, index=t),
                  node(f"in{t}", "matmul", (400, 100 * t)),
                  node(f"bias{t}", "add", (450, 100 * t)),
                  node(f"h{t}", "tanh", (500, 100 * t)),
                  node(f"o{t}", "matmul", (600, 100 * t)),
                  node(f"r{t}", "reshape", (650, 100 * t), shape=["B", 1, v])]
        edges += [("emb:out", f"x{t}:x"), (f"x{t}:out", f"in{t}:a"), ("wx:out", f"in{t}:b"),
                  ("b:out", f"bias{t}:b"), (f"bias{t}:out", f"h{t}:x"),
                  (f"h{t}:out", f"o{t}:a"), ("wo:out", f"o{t}:b"),
                  (f"o{t}:out", f"r{t}:x"), (f"r{t}:out", f"cat:inputs[{t}]")]
        if h is None:
            edges.append((f"in{t}:out", f"bias{t}:a"))
        else:
            nodes += [node(f"rec{t}", "matmul", (420, 100 * t)),
                      node(f"sum{t}", "add", (430, 100 * t))]
            edges += [(h, f"rec{t}:a"), ("wh:out", f"rec{t}:b"), (f"in{t}:out", f"sum{t}:a"),
                      (f"rec{t}:out", f"sum{t}:b"), (f"sum{t}:out", f"bias{t}:a")]
        h = f"h{t}:out"
    nodes.append(node("logits", "reshape", (800, 0), shape=["B", length, v]))
    edges.append(("cat:out", "logits:x"))
    tail_nodes, tail_edges = _tail("logits:out")
    return finish("Unrolled Elman RNN", "hand-unrolled", nodes + tail_nodes,
                  edges + tail_edges, TRAINING)


def biased_gpt(block: int = 12, width: int = 16, heads: int = 2) -> dict:
    """A GPT with biases everywhere, learned positions and an untied Linear head."""
    v = len(VOCAB)
    nodes = [_text(block),
             node("tok", "Embedding", (200, 0), num_embeddings=v, embedding_dim=width),
             node("pos", "PositionalEmbedding", (300, 0), block_size=block,
                  embedding_dim=width, init_std=0.5),
             node("blk1", "TransformerBlock", (400, 0), embed_dim=width, num_heads=heads,
                  mlp_ratio=2, dropout=0.0, bias=True),
             node("blk2", "TransformerBlock", (500, 0), embed_dim=width, num_heads=heads,
                  mlp_ratio=2, dropout=0.0, bias=True),
             node("ln", "LayerNorm", (600, 0), normalized_shape=width, bias=True),
             node("head", "Linear", (700, 0), in_features=width, out_features=v, bias=True)]
    edges = [("text:tokens", "tok:ids"), ("tok:y", "pos:x"), ("pos:y", "blk1:x"),
             ("blk1:y", "blk2:x"), ("blk2:y", "ln:x"), ("ln:y", "head:x")]
    tail_nodes, tail_edges = _tail("head:y")
    return finish("Biased GPT", "biases, untied head", nodes + tail_nodes, edges + tail_edges,
                  TRAINING)


def char_lstm(block: int = 10, width: int = 12, hidden: int = 16, layers: int = 2) -> dict:
    """Embedding → stacked LSTM → Linear head: decoded with the recurrent state."""
    v = len(VOCAB)
    nodes = [_text(block),
             node("tok", "Embedding", (200, 0), num_embeddings=v, embedding_dim=width),
             node("lstm", "LSTM", (400, 0), input_size=width, hidden_size=hidden,
                  num_layers=layers),
             node("head", "Linear", (600, 0), in_features=hidden, out_features=v)]
    edges = [("text:tokens", "tok:ids"), ("tok:y", "lstm:x"), ("lstm:y", "head:x")]
    tail_nodes, tail_edges = _tail("head:y")
    return finish("Char LSTM", "embedding, LSTM, head", nodes + tail_nodes, edges + tail_edges,
                  TRAINING)
