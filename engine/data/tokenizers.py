"""Tokenizers for text models: ``char`` (one id per character) and ``bpe`` (byte-level BPE).

``char`` is the :class:`~engine.data.text.Codec` the character GPT has always used: the
vocabulary is the ``vocab`` string in the document, and a character outside it is a clear error.

``bpe`` is a byte-level byte-pair encoding trained with Hugging Face ``tokenizers`` on the
training split only. Byte-level pre-tokenization (GPT-2's) was chosen over whitespace splitting
because it is lossless: every string is some sequence of its UTF-8 bytes, so there is no
unknown token and ``decode(encode(text)) == text`` exactly, spaces and newlines included (a
whitespace pre-tokenizer forgets how words were separated). The trained tokenizer is the
Hugging Face JSON, kept in the document (the data node's ``tokenizer_data`` param) so that
sampling needs no corpus; training it is cached under ``cache/tokenizers`` keyed by the
corpus's sha256 and the settings.

Special tokens: none. The corpus is one stream cut into fixed windows, so nothing is padded;
a prompt may start anywhere, so there is no begin token (an empty prompt starts at a newline);
generation stops after the requested number of tokens, so there is no end token.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np

from engine.base.errors import WiregradError
from engine.data.text import Codec

TOKENIZERS = ("char", "bpe")
BPE_FORMAT = 1  # bump when training settings below change: cached tokenizers are then ignored


class Tokenizer(Protocol):
    """What models, samplers and the embedding explorer need from a tokenizer."""

    kind: str

    @property
    def vocab_size(self) -> int: ...

    @property
    def vocab(self) -> Sequence[str]:
        """The tokens in id order (char: the vocab string; bpe: each token's label)."""
        ...

    def encode(self, text: str, what: str = "the text", node: str | None = None
               ) -> np.ndarray: ...

    def decode(self, ids) -> str: ...

    def token_bytes(self, token: int) -> bytes: ...

    def label(self, token: int) -> str: ...


class CharTokenizer:
    """One id per character of the document's ``vocab`` string (today's behaviour)."""

    kind = "char"

    def __init__(self, vocab: str) -> None:
        self.codec = Codec(vocab)

    @property
    def vocab_size(self) -> int:
        return len(self.codec.vocab)

    def encode(self, text: str, what: str = "the text", node: str | None = None) -> np.ndarray:
        return self.codec.encode(text, what, node)

    def decode(self, ids) -> str:
        _check_ids(ids, self.vocab_size)
        return self.codec.decode(ids)

    @property
    def vocab(self) -> str:
        """The tokens in id order (the characters)."""
        return self.codec.vocab

    def token_bytes(self, token: int) -> bytes:
        return self.codec.vocab[int(token)].encode("utf-8")

    def label(self, token: int) -> str:
        return self.codec.vocab[int(token)]


def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet (printable stand-ins for the 256 bytes) → byte value."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[chr(b)] = b
        else:
            chars[chr(256 + extra)] = b
            extra += 1
    return chars


class BPETokenizer:
    """Byte-level BPE from Hugging Face ``tokenizers``; lossless, no unknown token."""

    kind = "bpe"

    def __init__(self, data: str) -> None:
        hf = _hf()
        try:
            self.hf = hf.Tokenizer.from_str(data)
        except Exception as exc:  # the library raises plain Exception for bad JSON
            raise WiregradError(f"the stored BPE tokenizer cannot be read: {exc}",
                                field="tokenizer_data") from None
        self.data = data
        decoder = _byte_decoder()
        self._bytes: list[bytes] = []
        for token in range(self.hf.get_vocab_size()):
            piece = self.hf.id_to_token(token) or ""
            if any(c not in decoder for c in piece):
                raise WiregradError(f"the stored tokenizer's token {token} ({piece!r}) is not "
                                    "byte-level", field="tokenizer_data")
            self._bytes.append(bytes(decoder[c] for c in piece))
        self._labels = [b.decode("utf-8", errors="backslashreplace") for b in self._bytes]

    @property
    def vocab_size(self) -> int:
        return len(self._bytes)

    @property
    def vocab(self) -> list[str]:
        """Every token's :meth:`label`, in id order."""
        return list(self._labels)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data.encode("utf-8")).hexdigest()

    def encode(self, text: str, what: str = "the text", node: str | None = None) -> np.ndarray:
        if not isinstance(text, str):
            raise WiregradError(f"{what} is not text", node=node)
        return np.asarray(self.hf.encode(text).ids, dtype=np.int64)

    def decode(self, ids) -> str:
        """The text of *ids*; a sequence that ends inside a character is a clear error."""
        data = b"".join(self.token_bytes(i) for i in _check_ids(ids, self.vocab_size))
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WiregradError(f"these tokens are not whole UTF-8 text (byte {exc.start} of "
                                f"{len(data)})") from None

    def token_bytes(self, token: int) -> bytes:
        return self._bytes[int(token)]

    def label(self, token: int) -> str:
        """A readable form of one token (partial UTF-8 shown as ``\\x..`` escapes)."""
        return self._labels[int(token)]


