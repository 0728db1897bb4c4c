"""Autoregressive sampling from any language model, one token at a time.

The model is the subgraph that produces the loss's prediction input from the text data node's
tokens. How it is decoded is chosen once (:mod:`engine.sample.paths`): incrementally where every
op declares an inference rule (a KV cache for attention, the state of recurrent cells), else by
recomputing a sliding or left-padded window for every token. With a KV cache, positions are
absolute, so when the context outgrows the block size the window slides: the cache is re-filled
("prefilled") from the most recent ``keep`` tokens (3/4 of a block by default) and generation
continues incrementally from there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from engine.base.errors import WiregradError
from engine.base.runtime import limited_blas
from engine.core.compile import compile_document
from engine.core.program import closure
from engine.core.run import Context, init_weights
from engine.data.tokenizers import StreamDecoder, tokenizer_for
from engine.sample import paths
from engine.sample.kvcache import Incremental
from engine.sample.rules import forward_of


@dataclass
class TokenInfo:
    """What the per-token callback receives."""

    token: str  # its label (a character, or a word piece's text)
    probability: float  # greedy (temperature 0): the model's probability at temperature 1
    alternatives: list[tuple[str, float]] = field(default_factory=list)  # top candidates
    id: int = -1  # its id in the tokenizer's vocabulary


class Sampler:
    """Runs a character-level language model token by token (see :mod:`engine.sample.paths`
    for the ways it may be decoded; ``decoding`` holds the one chosen)."""

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
        # The document's tokenizer (char: its vocab; bpe: its stored tokenizer_data).
        self.tokenizer = tokenizer_for(text.params, None, text.path)
        self.codec = self.tokenizer  # .vocab lists the tokens by id
        self.block_size = int(text.params["block_size"])
        self.tokens_value = text.outputs[0]
        logits_value = losses[0].inputs[0]
        if logits_value is None:
            raise WiregradError("the loss has no logits wired in", node=losses[0].top)
        self.logits_value: str = logits_value
        self.equations = [eq for eq in closure(self.program.equations, [self.logits_value])
                          if eq.path != text.path]
        producer = next((eq for eq in self.equations if self.logits_value in eq.outputs), None)
        self.logits_node = producer.top if producer is not None else losses[0].top
        if producer is None or not any(self.tokens_value in eq.inputs for eq in self.equations):
            raise WiregradError("the loss's logits do not depend on the text's tokens: there "
                                "is no model to sample from", node=losses[0].top)
        self.weights = init_weights(self.program.parameters, 0, self.dtype)
        self.state = init_weights(self.program.state, 0, self.dtype)
        if weights is not None:
            self._load(weights)
        self.pad = self.codec.vocab.index("\n") if "\n" in self.codec.vocab else 0
        self.decoding = paths.choose(self)
        self.window: list[int] = []  # the tokens the model's context currently holds

    @property
    def incremental(self) -> Incremental:
        """The per-token runner; refused for a model decoded by window recomputation."""
        if self.decoding.incremental is None:
            raise WiregradError(f"this model is not decoded incrementally: "
                                f"{self.decoding.reason}")
        return self.decoding.incremental

    @property
    def last_attention(self) -> dict[str, np.ndarray]:
        """Attention path → the newest query's attention probabilities (H, T_k); empty when
        the model is not decoded with a KV cache."""
        inc = self.decoding.incremental
        return inc.last_attention if inc is not None else {}

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

    def full_logits(self, ids) -> np.ndarray:
        """Logits (T, V) recomputed from scratch, every equation run (the reference). An error
        in the model names the node that raised it."""
        env: dict[str, np.ndarray] = {
            self.tokens_value: np.asarray(ids, dtype=np.int64)[None, :]}
        for eq in self.equations:
            ins = [env[v] if v is not None else None for v in eq.inputs]
            ctx = Context(eq, {k: self.weights[n] for k, n in eq.weights.items()},
                          {k: self.state[n] for k, n in eq.state.items()}, False, None, None,
                          self.dtype)
            try:
                outs = forward_of(eq)(ctx, eq.params, *ins)
            except WiregradError as e:
                if e.node is None:
                    e.node = eq.top
                raise
            env.update(zip(eq.outputs, outs if isinstance(outs, tuple) else (outs,)))
        return env[self.logits_value][0]

    def _window_logits(self) -> np.ndarray:
        """Next-token logits by recomputing the window (left-padded for a fixed length)."""
        ids = self.window
        if self.decoding.kind == "padded window":
            ids = [self.pad] * (self.block_size - len(ids)) + ids
        return self.full_logits(ids)[-1]

    def prefill(self, ids) -> np.ndarray:
        """Start the context with *ids* (the last block of them where the model is bounded);
        returns the last position's logits."""
        length = self.decoding.length
        ids = list(ids)[-length:] if length else list(ids)
        if not ids:
            raise WiregradError("the prompt is empty: give at least one character")
        self.window = ids
        if self.decoding.incremental is None:
            return self._window_logits()
        return self.decoding.incremental.run(np.asarray(ids, dtype=np.int64), 0)[-1]

    def advance(self, token: int, keep: int | None = None) -> np.ndarray:
        """Append *token*; slide the window when the block is full. Next-token logits."""
        length = self.decoding.length
        inc = self.decoding.incremental
        if inc is None:
            self.window = (self.window + [token])[-length:] if length else self.window + [token]
            return self._window_logits()
        if length and len(self.window) >= length:
            keep = keep or max(1, (3 * length) // 4)
            return self.prefill(self.window[-(keep - 1):] + [token])
        logits = inc.run(np.asarray([token]), len(self.window))
        self.window.append(token)
        return logits[-1]

    # ------------------------------------------------------------------ sampling

    def generate(self, prompt: str, n: int, *, temperature: float = 1.0, top_k: int = 0,
                 top_p: float = 1.0, seed: int = 0,
                 callback: Callable[[TokenInfo], None] | None = None,
                 blas_threads: int | None = None) -> Iterator[str]:
        """Yield the text of *n* tokens continuing *prompt*, one piece per token (a character;
        for BPE a word piece, or "" while a character split over tokens is incomplete).
        *blas_threads* caps BLAS while decoding (restored afterwards; None keeps the process's
        setting) — see :func:`limited_blas`."""
        if prompt == "":
            prompt = "\n"
        ids = self.tokenizer.encode(prompt, "the prompt")
        rng = np.random.default_rng(seed)
        label = self.tokenizer.label
        text = StreamDecoder(self.tokenizer)
        with limited_blas(blas_threads):
            logits = self.prefill(ids)
            for _ in range(n):
                probs = next_token_distribution(logits, temperature, top_k, top_p)
                token = int(np.argmax(probs)) if temperature == 0 else draw(probs, rng)
                if callback is not None:  # greedy shows the model's own distribution
                    shown = probs if temperature > 0 else next_token_distribution(logits)
                    top = np.argsort(-shown)[:5]
                    callback(TokenInfo(label(token), float(shown[token]),
                                       [(label(i), float(shown[i])) for i in top], token))
                yield text.push(token)
                logits = self.advance(token)


NORMAL, DIM, RESET = "\x1b[22m", "\x1b[2m", "\x1b[0m"  # ANSI: normal / faint intensity


def mark_pieces(pieces: Iterable[str], ansi: bool) -> Iterator[str]:
    """*pieces* (one per token) with the boundaries between them shown: alternately normal
    and dim (*ansi*, for a terminal; reset after the last) or with ``|`` between them. An
    empty piece (a character still incomplete after its first bytes) passes unmarked: the
    token that completes it carries the character."""
    count = 0
    for piece in pieces:
        if piece:
            mark = (DIM if count % 2 else NORMAL) if ansi else ("|" if count else "")
            piece, count = mark + piece, count + 1
        yield piece
    if ansi and count:
        yield RESET


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
