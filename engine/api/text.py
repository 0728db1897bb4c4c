"""Language models for the editor: sampling, attention maps, embeddings, tokenizers and
sequence-to-sequence decoding."""

from __future__ import annotations

from pathlib import Path

from engine.base.errors import WiregradError


def is_language_model(doc: dict) -> bool:
    """True when the document can be sampled from (a text_corpus data node and a loss)."""
    types = {n["type"] for n in doc.get("nodes", [])}
    return "text_corpus" in types


def sampler_for(doc: dict, weights: dict | None):
    """An opaque sampling handle for :func:`sample_tokens` and :func:`attention_maps`.

    *weights* None samples from freshly initialised weights (useful only for testing).
    """
    from engine.sample.sampler import Sampler

    return Sampler(doc, weights)


def sample_tokens(sampler, prompt: str, n: int, *, temperature: float = 0.8, top_k: int = 0,
                  top_p: float = 1.0, seed: int = 0):
    """Yield ``{"char", "token", "id", "p", "alternatives": [[token, p], ...]}`` for *n*
    generated tokens: ``char`` is the text the token completes (a character, a word piece, or
    "" while a character split over byte-level tokens waits for the rest), ``token`` its label,
    ``id`` its id; greedy (temperature 0): ``p`` and the alternatives are the model's
    probabilities at temperature 1.

    With the same arguments the characters equal ``wiregrad sample``'s. BLAS runs on one
    thread meanwhile (the editor samples while its worker may train on every core).
    """
    infos: list = []
    stream = sampler.generate(prompt, n, temperature=temperature, top_k=top_k, top_p=top_p,
                              seed=seed, callback=infos.append, blas_threads=1)
    for char in stream:
        info = infos.pop() if infos else None
        yield {"char": char, "token": info.token if info else char,  # token: its own label
               "id": info.id if info else -1, "p": info.probability if info else 1.0,
               "alternatives": [[c, p] for c, p in (info.alternatives if info else [])]}


def attention_maps(sampler, prompt: str) -> dict:
    """Attention layer → (heads, T, T) array over *prompt*; each row sums to 1."""
    from engine.insight.inspection import attention_maps as _maps

    return _maps(sampler, prompt)


def sampler_vocab(sampler) -> str:
    return "".join(sampler.codec.vocab)


def embedding_neighbours(doc: dict, weights: dict, word: str | int, k: int = 10,
                         table: str | None = None) -> dict:
    """The *k* tokens nearest to *word* (a word or token, or a token id) in the text model's
    embedding table (cosine), as ``wiregrad embeddings --json`` prints them; *table* picks a
    seq2seq graph's ``source`` or ``target`` table."""
    from engine.insight.embeddings import neighbours

    return neighbours(doc, weights, word, k, table)


def embedding_map(doc: dict, weights: dict, table: str | None = None) -> dict:
    """The token embeddings projected on their two leading principal components (the
    editor's explorer): ``{"weight", "table", "tables", "tokenizer", "vocab_size", "labels",
    "xy"}``; *table* as for :func:`embedding_neighbours`."""
    from engine.insight.embeddings import projection

    return projection(doc, weights, table)


def tokenize(doc: dict, text: str, base_dir: str | Path | None = None) -> list[dict]:
    """The editor's tokenizer view: ``[{"id", "token"}]`` for *text* under the document's text
    node's tokenizer, or a seq2seq graph's characters (a character outside a char vocabulary
    is a clear error)."""
    from engine.data.tokenizers import tokenizer_for
    from engine.insight.embeddings import pairs_vocab

    node = next((n for n in doc.get("nodes", []) if n.get("type") == "text_corpus"), None)
    pairs = next((n for n in doc.get("nodes", []) if n.get("type") == "sequence_pairs"), None)
    if node is not None:
        tok = tokenizer_for(node.get("params", {}), Path(base_dir) if base_dir else None,
                            node["id"])
    elif pairs is not None:  # a seq2seq graph: its characters, after the pad / begin / end ids
        node, tok = pairs, pairs_vocab(pairs.get("params", {}))
    else:
        raise WiregradError("this graph has no text data node, so it has no tokenizer")
    return [{"id": int(i), "token": tok.label(int(i))}
            for i in tok.encode(text, "the text", node["id"])]


def store_tokenizers(doc: dict, base_dir: str | Path | None = None, *,
                     train: bool = True) -> dict:
    """A copy of *doc* whose BPE text nodes carry their trained tokenizer (trains it on the
    corpus, or reads the cache), so the saved document samples without the corpus; BPE
    ``sequence_pairs`` nodes likewise (decoding then needs no TSV file). *train* False
    (the editor's Save) stores only tokenizers trained before — by a run or in the cache —
    and never raises for a node whose corpus cannot be read."""
    from engine.data.sequence_pairs import store_tokenizers as _store_pairs
    from engine.data.tokenizers import store_tokenizers as _store

    base = Path(base_dir) if base_dir is not None else None
    return _store_pairs(_store(doc, base, train), base, train)



# ----------------------------------------------------------------- seq2seq (the editor's panel)


def is_seq2seq(doc: dict) -> bool:
    """True when *doc* reads sequence pairs (an encoder–decoder graph decodes an input)."""
    return any(n.get("type") == "sequence_pairs" for n in doc.get("nodes", []))


def decode_pairs(doc: dict, weights: dict, text: str, beam: int = 1, temperature: float = 0.0,
                 *, top_k: int = 0, top_p: float = 1.0, seed: int = 0,
                 max_tokens: int | None = None) -> dict:
    """Decode *text* with the seq2seq graph *doc*: greedy by default, beam search for
    *beam* > 1, sampling for *temperature* > 0. Returns ``{"input", "output", "input_tokens",
    "tokens": [{"token", "id", "p", "alternatives"}], "cross_attention": {block: (H, out,
    in)}}`` — each output token (the end token included) with its probability."""
    import numpy as np

    from engine.sample.seq2seq import load_model
    from engine.sample.seq2seq_trace import decode_trace

    model = load_model(doc, weights, np.float64)
    try:
        return decode_trace(model, text, beam, temperature, top_k, top_p, seed, max_tokens)
    except WiregradError as exc:  # the editor's panel has an Input box, not an --input
        if exc.field != "--input":
            raise
        raise WiregradError(exc.message, node=exc.node, port=exc.port, field="Input") from None
