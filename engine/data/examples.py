"""Example feeds: a few real examples for every data source of a program.

Used by gradient checks (:func:`engine.core.gradcheck.gradcheck_document` takes these as its
*feeds*) and anywhere a graph must run once on realistic data. Input nodes get random data
(labels within their ``high``); data sources contribute their first few examples — for text
sources, whose datasets hold token streams, the first validation windows.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.base.errors import WiregradError
from engine.core.gradcheck import input_feeds
from engine.core.program import Equation, Program
from engine.data.common import Dataset
from engine.data.datasets import load_dataset

WINDOWS = 2  # text windows are block_size tokens long: two are examples enough


def example_feeds(program: Program, seed: int = 0, sizes: dict | None = None,
                  base_dir: str | Path | None = None, examples: int = 8) -> dict:
    """Data for every input and data-source node of *program* (node path -> batch).

    Table and image sources give *examples* examples; text sources :data:`WINDOWS` windows.
    """
    feeds = input_feeds(program, seed, sizes)
    base = Path(base_dir) if base_dir else None
    for eq in program.equations:
        if eq.op.category == "data" and eq.op.name != "input":
            ds = load_dataset(eq.op.name, eq.params, base, node=eq.path)
            feeds[eq.path] = source_examples(ds, eq, examples)
    return feeds


def feeds_for(seed: int = 0, base_dir: str | Path | None = None,
              examples: int = 8) -> Callable[[Program], dict]:
    """A *feeds* callable for :func:`engine.core.gradcheck.gradcheck_document`."""
    return lambda program: example_feeds(program, seed, base_dir=base_dir, examples=examples)


def source_examples(ds: Dataset, eq: Equation, examples: int = 8) -> tuple[np.ndarray, ...]:
    """The first *examples* examples of *ds*, one array per output port of *eq*'s op.

    Sources with their own batching (text windows) give their first validation batch (of at
    most :data:`WINDOWS` windows); the others give the first training examples.
    """
    if ds.eval_batches is not None:
        batch = next(iter(ds.eval_batches(min(examples, WINDOWS), 1)), None)
        if batch is None:
            raise WiregradError("the data source gave no example batch", node=eq.path)
    else:
        batch = {k: v[:examples] for k, v in ds.train.items()}
    missing = [p.name for p in eq.op.outputs if p.name not in batch]
    if missing:
        raise WiregradError(f"the dataset has no examples for output port {missing[0]!r} "
                            f"(it holds: {', '.join(batch)})", node=eq.path, port=missing[0])
    return tuple(batch[p.name] for p in eq.op.outputs)
