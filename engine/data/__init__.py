"""Datasets of the data nodes: building, splitting, caching and batching.

``from engine.data import load_dataset`` is the usual entry point; see
:mod:`engine.data.datasets` for the sources and :mod:`engine.data.batching` for batching.
"""

from engine.data.batching import batcher_for, eval_batches_for
from engine.data.common import Dataset
from engine.data.datasets import clear_cache, load_dataset

__all__ = ["Dataset", "batcher_for", "clear_cache", "eval_batches_for", "load_dataset"]
