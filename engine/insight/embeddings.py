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
from engine.ops.seq2seq import DATES_VOCAB, SPECIALS


@dataclass
class EmbeddingTable:
    """A token embedding table and the tokenizer that names its rows."""

    weight: str  # parameter name, e.g. "wte"
    vectors: np.ndarray  # (V, C)
    tokenizer: Tokenizer
    node: str  # the text data node
    name: str = "tokens"  # which of the graph's tables: tokens, or a seq2seq source / target
    names: tuple[str, ...] = ("tokens",)  # all of the graph's tables


class PairsVocab:
    """The characters of a ``sequence_pairs`` node as a tokenizer: ids 0-2 are the pad,
    begin and end tokens, then the vocabulary's characters in order."""

    kind = "char"

    def __init__(self, vocab: str) -> None:
        self.chars = vocab
        self.index = {c: i + SPECIALS for i, c in enumerate(vocab)}

    @property
    def vocab_size(self) -> int:
        return len(self.chars) + SPECIALS

    def encode(self, text: str, what: str = "the text", node: str | None = None) -> np.ndarray:
        bad = "".join(sorted({c for c in text if c not in self.index}))
        if bad:
            raise WiregradError(f"{what} has character(s) outside the vocabulary of "
                                f"{len(self.chars)}: {bad!r}", node=node)
        return np.array([self.index[c] for c in text], dtype=np.int64)

    @property
    def vocab(self) -> list[str]:
        return [self.label(i) for i in range(self.vocab_size)]

    def decode(self, ids) -> str:
        return "".join(self.chars[i - SPECIALS] for i in map(int, ids) if i >= SPECIALS)

    def token_bytes(self, token: int) -> bytes:
        return self.label(token).encode("utf-8")

    def label(self, token: int) -> str:
        token = int(token)
        return SPECIAL_LABELS[token] if token < SPECIALS else self.chars[token - SPECIALS]


SPECIAL_LABELS = ("<pad>", "<bos>", "<eos>")


def pairs_vocab(params: dict) -> Tokenizer:
    """The tokenizer of a ``sequence_pairs`` node with *params* (a BPE node: its stored one)."""
    if params.get("tokenizer", "char") == "bpe":
        from engine.data.pair_tokenizer import stored

        return stored(params)
    return PairsVocab(str(params.get("vocab") or DATES_VOCAB))


def _feeds(eq) -> tuple[list[tuple[str, str]], Tokenizer] | None:
    """(table name, token value) pairs a data equation feeds, and its tokenizer."""
    if eq.op.name == "text_corpus":
        return [("tokens", eq.outputs[0])], tokenizer_for(eq.params, None, eq.path)
    if eq.op.name == "sequence_pairs":
        vocab: Tokenizer = pairs_vocab(eq.params)
        return [("source", eq.outputs[0]), ("target", eq.outputs[2])], vocab
    return None


def _lookups(doc: dict) -> list[tuple[str, str, Tokenizer, str]]:
    """(table name, embedding parameter, tokenizer, data node) of each token table."""
    program = compile_document(doc, "float32")
    found: list[tuple[str, str, Tokenizer, str]] = []
    data = None
    for eq in program.equations:
        feeds = _feeds(eq)
        if feeds is None:
            continue
        data = eq
        for name, value in feeds[0]:
            lookup = next((e for e in program.equations if e.op.name == "embedding"
                           and e.inputs and e.inputs[0] == value), None)
            if lookup is not None and len(lookup.inputs) > 1 and lookup.inputs[1] is not None:
                found.append((name, lookup.inputs[1].rsplit(":", 1)[0], feeds[1], eq.path))
    if data is None:
        raise WiregradError("this graph has no text data node, so its embeddings name no "
                            "tokens")
    if not found:
        raise WiregradError("no embedding op looks up the text's tokens", node=data.path)
    return found


def embedding_table(doc: dict, weights: dict[str, np.ndarray], table: str | None = None
                    ) -> EmbeddingTable:
    """The embedding table that looks up the data node's tokens, with its tokenizer; *table*
    picks one where there are several (a seq2seq graph's ``source`` and ``target``)."""
    found = _lookups(doc)
    names = tuple(f[0] for f in found)
    if table is not None and table not in names:
        raise WiregradError(f"this graph has no token table {table!r}; it has "
                            f"{', '.join(names)}", field="table")
    name, weight, tok, node = next(f for f in found if table in (None, f[0]))
    if weight not in weights:
        raise WiregradError(f"the weights lack the embedding table '{weight}'", node=weight)
    vectors = np.asarray(weights[weight], dtype=np.float64)
    if vectors.ndim != 2 or vectors.shape[0] < tok.vocab_size:
        raise WiregradError(f"the embedding table '{weight}' has shape {list(vectors.shape)}, "
                            f"the tokenizer {tok.vocab_size} tokens", node=weight)
    return EmbeddingTable(weight, vectors[: tok.vocab_size], tok, node, name, names)


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


def neighbours(doc: dict, weights: dict[str, np.ndarray], word: str | int, k: int = 10,
               table_name: str | None = None) -> dict:
    """A JSON-able report: the query token (a word, or a token id) and its *k* nearest tokens
    by cosine similarity (in *table_name*: by default the graph's first token table)."""
    table = embedding_table(doc, weights, table_name)
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


def projection(doc: dict, weights: dict[str, np.ndarray], table_name: str | None = None
               ) -> dict:
    """The token embeddings on their two leading principal components, labelled by token:
    ``{"weight", "table", "tables", "tokenizer", "vocab_size", "labels", "xy"}`` (the
    editor's explorer)."""
    table = embedding_table(doc, weights, table_name)
    return {"weight": table.weight, "table": table.name, "tables": list(table.names),
            "tokenizer": table.tokenizer.kind,
            "vocab_size": table.tokenizer.vocab_size,
            "labels": [table.tokenizer.label(i) for i in range(table.tokenizer.vocab_size)],
            "xy": principal_2d(table.vectors)}


def principal_2d(vectors: np.ndarray) -> np.ndarray:
    """Rows of *vectors* on their two leading principal components, (V, 2) float32: the
    eigenvectors of the C × C scatter matrix (V × C SVD's components, far cheaper for a large
    vocabulary), each signed so that its largest coordinate is positive (deterministic)."""
    m = np.asarray(vectors, dtype=np.float64)
    m = m - m.mean(axis=0, keepdims=True)
    _, vecs = np.linalg.eigh(m.T @ m)
    comps = vecs[:, ::-1][:, :2]
    if comps.shape[1] < 2:
        comps = np.hstack([comps, np.zeros((m.shape[1], 2 - comps.shape[1]))])
    signs = np.sign(comps[np.abs(comps).argmax(axis=0), [0, 1]])
    return (m @ (comps * np.where(signs == 0, 1.0, signs))).astype(np.float32)


def format_report(report: dict) -> str:
    """The neighbours as a readable table."""
    q = report["query"]
    lines = [f"nearest tokens to {q['label']!r} (id {q['token']}) in {report['weight']}, "
             f"by cosine similarity ({report['tokenizer']}, {report['vocab_size']} tokens):"]
    for rank, n in enumerate(report["neighbours"], 1):
        lines.append(f"{rank:3d}  {n['similarity']:+.3f}  {n['label']!r}  (id {n['token']})")
    return "\n".join(lines)
