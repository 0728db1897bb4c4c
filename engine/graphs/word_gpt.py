"""The word-level GPT preset: the character GPT's transformer over byte-level BPE tokens.

``python tools/make_word_gpt.py`` writes ``presets/word_gpt.json`` with its tokenizer trained on
the Shakespeare training split and stored in the document (docs/word_gpt.md has the training
command and the results). This stage may not import ``engine.data``, so the tokenizer is given.
"""

from __future__ import annotations

from engine.core import document
from engine.graphs.builders import char_gpt

DESCRIPTION = (
    "A small decoder-only transformer trained on Shakespeare's plays one word piece at a time: "
    "a byte-level BPE tokenizer of {vocab} tokens (trained on the training split, stored in the "
    "document) → token + learned position embeddings → {layers} × TransformerBlock (pre-norm, "
    "causal {heads}-head self-attention, GELU MLP, no biases) → LayerNorm → a head tied to the "
    "token embedding. Ships with trained weights: sample right away, or explore what its "
    "embeddings learned (wiregrad embeddings word_gpt --neighbours king).")


def word_gpt(layers: int = 4, heads: int = 4, width: int = 128, block: int = 64,
             batch: int = 12, steps: int = 2000, vocab_size: int = 2048,
             tokenizer_data: str = "") -> dict:
    """The word GPT document; *tokenizer_data* empty = trained from the corpus when built."""
    doc = char_gpt(layers=layers, heads=heads, width=width, block=block, batch=batch,
                   steps=steps)
    nodes = {n["id"]: n for n in doc["nodes"]}
    text = nodes["text"]
    text["params"].update(tokenizer="bpe", vocab_size=vocab_size,
                          tokenizer_data=tokenizer_data)
    text["ui"]["title"] = "Shakespeare (BPE tokens)"
    nodes["wte"]["params"]["shape"] = [vocab_size, width]
    doc["meta"] = {"name": "Word-level GPT",
                   "description": DESCRIPTION.format(vocab=vocab_size, layers=layers,
                                                     heads=heads)}
    return document.loads(document.dumps(doc))
