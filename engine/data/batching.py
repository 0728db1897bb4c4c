"""Batching: reproducible shuffled mini-batches and in-order evaluation batches.

:class:`Batcher` deals out shuffled mini-batches whose position can be saved in a checkpoint
and resumed exactly; :func:`iterate_in_order` walks a split for evaluation. Sources that batch
differently (text windows) set ``make_batcher`` / ``eval_batches`` on their
:class:`~engine.data.common.Dataset`; :func:`batcher_for` and :func:`eval_batches_for` choose.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from engine.base.errors import WiregradError
from engine.data.common import Dataset


def batcher_for(ds: Dataset, batch_size: int, seed: int):
    """The training batcher of *ds* (shuffled examples unless the source says otherwise)."""
    if ds.make_batcher is not None:
        return ds.make_batcher(batch_size, seed)
    return Batcher(ds.train, batch_size, seed)


def eval_batches_for(ds: Dataset, batch_size: int, max_batches: int = 0) -> Iterator[dict]:
    """Deterministic validation batches of *ds*."""
    if ds.eval_batches is not None:
        return ds.eval_batches(batch_size, max_batches)
    return iterate_in_order(ds.val, batch_size, max_batches)


class Batcher:
    """Deterministic shuffled mini-batches over a dict of equally long arrays.

    Epoch *e* visits the examples in the order ``permutation(seed, e)``, so the whole batch
    sequence follows from ``(seed, epoch, position)``: that is what :meth:`state` saves. The
    last batch of an epoch is smaller unless ``drop_last``.
    """

    def __init__(self, arrays: dict[str, np.ndarray], batch_size: int, seed: int,
                 shuffle: bool = True, drop_last: bool = False) -> None:
        if not arrays:
            raise ValueError("Batcher needs at least one array")
        lengths = {k: len(v) for k, v in arrays.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"arrays differ in length: {lengths}")
        self.arrays = arrays
        self.n = next(iter(lengths.values()))
        if self.n == 0:
            raise WiregradError("the dataset has no examples to batch")
        if batch_size < 1:
            raise WiregradError(f"batch_size must be at least 1, got {batch_size}")
        if drop_last and batch_size > self.n:
            raise WiregradError(f"batch_size {batch_size} is larger than the {self.n} examples "
                                "and drop_last would drop them all")
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.epoch = 0
        self._pos = 0
        self._perm = self._order()

    def _order(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.n)
        return np.random.default_rng([self.seed & 0xFFFFFFFF, self.epoch]).permutation(self.n)

    def next(self) -> dict[str, np.ndarray]:
        """The next batch; wraps into a freshly shuffled epoch when this one is used up."""
        idx = self._perm[self._pos:self._pos + self.batch_size]
        self._pos += len(idx)
        remaining = self.n - self._pos
        if remaining == 0 or (self.drop_last and remaining < self.batch_size):
            self.epoch += 1
            self._pos = 0
            self._perm = self._order()
        return {k: v[idx] for k, v in self.arrays.items()}

    __next__ = next

    def __iter__(self) -> Batcher:
        return self

    def state(self) -> dict:
        """JSON-able position: enough for :meth:`set_state` to continue identically."""
        return {"version": 1, "n": self.n, "seed": self.seed, "epoch": self.epoch,
                "position": self._pos, "shuffle": self.shuffle, "batch_size": self.batch_size}

    def set_state(self, state: dict) -> None:
        """Continue from a saved :meth:`state` (the data must have as many examples)."""
        try:
            n, seed, epoch, pos = (int(state[k]) for k in ("n", "seed", "epoch", "position"))
            shuffle = bool(state.get("shuffle", self.shuffle))
        except (KeyError, TypeError, ValueError) as exc:
            raise WiregradError(f"malformed batcher state: {exc}", field="batcher") from None
        if n != self.n:
            raise WiregradError(f"the saved batch position is for {n} examples but the data "
                                f"now has {self.n}", field="batcher")
        if not (0 <= pos < self.n and epoch >= 0):
            raise WiregradError(f"saved batch position {pos} / epoch {epoch} is out of range",
                                field="batcher")
        self.seed, self.epoch, self._pos, self.shuffle = seed, epoch, pos, shuffle
        self._perm = self._order()


def iterate_in_order(arrays: dict[str, np.ndarray], batch_size: int,
                     max_batches: int = 0) -> Iterator[dict[str, np.ndarray]]:
    """Consecutive batches in stored order (for evaluation); ``max_batches`` 0 means all."""
    n = len(next(iter(arrays.values()))) if arrays else 0
    batch_size = max(int(batch_size), 1)
    for i, start in enumerate(range(0, n, batch_size)):
        if max_batches and i >= max_batches:
            return
        yield {k: v[start:start + batch_size] for k, v in arrays.items()}
