"""Autoregressive sampling with a KV cache, one character at a time.

The model is the subgraph that produces the loss's prediction input. Each attention op keeps
the keys and values of the positions already seen, so a new token costs one position's work.
Positions are absolute, so when the context outgrows the block size the window slides: the
cache is re-filled ("prefilled") from the most recent ``keep`` tokens (3/4 of a block by
default) and generation continues incrementally from there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from engine.base.errors import WiregradError
from engine.base.runtime import limited_blas
from engine.core.compile import compile_document
from engine.core.program import closure
from engine.core.run import Context, init_weights
from engine.data.text import Codec
from engine.sample.kvcache import Incremental


@dataclass
class TokenInfo:
    """What the per-token callback receives."""

    token: str
    probability: float
    alternatives: list[tuple[str, float]] = field(default_factory=list)  # top candidates


class Sampler:
    """Runs a character-level language model incrementally."""

    def __init__(self, doc: dict, weights: dict[str, np.ndarray] | None,
                 dtype: str = "float32") -> None:
        self.program = compile_document(doc, dtype)
        self.dtype = np.dtype(dtype)
        text_nodes = [eq for eq in self.program.equations if eq.op.name == "text_corpus"]
        losses = [eq for eq in self.program.equations if eq.op.category == "loss"]
        if not text_nodes or not losses:
            raise WiregradError("sampling needs a text_corpus data node and a loss whose first "
                                "input is the model's logits")
        text = text_nodes[0]
        self.codec = Codec(text.params["vocab"])
        self.block_size = int(text.params["block_size"])
        self.tokens_value = text.outputs[0]
        self.logits_value = losses[0].inputs[0]
        self.equations = [eq for eq in closure(self.program.equations, [self.logits_value])
                          if eq.path != text.path]
        self.weights = init_weights(self.program.parameters, 0, self.dtype)
        self.state = init_weights(self.program.state, 0, self.dtype)
        if weights is not None:
            self._load(weights)
        self.window: list[int] = []  # token ids the cache currently holds
        self._incremental: Incremental | None = None  # built on first cached run

    @property
    def incremental(self) -> Incremental:
        """The per-token runner (weights folded in when it is first needed)."""
        if self._incremental is None:
            self._incremental = Incremental(self.equations, self.tokens_value,
                                            self.logits_value, self.weights, self.state,
                                            self.block_size, self.dtype)
        return self._incremental

    @property
    def last_attention(self) -> dict[str, np.ndarray]:
        """Attention path → the newest query's attention probabilities (H, T_k)."""
        return self.incremental.last_attention

    def _load(self, weights: dict[str, np.ndarray]) -> None:
        for store in (self.weights, self.state):
            for name in store:
                if name not in weights:
                    if store is self.weights:
                        raise WiregradError(f"the weights lack '{name}'",
                                            node=name.split(".")[0])
                    continue
                if tuple(weights[name].shape) != store[name].shape:
                    raise WiregradError(f"weight '{name}' has shape {list(weights[name].shape)}"
                                        f", the graph needs {list(store[name].shape)}")
                store[name] = np.ascontiguousarray(weights[name], dtype=self.dtype)

    # ------------------------------------------------------------------ model runs

    def _run(self, ids: np.ndarray, past: int, use_cache: bool) -> np.ndarray:
        """Logits (T, V) for *ids* (T,) placed at positions past…past+T−1."""
        if use_cache:
            return self.incremental.run(ids, past)
        env: dict[str, np.ndarray] = {self.tokens_value: ids[None, :].astype(np.int64)}
        for eq in self.equations:  # the plain path: every equation, nothing cached
            params = eq.params
            if eq.op.name == "positions":
                params = {**params, "offset": past}
            ins = [env[v] if v is not None else None for v in eq.inputs]
            ctx = Context(eq, {k: self.weights[n] for k, n in eq.weights.items()},
                          {k: self.state[n] for k, n in eq.state.items()}, False, None, None,
                          self.dtype)
            outs = eq.op.forward(ctx, params, *ins)
            if not isinstance(outs, tuple):
                outs = (outs,)
            env.update(zip(eq.outputs, outs))
        return env[self.logits_value][0]

    def full_logits(self, ids) -> np.ndarray:
        """Logits (T, V) recomputed from scratch without the cache (the reference)."""
        return self._run(np.asarray(ids, dtype=np.int64), 0, use_cache=False)

    def prefill(self, ids) -> np.ndarray:
        """Fill the cache with *ids* (at most a block); returns the last position's logits."""
        ids = list(ids)[-self.block_size:]
        if not ids:
            raise WiregradError("the prompt is empty: give at least one character")
        logits = self._run(np.asarray(ids, dtype=np.int64), 0, use_cache=True)
        self.window = ids
        return logits[-1]

    def advance(self, token: int, keep: int | None = None) -> np.ndarray:
        """Append *token*; slide the window when the block is full. Next-token logits."""
        if len(self.window) >= self.block_size:
            keep = keep or max(1, (3 * self.block_size) // 4)
            return self.prefill(self.window[-(keep - 1):] + [token])
        logits = self._run(np.asarray([token]), len(self.window), use_cache=True)
        self.window.append(token)
        return logits[-1]

    # ------------------------------------------------------------------ sampling

    def generate(self, prompt: str, n: int, *, temperature: float = 1.0, top_k: int = 0,
                 top_p: float = 1.0, seed: int = 0,
                 callback: Callable[[TokenInfo], None] | None = None,
                 blas_threads: int | None = None) -> Iterator[str]:
        """Yield *n* characters continuing *prompt*. *blas_threads* caps BLAS while decoding
        (restored afterwards; None keeps the process's setting) — see :func:`limited_blas`."""
        if prompt == "":
            prompt = "\n"
        ids = self.codec.encode(prompt, "the prompt")
        rng = np.random.default_rng(seed)
        with limited_blas(blas_threads):
            logits = self.prefill(ids)
            for _ in range(n):
                probs = next_token_distribution(logits, temperature, top_k, top_p)
                token = int(np.argmax(probs)) if temperature == 0 else draw(probs, rng)
                char = self.codec.vocab[token]
                if callback is not None:
                    top = np.argsort(-probs)[:5]
                    callback(TokenInfo(char, float(probs[token]),
                                       [(self.codec.vocab[i], float(probs[i])) for i in top]))
                yield char
                logits = self.advance(token)


def draw(probs: np.ndarray, rng: np.random.Generator) -> int:
    """``rng.choice(len(probs), p=probs)`` — the same index from the same random stream —
    without its validation of *probs* (ours always sum to 1): 26 → 9 µs per token."""
    cdf = np.cumsum(probs)
    cdf /= cdf[-1]
    return int(cdf.searchsorted(rng.random(), side="right"))


def next_token_distribution(logits: np.ndarray, temperature: float = 1.0, top_k: int = 0,
                            top_p: float = 1.0) -> np.ndarray:
    """Softmax of logits/temperature restricted to the top-k and the top-p nucleus (float64)."""
    logits = np.asarray(logits, dtype=np.float64)
    if temperature < 0 or not 0 < top_p <= 1 or top_k < 0:
        raise WiregradError("temperature ≥ 0, 0 < top-p ≤ 1 and top-k ≥ 0 are required")
    if temperature == 0:
        out = np.zeros_like(logits)
        out[int(np.argmax(logits))] = 1.0
        return out
    z = logits / temperature
    keep = np.ones(z.shape, dtype=bool)
    if top_k and top_k < len(z):
        kth = np.partition(z, -top_k)[-top_k]
        keep &= z >= kth
    z = np.where(keep, z, -np.inf)
    probs = np.exp(z - z.max())
    probs /= probs.sum()
    if top_p < 1.0:
        order = np.argsort(-probs, kind="stable")
        cumulative = np.cumsum(probs[order])
        cut = int(np.searchsorted(cumulative, top_p)) + 1  # smallest set reaching top_p
        nucleus = np.zeros_like(keep)
        nucleus[order[:cut]] = True
        probs = np.where(nucleus, probs, 0.0)
        probs /= probs.sum()
    return probs
