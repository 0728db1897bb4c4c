"""Loading a data node's dataset: build it, split it, cache it.

:func:`load_dataset` builds the :class:`Dataset` of one data node — generated procedurally
(``classification_2d``, ``regression_1d``, ``shapes_images``; :mod:`engine.data.synthetic`),
bundled (``digits``), read from the user's files (``table_file``, ``image_folder``;
:mod:`engine.data.files`) or a text corpus (:mod:`engine.data.text_corpus`) — and splits it
deterministically into train and validation parts from the node's ``val_fraction`` and
``seed``. Batching lives in :mod:`engine.data.batching`.

Every problem a user can cause raises :class:`~engine.base.errors.WiregradError` naming the
node and the file. Arrays handed out are read-only: a cached dataset is shared by every caller.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.base.errors import WiregradError
from engine.data import files, sequence_pairs, synthetic, text_corpus
from engine.data.batching import Batcher, batcher_for, eval_batches_for, iterate_in_order
from engine.data.common import SPLIT, Dataset, frozen, resolve_path, seeded_rng

CACHE_SIZE = 8

# op name -> builder(params, base, node) -> (arrays, info), split here.
_BUILDERS: dict[str, Callable] = {**synthetic.BUILDERS, **files.BUILDERS}

# op name -> builder(params, base, node) -> Dataset, for sources with their own split.
DATASET_BUILDERS: dict[str, Callable] = {"text_corpus": text_corpus.build,
                                          "sequence_pairs": sequence_pairs.build}

__all__ = ["Batcher", "DATASET_BUILDERS", "Dataset", "batcher_for", "clear_cache",
           "eval_batches_for", "iterate_in_order", "load_dataset"]


# ------------------------------------------------------------------ loading + caching

_CACHE: OrderedDict[tuple, Dataset] = OrderedDict()


def load_dataset(op_name: str, params: dict, base_dir: Path | None = None,
                 node: str | None = None) -> Dataset:
    """The (cached) dataset of a data node of type *op_name* with *params*.

    Missing params take the op's defaults. Relative paths resolve against *base_dir* (the
    document's folder; the working directory when ``None``). Cached by op, canonical params,
    base folder and, for file sources, the file's size and modification time.
    """
    builder = _BUILDERS.get(op_name) or DATASET_BUILDERS.get(op_name)
    if builder is None:
        raise WiregradError(f"'{op_name}' is not a data source", node=node)
    params = {**_defaults(op_name), **params}
    base = Path(base_dir) if base_dir is not None else None
    key = (op_name, json.dumps(params, sort_keys=True, default=str), str(base or Path.cwd()),
           _stamp(params, base) if "path" in params else None)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    if op_name in DATASET_BUILDERS:
        dataset = builder(params, base, node)
    else:
        arrays, info = builder(params, base, node)
        dataset = _split(arrays, info, params, node)
    _CACHE[key] = dataset
    while len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    return dataset


def clear_cache() -> None:
    """Forget every cached dataset."""
    _CACHE.clear()


def _stamp(params: dict, base: Path | None) -> tuple | None:
    try:
        st = resolve_path(params.get("path", ""), base).stat()
    except (OSError, ValueError):
        return None
    return (st.st_size, st.st_mtime_ns)


def _split(arrays: dict[str, np.ndarray], info: dict, params: dict, node: str | None) -> Dataset:
    """Deterministic train/validation split from (val_fraction, seed); order is kept."""
    n = len(next(iter(arrays.values())))
    frac = float(params.get("val_fraction", 0.1))
    if not 0.0 <= frac < 1.0:
        raise WiregradError(f"val_fraction must lie in [0, 1), got {frac}", node=node,
                            field="val_fraction")
    n_val = int(round(n * frac))
    if frac > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    if n - n_val < 1:
        raise WiregradError(f"only {n} example(s): nothing left to train on", node=node)
    perm = seeded_rng(params.get("seed", 0), SPLIT).permutation(n)
    val_idx, train_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    train = {k: frozen(v[train_idx]) for k, v in arrays.items()}
    val = {k: frozen(v[val_idx]) for k, v in arrays.items()}
    info = {**info, "examples": n, "train": n - n_val, "val": n_val,
            "val_fraction": frac, "seed": int(params.get("seed", 0)),
            "ports": {k: [None, *v.shape[1:]] for k, v in arrays.items()}}
    info.setdefault("classes", None)
    return Dataset(train, val, info)


def _defaults(op_name: str) -> dict:
    """The data op's declared param defaults (the op registry loads on first use)."""
    from engine.core import registry

    return registry.get(op_name).defaults()
