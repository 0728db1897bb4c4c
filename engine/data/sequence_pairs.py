"""The ``sequence_pairs`` dataset: (source, target) character pairs as padded id arrays.

Builds what the ``sequence_pairs`` node (:mod:`engine.ops.seq2seq`) feeds — ``source``,
``source_mask``, ``target_in``, ``target_out`` — from the generated dates task
(:mod:`engine.data.dates`) or a UTF-8 TSV file of ``source<TAB>target`` lines. Every problem
in a file raises :class:`~engine.base.errors.WiregradError` naming the line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.base.errors import WiregradError
from engine.data import dates
from engine.data.common import MAX_FILE_BYTES, SPLIT, Dataset, frozen, resolve_path, seeded_rng
from engine.ops.seq2seq import BOS, EOS, IGNORE, PAD, SPECIALS, classes


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


def to_arrays(pairs: list[tuple[str, str]], vocab: str, s: int, t: int) -> dict:
    """Padded arrays of *pairs*; targets get the begin / end tokens (T = *t* + 1)."""
    n = len(pairs)
    index = {c: i + SPECIALS for i, c in enumerate(vocab)}
    src = np.full((n, s), PAD, np.int64)
    tin = np.full((n, t + 1), PAD, np.int64)
    tout = np.full((n, t + 1), IGNORE, np.int64)
    for row, (a, b) in enumerate(pairs):
        src[row, :len(a)] = [index[c] for c in a]
        ids = [index[c] for c in b]
        tin[row, 0] = BOS
        tin[row, 1:len(ids) + 1] = ids
        tout[row, :len(ids)] = ids
        tout[row, len(ids)] = EOS
    mask = (np.arange(s)[None, :] < np.array([len(a) for a, _ in pairs])[:, None])
    return {"source": src, "source_mask": mask.astype(np.float32), "target_in": tin,
            "target_out": tout}


def _dates(params: dict, node: str | None) -> tuple[list, list, dict]:
    train, val = dates.generate(params["n_train"], params["n_val"], params["seed"])
    vocab = params["vocab"]
    for a, b in train[:2000] + val:
        missing = sorted(set(a + b) - set(vocab))
        if missing:
            raise WiregradError(f"'vocab' lacks the characters {''.join(missing)!r} the dates "
                                "task writes", node=node, field="vocab")
        if len(a) > params["max_source_len"] or len(b) > params["max_target_len"]:
            raise WiregradError(f"'{a}' → '{b}' is longer than max_source_len / "
                                "max_target_len", node=node, field="max_source_len")
    return train, val, {"description": f"dates: {len(train):,} training pairs, "
                                       f"{len(val):,} held-out calendar dates"}


def read_pairs(path: Path, params: dict, node: str | None) -> tuple[list, int]:
    """``(pairs, skipped)`` from a TSV file; errors name the line."""
    if not path.is_file():
        raise WiregradError(f"no such file: {path}", node=node, field="path")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise WiregradError(f"{path} is larger than {MAX_FILE_BYTES // 1024**3} GiB",
                            node=node, field="path")
    vocab, known = params["vocab"], set(params["vocab"])
    s, t = params["max_source_len"], params["max_target_len"]
    pairs, skipped = [], 0
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            where = f"{path.name}, line {number}"
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                raise WiregradError(f"{where}: not UTF-8 text", node=node,
                                    field="path") from None
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) != 2:
                raise WiregradError(f"{where}: expected source<TAB>target, found "
                                    f"{len(parts) - 1} tab(s)", node=node, field="path")
            a, b = parts
            bad = sorted(set(a + b) - known)
            if bad:
                raise WiregradError(f"{where}: characters {''.join(bad)!r} are not in 'vocab' "
                                    f"({len(vocab)} characters)", node=node, field="vocab")
            if len(a) > s or len(b) > t:
                if params["too_long"] == "refuse":
                    raise WiregradError(f"{where}: pair of {len(a)} → {len(b)} characters is "
                                        f"longer than max_source_len {s} / max_target_len {t}",
                                        node=node, field="max_source_len")
                skipped += 1
                continue
            pairs.append((a, b))
    if len(pairs) < 2:
        raise WiregradError(f"{path.name}: {len(pairs)} usable pair(s) ({skipped} too long); "
                            "at least 2 are needed", node=node, field="path")
    return pairs, skipped


def _file(params: dict, base: Path | None, node: str | None) -> tuple[list, list, dict]:
    if not params["path"]:
        raise WiregradError("choose a TSV file of source<TAB>target pairs", node=node,
                            field="path")
    path = resolve_path(params["path"], base)
    pairs, skipped = read_pairs(path, params, node)
    n = len(pairs)
    n_val = min(max(int(round(n * params["val_fraction"])), 1 if params["val_fraction"] else 0),
                n - 1)
    perm = seeded_rng(params["seed"], SPLIT).permutation(n)
    val = [pairs[i] for i in np.sort(perm[:n_val])]
    train = [pairs[i] for i in np.sort(perm[n_val:])]
    return train, val, {"skipped": skipped,
                        "description": f"{path.name}: {n:,} pairs ({skipped:,} too long, "
                                       "skipped)"}


def build(params: dict, base: Path | None, node: str | None) -> Dataset:
    """The dataset of a ``sequence_pairs`` node with *params*."""
    maker = _dates if params["source"] == "dates" else None
    train, val, info = maker(params, node) if maker else _file(params, base, node)
    s, t = params["max_source_len"], params["max_target_len"]
    vocab = params["vocab"]
    train_arrays = {k: frozen(v) for k, v in to_arrays(train, vocab, s, t).items()}
    val_arrays = {k: frozen(v) for k, v in to_arrays(val, vocab, s, t).items()} if val else {
        k: frozen(v[:0]) for k, v in train_arrays.items()}
    info = {**info, "examples": len(train) + len(val), "train": len(train), "val": len(val),
            "classes": classes(vocab), "vocab_size": classes(vocab),
            "val_pairs": val, "seed": params["seed"],
            "ports": {k: [None, *v.shape[1:]] for k, v in train_arrays.items()}}
    return Dataset(train_arrays, val_arrays, info)
