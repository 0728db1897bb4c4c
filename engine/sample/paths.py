"""Which way a language model is decoded, chosen once per model.

Any graph that maps a window of token ids (B, T) to next-token logits (B, T, V) can be sampled:

* **incremental** — every op that sees the tokens declares an inference rule
  (:data:`engine.sample.rules.RULES`): each new token costs one position's work. Attention keeps
  a KV cache (the kind is then ``kv-cache``; positions are bounded by the block size and the
  window slides when it is full), recurrent cells carry their state (``recurrent``; the context
  is unbounded), everything else is position-wise (``incremental``);
* **window** — otherwise the whole window is recomputed for every token: the most recent
  ``block_size`` tokens, or, for a model built for exactly ``block_size`` positions (an RNN
  unrolled by hand, a flatten over time), a window left-padded to that length (``padded
  window``; the pad is the newline character when the vocabulary has one, else id 0).

The incremental claim is checked once against full recomputation on a short probe sequence;
if it disagrees the window path is taken and the reason kept (``wiregrad sample --verbose``
prints it). A graph that cannot run at all on its block of tokens is refused naming the node.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.base.errors import WiregradError
from engine.sample.kvcache import Incremental

Sampler = Any  # engine.sample.sampler.Sampler, which imports this module

PROBE_LENGTH = 5


@dataclass(frozen=True)
class Decoding:
    """The chosen path: ``kind`` is ``kv-cache``, ``recurrent``, ``incremental``, ``window``
    or ``padded window``; ``length`` the most positions the model sees at once (None: no
    limit); ``reason`` why this path was taken."""

    kind: str
    length: int | None
    reason: str
    incremental: Incremental | None = None

    def describe(self) -> str:
        limit = f"{self.length} positions" if self.length else "unbounded context"
        return f"{self.kind} ({limit}): {self.reason}"


def probe_ids(vocab_size: int, n: int) -> np.ndarray:
    """A fixed, varied token sequence for checking a decoding path."""
    return (np.arange(n, dtype=np.int64) * 7 + 1) % max(vocab_size, 1)


def choose(sampler: Sampler) -> Decoding:
    """The decoding path of *sampler*'s model (see the module docstring)."""
    try:
        inc = Incremental(sampler.equations, sampler.tokens_value, sampler.logits_value,
                          sampler.weights, sampler.state, sampler.block_size, sampler.dtype)
    except WiregradError as e:
        return _window(sampler, f"not incremental: {e}")
    kinds = set(inc.kinds.values())
    kind = ("kv-cache" if "kv-cache" in kinds else
            "recurrent" if "recurrent" in kinds else "incremental")
    length = sampler.block_size if inc.bounded else None
    disagreement = _check(sampler, inc, min(PROBE_LENGTH, length or PROBE_LENGTH))
    if disagreement:
        return _window(sampler, f"not incremental: {disagreement}")
    what = {"kv-cache": "causal attention keeps its keys and values",
            "recurrent": "recurrent cells carry their state from token to token",
            "incremental": "every op treats each position on its own"}[kind]
    return Decoding(kind, length, f"{what}; one position's work per token", inc)


def _check(sampler: Sampler, inc: Incremental, n: int) -> str:
    """'' when decoding token by token equals full recomputation on a probe, else why not."""
    ids = probe_ids(len(sampler.codec.vocab), n)
    try:
        steps = [inc.run(ids[: max(1, n - 2)], 0)[-1]]
        steps += [inc.run(ids[i:i + 1], i)[-1] for i in range(max(1, n - 2), n)]
        full = sampler.full_logits(ids)
    except WiregradError as e:
        return f"token-by-token decoding failed ({e})"
    except (ValueError, IndexError) as e:
        return f"token-by-token decoding failed ({e})"
    expected = full[max(1, n - 2) - 1:]
    got = np.stack(steps)
    if got.shape != expected.shape:
        return f"token-by-token logits have shape {list(got.shape)}, not {list(expected.shape)}"
    scale = max(1.0, float(np.abs(expected).max()))
    diff = float(np.abs(got - expected).max())
    tol = 1e-3 if sampler.dtype == np.float32 else 1e-8
    if diff > tol * scale:
        return (f"token-by-token logits differ from full recomputation by {diff:.3g}: an op "
                f"mixes positions in a way no rule covers")
    return ""


def _window(sampler: Sampler, why: str) -> Decoding:
    """Full recomputation: a sliding window if shorter inputs work, else a padded one."""
    block = sampler.block_size
    vocab = len(sampler.codec.vocab)
    shorter = max(1, block - 1)
    variable = False
    if shorter < block:
        try:
            variable = sampler.full_logits(probe_ids(vocab, shorter)).shape[0] == shorter
        except (WiregradError, ValueError, IndexError):
            variable = False
    logits = sampler.full_logits(probe_ids(vocab, block))  # errors name the node
    if logits.ndim != 2 or logits.shape != (block, vocab):
        raise WiregradError(
            f"the logits have shape {list(logits.shape)} for a window of {block} tokens; "
            f"sampling needs one row of {vocab} logits per position", node=sampler.logits_node)
    if variable:
        return Decoding("window", block, f"{why}; the last {block} tokens are recomputed "
                                         f"for every new token")
    return Decoding("padded window", block,
                    f"{why}; the model takes exactly {block} positions, so the window is "
                    f"left-padded and recomputed for every new token")
