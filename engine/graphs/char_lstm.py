"""The char-LSTM preset template: Shakespeare one character at a time through a stacked LSTM
(the recurrent counterpart of ``char_gpt``; sampled with the LSTM's state, unbounded context)."""

from __future__ import annotations

from engine.graphs.builders import finish, node


def char_lstm(layers: int = 2, width: int = 64, hidden: int = 192, block: int = 64,
              batch: int = 16, steps: int = 3000) -> dict:
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
