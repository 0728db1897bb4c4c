"""The tokenizer of a ``sequence_pairs`` node: ids 0–2 are pad / begin / end, then the tokens.

``char`` (the default, unchanged): the characters of the node's ``vocab`` string, ids 3, 4, ….
``bpe``: a byte-level BPE of ``vocab_size`` tokens trained with Hugging Face ``tokenizers`` on
the *training* pairs (each source and target a line), ids 3 … vocab_size + 2 — so a model has
``vocab_size + 3`` classes. The BPE is the one text corpora use
(:func:`engine.data.tokenizers.train_bpe`: lossless, no unknown token, cached by text hash and
settings) and is stored in the node's ``tokenizer_data``, so a document decodes without its
TSV file.

One vocabulary is shared by source and target (not one per side): the node has one
``vocab`` / ``vocab_size`` that sizes every embedding table and the output head alike, as in
the char form; pairs that copy or transliterate share most of their pieces (the digits of a
date, names, numbers) so shared merges are learned from twice the text; and the document
keeps one tokenizer. A graph may still give each side its own embedding table.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from engine.base.errors import WiregradError
from engine.data.tokenizers import BPETokenizer, CharTokenizer, Tokenizer, from_params
from engine.ops.seq2seq import EOS, SPECIALS

SPECIAL_LABELS = ("<pad>", "<bos>", "<eos>")


class PairTokenizer:
    """Model ids of a ``sequence_pairs`` node: the specials, then the inner tokenizer's ids."""

    def __init__(self, inner: Tokenizer) -> None:
        self.inner = inner
        self.kind = inner.kind

    @property
    def vocab_size(self) -> int:
        """The model's classes: the three specials and every token."""
        return SPECIALS + self.inner.vocab_size

    @property
    def classes(self) -> int:
        return self.vocab_size

    @property
    def vocab(self) -> list[str]:
        """Every id's :meth:`label`, in id order."""
        return [self.label(i) for i in range(self.vocab_size)]

    def encode(self, text: str, what: str = "the text", node: str | None = None) -> np.ndarray:
        """Model ids of *text* (no begin / end token); clear errors for what cannot encode."""
        return np.asarray(self.inner.encode(text, what, node), np.int64) + SPECIALS

    def decode(self, ids: Iterable) -> str:
        """The text of *ids* up to the first end token (pad / begin dropped). Bytes that end
        inside a character (a cut-off BPE output) become U+FFFD rather than an error."""
        kept = []
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if SPECIALS <= i < self.vocab_size:
                kept.append(i - SPECIALS)
        if isinstance(self.inner, CharTokenizer):
            return self.inner.decode(kept)
        return b"".join(self.inner.token_bytes(i) for i in kept).decode("utf-8", "replace")

    def token_bytes(self, token: int) -> bytes:
        token = int(token)
        return b"" if token < SPECIALS else self.inner.token_bytes(token - SPECIALS)

    def label(self, token: int) -> str:
        token = int(token)
        return SPECIAL_LABELS[token] if token < SPECIALS else self.inner.label(token - SPECIALS)

    def length(self, text: str) -> int:
        """Tokens of *text* (characters for ``char``)."""
        return len(text) if self.kind == "char" else len(self.inner.encode(text))


def classes_of(params: dict) -> int:
    """Output classes of a model over a ``sequence_pairs`` node's params (no training)."""
    if params.get("tokenizer", "char") == "bpe":
        return SPECIALS + int(params.get("vocab_size", 512))
    return SPECIALS + len(params.get("vocab", ""))


def stored(params: dict, node: str | None = None) -> PairTokenizer:
    """The tokenizer the params hold: ``char`` from ``vocab``, ``bpe`` from ``tokenizer_data``
    (a BPE node that carries none is a clear error naming the field)."""
    kind = params.get("tokenizer", "char")
    if kind == "bpe" and not params.get("tokenizer_data"):
        raise WiregradError("this node's BPE tokenizer is not stored in the document: train "
                            "the graph with its TSV file present (or store it with "
                            "`api.store_tokenizers`)", node=node, field="tokenizer_data")
    inner = from_params({"tokenizer": kind, "vocab": params.get("vocab", ""),
                         "tokenizer_data": params.get("tokenizer_data", "")}, node)
    return checked(PairTokenizer(inner), params, node)


def checked(tok: PairTokenizer, params: dict, node: str | None) -> PairTokenizer:
    """*tok*, refused when it has more tokens than the node's ``vocab_size`` says."""
    if isinstance(tok.inner, BPETokenizer):
        size = int(params.get("vocab_size", 512))
        if tok.inner.vocab_size > size:
            raise WiregradError(f"the stored tokenizer has {tok.inner.vocab_size} tokens but "
                                f"vocab_size is {size}", node=node, field="vocab_size")
    return tok
