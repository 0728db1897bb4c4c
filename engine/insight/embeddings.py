"""What a text model's token embeddings learned: nearest neighbours by cosine similarity.

The table is the ``embedding`` op fed by the text data node's ``tokens`` (for the GPTs, ``wte``,
V × C); tokens are named by the graph's own tokenizer (characters, or BPE pieces such as
``" king"``), so no corpus is read. ``wiregrad embeddings GRAPH --neighbours WORD`` prints them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.base.errors import WiregradError
from engine.core.compile import compile_document
from engine.data.tokenizers import Tokenizer, tokenizer_for


@dataclass
class EmbeddingTable:
    """A token embedding table and the tokenizer that names its rows."""

    weight: str  # parameter name, e.g. "wte"
    vectors: np.ndarray  # (V, C)
    tokenizer: Tokenizer
    node: str  # the text data node


def embedding_table(doc: dict, weights: dict[str, np.ndarray]) -> EmbeddingTable:
    """The embedding table that looks up the text node's tokens, with its tokenizer."""
    program = compile_document(doc, "float32")
    text = next((eq for eq in program.equations if eq.op.name == "text_corpus"), None)
    if text is None:
        raise WiregradError("this graph has no text data node, so its embeddings name no "
                            "tokens")
    tokens = text.outputs[0]
    lookup = next((eq for eq in program.equations
                   if eq.op.name == "embedding" and eq.inputs and eq.inputs[0] == tokens), None)
    if lookup is None or len(lookup.inputs) < 2 or lookup.inputs[1] is None:
        raise WiregradError("no embedding op looks up the text's tokens", node=text.path)
    name = lookup.inputs[1].rsplit(":", 1)[0]
    if name not in weights:
        raise WiregradError(f"the weights lack the embedding table '{name}'", node=name)
    vectors = np.asarray(weights[name], dtype=np.float64)
    tok = tokenizer_for(text.params, None, text.path)
    if vectors.ndim != 2 or vectors.shape[0] < tok.vocab_size:
        raise WiregradError(f"the embedding table '{name}' has shape {list(vectors.shape)}, "
                            f"the tokenizer {tok.vocab_size} tokens", node=name)
    return EmbeddingTable(name, vectors[: tok.vocab_size], tok, text.path)


def cosine_neighbours(vectors: np.ndarray, query: int, k: int) -> list[tuple[int, float]]:
    """The *k* rows most similar to row *query* by cosine similarity (itself excluded),
    most similar first; ties in id order."""
    if not 0 <= query < len(vectors):
        raise WiregradError(f"token {query} is outside the table of {len(vectors)}")
    norms = np.linalg.norm(vectors, axis=1)
    sims = vectors @ vectors[query] / np.maximum(norms * norms[query], 1e-30)
    sims[query] = -np.inf
    order = np.lexsort((np.arange(len(sims)), -sims))[: max(0, min(k, len(sims) - 1))]
    return [(int(i), float(sims[i])) for i in order]


def query_token(tok: Tokenizer, word: str) -> int:
    """The one token that stands for *word*: the word as it appears mid-text (BPE: with its
    leading space, ``" king"``), else the word itself; a word that is several tokens is a clear
    error naming its pieces."""
    if not word:
        raise WiregradError("give a word or token to look up", field="neighbours")
    tried = []
    for form in ((" " + word, word) if tok.kind == "bpe" and not word.startswith(" ")
                 else (word,)):
        ids = tok.encode(form, f"'{form}'")
        if len(ids) == 1:
            return int(ids[0])
        tried.append(" + ".join(repr(tok.label(i)) for i in ids))
    raise WiregradError(f"'{word}' is not one token of this model ({'; '.join(tried)}); "
                        "give one of its pieces", field="neighbours")


def neighbours(doc: dict, weights: dict[str, np.ndarray], word: str | int, k: int = 10
               ) -> dict:
    """A JSON-able report: the query token (a word, or a token id) and its *k* nearest tokens
    by cosine similarity."""
    table = embedding_table(doc, weights)
    token = int(word) if isinstance(word, int) else query_token(table.tokenizer, word)
    found = cosine_neighbours(table.vectors, token, k)  # checks the token id's range
    word = word if isinstance(word, str) else table.tokenizer.label(token)
    return {
        "weight": table.weight, "tokenizer": table.tokenizer.kind,
        "vocab_size": table.tokenizer.vocab_size,
        "query": {"text": word, "token": token, "label": table.tokenizer.label(token)},
        "neighbours": [{"token": i, "label": table.tokenizer.label(i), "similarity": s}
                       for i, s in found],
    }


def projection(doc: dict, weights: dict[str, np.ndarray]) -> dict:
    """The token embeddings on their two leading principal components, labelled by token:
    ``{"weight", "tokenizer", "vocab_size", "labels", "xy"}`` (the editor's explorer)."""
    from engine.insight.inspection import pca_2d

    table = embedding_table(doc, weights)
    return {"weight": table.weight, "tokenizer": table.tokenizer.kind,
            "vocab_size": table.tokenizer.vocab_size,
            "labels": [table.tokenizer.label(i) for i in range(table.tokenizer.vocab_size)],
            "xy": pca_2d(table.vectors)}


def format_report(report: dict) -> str:
    """The neighbours as a readable table."""
    q = report["query"]
    lines = [f"nearest tokens to {q['label']!r} (id {q['token']}) in {report['weight']}, "
             f"by cosine similarity ({report['tokenizer']}, {report['vocab_size']} tokens):"]
    for rank, n in enumerate(report["neighbours"], 1):
        lines.append(f"{rank:3d}  {n['similarity']:+.3f}  {n['label']!r}  (id {n['token']})")
    return "\n".join(lines)
