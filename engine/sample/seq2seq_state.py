"""What decoding an encoder–decoder graph carries from step to step
(:class:`engine.sample.seq2seq_graph.GraphSeq2Seq`): the encoder's memory, the per-row caches
and the cross-attention sites, plus the attention weights the editor's map shows."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class CrossSite:
    """One attention whose keys/values come from the memory (a cross-attention map)."""

    prefix: str  # how the map is named (the block, or the attention layer's path)
    heads: int
    masked: bool
    path: str = ""  # the attention equation


@dataclass
class GraphMemory:
    """The encoder's output for a batch: the values the decoder reads, and the source mask."""

    keep: np.ndarray  # (B, S)
    env: dict[str, np.ndarray]


@dataclass
class GraphState:
    """A batch being decoded: the memory, the self-attention caches (incremental) or the
    tokens so far (full recomputation), and the next position."""

    memory: GraphMemory
    # per equation: (keys, values) of a self-attention, or a recurrent cell's last states;
    # every array has the batch first
    caches: dict[str, tuple[np.ndarray, ...]] = field(default_factory=dict)
    tokens: np.ndarray | None = None  # (B, t) fed so far (full recomputation)
    position: int = 0
    cross_probs: list[np.ndarray] = field(default_factory=list)  # last step, per cross site
    batch_axes: dict[str, int | None] = field(default_factory=dict)

    def select(self, rows: np.ndarray) -> GraphState:
        """The state of the given batch rows (beam search reorders its hypotheses)."""
        env = {k: _rows(v, rows, self.batch_axes.get(k)) for k, v in self.memory.env.items()}
        caches = {k: tuple(a[rows] for a in v) for k, v in self.caches.items()}
        tokens = self.tokens[rows] if self.tokens is not None else None
        return GraphState(GraphMemory(self.memory.keep[rows], env), caches, tokens,
                          self.position, [], self.batch_axes)


def _rows(value: np.ndarray, rows: np.ndarray, axis: int | None) -> np.ndarray:
    return value if axis is None else np.take(value, rows, axis=axis)


def _probs(q: np.ndarray, k: np.ndarray, keep: np.ndarray | None, scale) -> np.ndarray:
    """Softmax weights (B, H, Tq, Tk) of *q* over *k* (padded keys hidden; no key → zeros)."""
    s = (q @ np.swapaxes(k, -1, -2)) * (scale or 1.0 / np.sqrt(q.shape[-1]))
    if keep is not None:
        s = np.where(np.asarray(keep).reshape(keep.shape[0], 1, 1, -1) != 0, s, -np.inf)
    m = s.max(-1, keepdims=True)
    e = np.exp(s - np.where(np.isneginf(m), 0.0, m))
    tot = e.sum(-1, keepdims=True)
    return e / np.where(tot == 0, 1.0, tot)