def _check_ids(ids, vocab_size: int) -> list[int]:
    out = [int(i) for i in ids]
    bad = [i for i in out if not 0 <= i < vocab_size]
    if bad:
        raise WiregradError(f"token id {bad[0]} is outside the vocabulary of {vocab_size}")
    return out


class StreamDecoder:
    """Turns tokens into text as they arrive: the bytes of a character split over tokens wait
    for the rest (byte-level BPE may cut a multi-byte character); bytes that can never form
    UTF-8 become U+FFFD."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        import codecs

        self.tokenizer = tokenizer
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token: int) -> str:
        """The text completed by *token* (possibly empty)."""
        return self._utf8.decode(self.tokenizer.token_bytes(token))


def _hf():
    try:
        import tokenizers
    except ImportError:  # a core dependency; only a broken install lacks it
        raise WiregradError("BPE tokenizers need the package 'tokenizers' (a core dependency "
                            "of Wiregrad). Install it with:  pip install tokenizers") from None
    return tokenizers


def train_bpe(text: str, vocab_size: int) -> str:
    """Train a byte-level BPE of at most *vocab_size* tokens on *text*; its JSON.

    Deterministic for the same text and size (the trainer breaks ties by token order)."""
    if not 256 <= vocab_size <= 65536:
        raise WiregradError(f"vocab_size {vocab_size} is outside 256…65536 (the 256 bytes are "
                            "always tokens)", field="vocab_size")
    hf = _hf()
    tok = hf.Tokenizer(hf.models.BPE())
    tok.pre_tokenizer = hf.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = hf.decoders.ByteLevel()
    trainer = hf.trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, show_progress=False, special_tokens=[],
        initial_alphabet=hf.pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(text.splitlines(keepends=True), trainer)
    return tok.to_str()


def _cache_dir() -> Path:
    from engine.base.paths import cache_dir

    return cache_dir() / "tokenizers"


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def cache_key(text: str, vocab_size: int) -> str:
    """Corpus hash + settings: a new corpus or size trains anew."""
    settings = json.dumps({"kind": "bpe", "vocab_size": vocab_size, "format": BPE_FORMAT},
                          sort_keys=True)
    return hashlib.sha256((text_sha256(text) + settings).encode()).hexdigest()[:24]


def cached_bpe(text: str, vocab_size: int) -> str | None:
    """The BPE :func:`trained_bpe` trained on *text* before (from the cache), else None."""
    path = _cache_dir() / f"bpe-{cache_key(text, vocab_size)}.json"
    with contextlib.suppress(OSError, UnicodeDecodeError):  # no cache yet, or unreadable
        return path.read_text(encoding="utf-8")
    return None


def trained_bpe(text: str, vocab_size: int) -> str:
    """:func:`train_bpe`, cached on disk (``cache/tokenizers/bpe-<key>.json``)."""
    from engine.base.io import atomic_write_text

    known = cached_bpe(text, vocab_size)
    if known is not None:
        return known
    path = _cache_dir() / f"bpe-{cache_key(text, vocab_size)}.json"
    data = train_bpe(text, vocab_size)
    with contextlib.suppress(OSError):  # a cache that cannot be written is skipped
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, data)
    return data


def size_note(learned: int, asked: int) -> str | None:
    """What to tell the user when a trained BPE holds fewer pieces than ``vocab_size`` (a
    small text has no more merges to learn): the model keeps its *asked* classes."""
    if learned >= asked:
        return None
    return (f"the BPE learned {learned:,} pieces of the {asked:,} vocab_size allows (the text "
            f"has no more merges to learn): vocab_size is a maximum, so the model keeps "
            f"{asked:,} classes of which {asked - learned:,} are never a target; set "
            f"vocab_size to {learned} for a smaller model")


@lru_cache(maxsize=4)
def _bpe_from_data(data: str) -> BPETokenizer:
    return BPETokenizer(data)


def from_params(params: dict, node: str | None = None) -> Tokenizer:
    """The tokenizer a text data node's params describe, without reading the corpus.

    A ``bpe`` node needs its trained tokenizer (``tokenizer_data``): train the graph once, or
    run ``wiregrad tokenizer`` on it."""
    kind = params.get("tokenizer", "char")
    if kind == "char":
        return CharTokenizer(params["vocab"])
    if kind == "bpe":
        data = params.get("tokenizer_data") or ""
        if not data:
            raise WiregradError("this BPE tokenizer is not trained yet: train the graph (the "
                                "tokenizer is trained on its corpus first)", node=node,
                                field="tokenizer_data")
        try:
            return _bpe_from_data(data)
        except WiregradError as exc:  # the tokenizer cannot know which node stored it
            raise WiregradError(exc.message, node=node, field="tokenizer_data") from None
    raise WiregradError(f"unknown tokenizer {kind!r}; choose one of {', '.join(TOKENIZERS)}",
                        node=node, field="tokenizer")


class CorpusStreams:
    """A corpus cut into training and validation token streams by one tokenizer.

    ``val_characters / val_tokens`` converts a validation loss per token into bits per
    character: ``bpc = loss · val_tokens / (val_characters · ln 2)``."""

    def __init__(self, tokenizer: Tokenizer, train: np.ndarray, val: np.ndarray,
                 val_characters: int) -> None:
        self.tokenizer, self.train, self.val = tokenizer, train, val
        self.val_characters = val_characters

    @property
    def tokens_per_character(self) -> float:
        """Validation tokens per validation character (1.0 for ``char``)."""
        return len(self.val) / max(1, self.val_characters)


def corpus_streams(corpus: str, params: dict, node: str | None = None) -> CorpusStreams:
    """Tokenize *corpus* as a ``text_corpus`` node's params say.

    ``char`` splits the id stream (first 1 − val_fraction trains), exactly as before; ``bpe``
    splits the text at the same share of characters, trains (or reads the document's) tokenizer
    on the training text only, and encodes each part."""
    kind = params.get("tokenizer", "char")
    fraction = float(params.get("val_fraction", 0.1))
    if kind == "char":
        tok = CharTokenizer(params["vocab"])
        stream = tok.encode(corpus, "the corpus", node).astype(np.int64)
        n_val = int(len(stream) * fraction)
        return CorpusStreams(tok, stream[: len(stream) - n_val], stream[len(stream) - n_val:],
                             n_val)
    train_text, val_text = _split_text(corpus, fraction)
    n_val = len(val_text)
    size = int(params.get("vocab_size", 2048))
    if kind != "bpe" or params.get("tokenizer_data"):
        found = from_params(params, node)  # the document's tokenizer (or an unknown-kind error)
        if not isinstance(found, BPETokenizer):  # "char" returned above; other kinds raise
            raise WiregradError(f"tokenizer {kind!r} cannot encode a corpus split by "
                                "characters", node=node, field="tokenizer")
        bpe = found
    else:
        bpe = _bpe_from_data(trained_bpe(train_text, size))
    if bpe.vocab_size > size:
        raise WiregradError(f"the tokenizer has {bpe.vocab_size} tokens but the node's "
                            f"vocab_size is {size}", node=node, field="vocab_size")
    return CorpusStreams(bpe, _encoded(bpe, train_text), _encoded(bpe, val_text), n_val)


def _encoded(tok: BPETokenizer, text: str) -> np.ndarray:
    """``tok.encode(text)``, cached as ``.npy`` by tokenizer and text hash (a 4.5 MB corpus
    takes ~12 s to encode)."""
    key = hashlib.sha256((tok.sha256 + text_sha256(text)).encode()).hexdigest()[:24]
    path = _cache_dir() / f"ids-{key}.npy"
    with contextlib.suppress(OSError, ValueError):  # no cache yet, or unreadable
        ids = np.load(path, allow_pickle=False)
        if ids.ndim == 1 and ids.dtype == np.int64 and (ids.size == 0 or (
                ids.min() >= 0 and ids.max() < tok.vocab_size)):
            return ids
    ids = tok.encode(text).astype(np.int64)
    import io as _io

    from engine.base.io import atomic_write_bytes

    buf = _io.BytesIO()
    np.save(buf, ids, allow_pickle=False)
    with contextlib.suppress(OSError):  # a cache that cannot be written is skipped
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, buf.getvalue())
    return ids


def _split_text(corpus: str, fraction: float) -> tuple[str, str]:
    n_val = int(len(corpus) * fraction)
    return corpus[: len(corpus) - n_val], corpus[len(corpus) - n_val:]


def tokenizer_for(params: dict, base: Path | None = None, node: str | None = None) -> Tokenizer:
    """The node's tokenizer: the document's own; for a BPE node that does not carry one yet,
    the one its corpus trains (read from the cache when it was trained before — this needs
    the corpus, which a document with ``tokenizer_data`` never does)."""
    if params.get("tokenizer", "char") != "bpe" or params.get("tokenizer_data"):
        return from_params(params, node)
    return _bpe_from_data(trained_bpe(*_training_text(params, base, node)))


def _training_text(params: dict, base: Path | None, node: str | None) -> tuple[str, int]:
    """(the text a BPE node's tokenizer is trained on: its corpus's training split,
    vocab_size)."""
    from engine.data.text import corpus_text

    full = {"source": "shakespeare", "path": "", "val_fraction": 0.1, "vocab_size": 2048,
            **params}
    train_text, _ = _split_text(corpus_text(full, base, node), float(full["val_fraction"]))
    return train_text, int(full["vocab_size"])


def cached_tokenizer(params: dict, base: Path | None = None) -> str | None:
    """A BPE text node's tokenizer JSON if it was trained before (a run, the cache), without
    training one; None when it was not, or its corpus cannot be read."""
    try:
        return cached_bpe(*_training_text(params, base, None))
    except WiregradError:
        return None


def store_tokenizers(doc: dict, base: Path | None = None, train: bool = True) -> dict:
    """A copy of *doc* whose BPE text nodes carry their trained tokenizer (``tokenizer_data``),
    so that sampling, export and the embedding explorer need no corpus. *train* False stores
    only tokenizers trained before (the editor's Save: no training, no error)."""
    import copy

    out = copy.deepcopy(doc)
    for node in out.get("nodes", []):
        params = node.get("params", {})
        if node.get("type") == "text_corpus" and params.get("tokenizer") == "bpe" \
                and not params.get("tokenizer_data"):
            if not train:
                data = cached_tokenizer(params, base)
                if data:
                    params["tokenizer_data"] = data
                continue
            tok = tokenizer_for(params, base, node.get("id"))
            if not isinstance(tok, BPETokenizer):  # tokenizer_for trains one for a bpe node
                raise WiregradError("this BPE node's tokenizer could not be trained",
                                    node=node.get("id"), field="tokenizer")
            params["tokenizer_data"] = tok.data
    return out
