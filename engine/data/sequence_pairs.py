"""The ``sequence_pairs`` dataset: (source, target) text pairs as padded id arrays.

Builds what the ``sequence_pairs`` node (:mod:`engine.ops.seq2seq`) feeds — ``source``,
``source_mask``, ``target_in``, ``target_out`` — from the generated dates task
(:mod:`engine.data.dates`) or a UTF-8 TSV file of ``source<TAB>target`` lines. Every problem
in a file raises :class:`~engine.base.errors.WiregradError` naming the line.

Tokens are characters (``tokenizer`` = char) or byte-level BPE pieces (``bpe``, trained on the
training pairs only; :mod:`engine.data.pair_tokenizer`). For ``bpe`` the split comes first (a
seeded permutation of every well-formed pair), then the tokenizer is trained on the training
side, then ``max_source_len`` / ``max_target_len`` apply in tokens.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from engine.base.errors import WiregradError
from engine.core import registry
from engine.data import dates
from engine.data.common import MAX_FILE_BYTES, SPLIT, Dataset, frozen, resolve_path, seeded_rng
from engine.data.pair_tokenizer import PairTokenizer, checked, classes_of, stored
from engine.data.tokenizers import (
    BPETokenizer,
    _bpe_from_data,
    cached_bpe,
    size_note,
    trained_bpe,
)
from engine.ops.seq2seq import BOS, EOS, IGNORE, PAD, SPECIALS


def encode(text: str, vocab: str) -> list[int]:
    """Character ids of *text* (KeyError on a character outside *vocab*)."""
    index = {c: i + SPECIALS for i, c in enumerate(vocab)}
    return [index[c] for c in text]


def decode(ids, vocab: str) -> str:
    """The text of *ids* up to the first end token (specials dropped)."""
    out = []
    for i in ids:
        i = int(i)
        if i == EOS:
            break
        if i >= SPECIALS and i - SPECIALS < len(vocab):
            out.append(vocab[i - SPECIALS])
    return "".join(out)


def to_arrays(pairs: list[tuple[str, str]], vocab: str | PairTokenizer, s: int,
              t: int) -> dict:
    """Padded arrays of *pairs* under *vocab* (a char vocabulary or a pair tokenizer); targets
    get the begin / end tokens (T = *t* + 1)."""
    n = len(pairs)
    if isinstance(vocab, str):
        index = {c: i + SPECIALS for i, c in enumerate(vocab)}

        def ids_of(text: str) -> list[int]:
            return [index[c] for c in text]
    else:
        def ids_of(text: str) -> list[int]:
            return [int(i) for i in vocab.encode(text)]
    src = np.full((n, s), PAD, np.int64)
    tin = np.full((n, t + 1), PAD, np.int64)
    tout = np.full((n, t + 1), IGNORE, np.int64)
    lengths = []
    for row, (a, b) in enumerate(pairs):
        source = ids_of(a)
        src[row, :len(source)] = source
        lengths.append(len(source))
        ids = ids_of(b)
        tin[row, 0] = BOS
        tin[row, 1:len(ids) + 1] = ids
        tout[row, :len(ids)] = ids
        tout[row, len(ids)] = EOS
    mask = np.arange(s)[None, :] < np.array(lengths, np.int64).reshape(-1, 1)
    return {"source": src, "source_mask": mask.astype(np.float32), "target_in": tin,
            "target_out": tout}


def _dates(params: dict, node: str | None) -> tuple[list, list, dict]:
    train, val = dates.generate(params["n_train"], params["n_val"], params["seed"])
    if params.get("tokenizer", "char") == "char":
        vocab = params["vocab"]
        for a, b in train[:2000] + val:
            missing = sorted(set(a + b) - set(vocab))
            if missing:
                raise WiregradError(f"'vocab' lacks the characters {''.join(missing)!r} the "
                                    "dates task writes", node=node, field="vocab")
            _check_dates_length(a, b, len(a), len(b), params, node)
    return train, val, {"description": f"dates: {len(train):,} training pairs, "
                                       f"{len(val):,} held-out calendar dates"}


def _check_dates_length(a: str, b: str, la: int, lb: int, params: dict,
                        node: str | None) -> None:
    if la > params["max_source_len"] or lb > params["max_target_len"]:
        raise WiregradError(f"'{a}' → '{b}' is longer than max_source_len / "
                            "max_target_len", node=node, field="max_source_len")


def read_lines(path: Path, node: str | None) -> list[tuple[int, str, str]]:
    """``(line number, source, target)`` of every pair in a TSV file; errors name the line."""
    if not path.is_file():
        raise WiregradError(f"no such file: {path}", node=node, field="path")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise WiregradError(f"{path} is larger than {MAX_FILE_BYTES // 1024**3} GiB",
                            node=node, field="path")
    out = []
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            where = f"{path.name}, line {number}"
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                raise WiregradError(f"{where}: not UTF-8 text", node=node,
                                    field="path") from None
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) != 2:
                raise WiregradError(f"{where}: expected source<TAB>target, found "
                                    f"{len(parts) - 1} tab(s)", node=node, field="path")
            out.append((number, parts[0], parts[1]))
    return out


def _fits(lines: list[tuple[int, str, str]], length, params: dict, path: Path,
          node: str | None, unit: str) -> tuple[list, int]:
    """The pairs within the maximum lengths (*length* counts a side), and how many were not."""
    s, t = params["max_source_len"], params["max_target_len"]
    pairs, skipped = [], 0
    for number, a, b in lines:
        la, lb = length(a), length(b)
        if la > s or lb > t:
            if params["too_long"] == "refuse":
                raise WiregradError(f"{path.name}, line {number}: pair of {la} → {lb} {unit} "
                                    f"is longer than max_source_len {s} / max_target_len {t}",
                                    node=node, field="max_source_len")
            skipped += 1
            continue
        pairs.append((a, b))
    return pairs, skipped


def read_pairs(path: Path, params: dict, node: str | None) -> tuple[list, int]:
    """``(pairs, skipped)`` of a char-tokenized TSV file; errors name the line."""
    lines = read_lines(path, node)
    vocab, known = params["vocab"], set(params["vocab"])
    for number, a, b in lines:
        bad = sorted(set(a + b) - known)
        if bad:
            raise WiregradError(f"{path.name}, line {number}: characters {''.join(bad)!r} are "
                                f"not in 'vocab' ({len(vocab)} characters)", node=node,
                                field="vocab")
    pairs, skipped = _fits(lines, len, params, path, node, "characters")
    _enough(path, pairs, skipped, node)
    return pairs, skipped


def _enough(path: Path, pairs: list, skipped: int, node: str | None) -> None:
    if len(pairs) < 2:
        raise WiregradError(f"{path.name}: {len(pairs)} usable pair(s) ({skipped} too long); "
                            "at least 2 are needed", node=node, field="path")


def _split(items: list, params: dict) -> tuple[list, list]:
    """(train, val): a fixed, seeded share ``val_fraction`` of *items* validates."""
    n = len(items)
    n_val = min(max(int(round(n * params["val_fraction"])), 1 if params["val_fraction"] else 0),
                n - 1)
    perm = seeded_rng(params["seed"], SPLIT).permutation(n)
    return [items[i] for i in np.sort(perm[n_val:])], [items[i] for i in np.sort(perm[:n_val])]


def _tsv(params: dict, base: Path | None, node: str | None) -> Path:
    if not params["path"]:
        raise WiregradError("choose a TSV file of source<TAB>target pairs", node=node,
                            field="path")
    return resolve_path(params["path"], base)


def _file(params: dict, base: Path | None, node: str | None
          ) -> tuple[list, list, dict, PairTokenizer | None]:
    path = _tsv(params, base, node)
    if params.get("tokenizer", "char") == "char":
        pairs, skipped = read_pairs(path, params, node)
        train, val = _split(pairs, params)
        tok = None
        n = len(pairs)
    else:  # split first, train the BPE on the training pairs, then limit lengths in tokens
        lines = read_lines(path, node)
        _enough(path, lines, 0, node)
        train_lines, val_lines = _split(lines, params)
        tok = pair_tokenizer(params, [(a, b) for _, a, b in train_lines], node)
        train, skip_train = _fits(train_lines, tok.length, params, path, node, "tokens")
        val, skip_val = _fits(val_lines, tok.length, params, path, node, "tokens")
        skipped, n = skip_train + skip_val, len(train) + len(val)
        if not train:
            raise WiregradError(f"{path.name}: no training pair fits max_source_len / "
                                "max_target_len in tokens", node=node, field="max_source_len")
    if not val:
        raise WiregradError(f"{path.name}: no validation pairs (val_fraction = "
                            f"{params['val_fraction']:g}, {skipped} pair(s) too long): training "
                            "would end at its first evaluation; raise val_fraction",
                            node=node, field="val_fraction")
    return train, val, {"skipped": skipped,
                        "description": f"{path.name}: {n:,} pairs ({skipped:,} too long, "
                                       "skipped)"}, tok


_TRAINED: dict[str, str] = {}  # params (less tokenizer_data) -> the BPE a dataset trained


def _params_key(params: dict) -> str:
    return json.dumps({k: v for k, v in params.items() if k != "tokenizer_data"},
                      sort_keys=True, default=str)


def pair_tokenizer(params: dict, train: list[tuple[str, str]],
                   node: str | None = None) -> PairTokenizer:
    """The node's tokenizer: the stored one, or (``bpe`` without ``tokenizer_data``) a BPE
    trained on the *train* pairs, each side a line (cached by text and settings; remembered
    for these params so decoding during the run — live predictions, exact match — finds it
    without the file)."""
    if params.get("tokenizer", "char") != "bpe" or params.get("tokenizer_data"):
        return stored(params, node)
    data = trained_bpe(_pairs_text(train), int(params.get("vocab_size", 512)))
    _TRAINED[_params_key(params)] = data
    return checked(PairTokenizer(_bpe_from_data(data)), params, node)


def _pairs_text(train: list[tuple[str, str]]) -> str:
    """The text a pairs BPE is trained on: each side of each training pair a line."""
    return "".join(f"{a}\n{b}\n" for a, b in train)


def cached_tokenizer(params: dict, base: Path | None = None) -> str | None:
    """A BPE pairs node's tokenizer JSON if it was trained before (this process's run, the
    cache), without training one; None when it was not, or its file cannot be read."""
    known = _TRAINED.get(_params_key(params))
    if known is not None:
        return known
    if params["source"] == "dates":
        train = dates.generate(params["n_train"], params["n_val"], params["seed"])[0]
    else:
        try:
            lines = read_lines(_tsv(params, base, None), None)
        except WiregradError:
            return None
        train, _ = _split([(a, b) for _, a, b in lines], params)
    return cached_bpe(_pairs_text(train), int(params.get("vocab_size", 512)))


def tokenizer_for(params: dict, base: Path | None = None,
                  node: str | None = None) -> PairTokenizer:
    """The node's tokenizer without building the dataset: stored in the document, or (a BPE
    node that carries none) trained from its data — which then must be at hand."""
    if params.get("tokenizer", "char") != "bpe" or params.get("tokenizer_data"):
        return stored(params, node)
    known = _TRAINED.get(_params_key(params))
    if known is not None:  # this process built the node's dataset
        return stored({**params, "tokenizer_data": known}, node)
    if params["source"] == "dates":
        train, _ = dates.generate(params["n_train"], params["n_val"], params["seed"])
    else:
        train, _ = _split([(a, b) for _, a, b in read_lines(_tsv(params, base, node), node)],
                          params)
    return pair_tokenizer(params, train, node)


def _known(data: str | None) -> dict:
    return {"tokenizer_data": data} if data else {}


def store_tokenizers(doc: dict, base: Path | None = None, train: bool = True) -> dict:
    """A copy of *doc* whose BPE ``sequence_pairs`` nodes carry their trained tokenizer
    (``tokenizer_data``), so that it decodes without its TSV file. *train* False stores only
    tokenizers trained before (the editor's Save: no training, no error)."""
    import copy

    out = copy.deepcopy(doc)
    for node in out.get("nodes", []):
        params = node.get("params", {})
        if node.get("type") == "sequence_pairs" and params.get("tokenizer") == "bpe" \
                and not params.get("tokenizer_data"):
            full = {**registry.get("sequence_pairs").defaults(), **params}
            if not train:
                params.update(_known(cached_tokenizer(full, base)))
                continue
            tok = tokenizer_for(full, base, node.get("id"))
            if isinstance(tok.inner, BPETokenizer):
                params["tokenizer_data"] = tok.inner.data
    return out


def build(params: dict, base: Path | None, node: str | None) -> Dataset:
    """The dataset of a ``sequence_pairs`` node with *params*."""
    tok: PairTokenizer | None = None
    if params["source"] == "dates":
        train, val, info = _dates(params, node)
        if params.get("tokenizer", "char") == "bpe":
            tok = pair_tokenizer(params, train, node)
            for a, b in train[:2000] + val:
                _check_dates_length(a, b, tok.length(a), tok.length(b), params, node)
    else:
        train, val, info, tok = _file(params, base, node)
    s, t = params["max_source_len"], params["max_target_len"]
    vocab: str | PairTokenizer = tok if tok is not None else params["vocab"]
    train_arrays = {k: frozen(v) for k, v in to_arrays(train, vocab, s, t).items()}
    val_arrays = {k: frozen(v) for k, v in to_arrays(val, vocab, s, t).items()} if val else {
        k: frozen(v[:0]) for k, v in train_arrays.items()}
    n_classes = classes_of(params)
    info = {**info, "examples": len(train) + len(val), "train": len(train), "val": len(val),
            "classes": n_classes, "vocab_size": n_classes,
            "tokenizer": params.get("tokenizer", "char"),
            "val_pairs": val, "seed": params["seed"],
            "ports": {k: [None, *v.shape[1:]] for k, v in train_arrays.items()}}
    if tok is not None and isinstance(tok.inner, BPETokenizer):
        info["tokenizer_data"] = tok.inner.data
        note = size_note(tok.inner.vocab_size, int(params.get("vocab_size", 512)))
        if note:
            info["note"] = note
    return Dataset(train_arrays, val_arrays, info)
