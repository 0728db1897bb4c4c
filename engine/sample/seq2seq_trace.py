"""What the editor shows of one seq2seq decode: the output tokens with the probability the model
gave each (and its top alternatives), and the cross-attention of every decoder block and head
(rows = output tokens, columns = input characters, each row sums to 1).

The tokens come from the searches of :mod:`engine.sample.seq2seq_search` (greedy, beam search
or sampling); :func:`trace` then feeds them back through the decoder one step at a time (the
same KV-cached :func:`engine.sample.seq2seq.step`) to read the probabilities and the
cross-attention of each step. Plain data only: lists, floats, strings and numpy arrays.
"""

from __future__ import annotations

import codecs
from typing import Any

import numpy as np

from engine.ops.seq2seq import SPECIALS
from engine.sample.seq2seq import BOS, EOS, Model, encode, encode_texts, start, step, tokenizer_of
from engine.sample.seq2seq_search import _limit, beam_search, pick

END = "<end>"  # how the end token is shown


def token_text(model: Model, token: int) -> str:
    """The text of *token* (a character or a BPE piece), or a mark for the special tokens."""
    if token == EOS:
        return END
    if token < SPECIALS:
        return "<bos>" if token == BOS else "<pad>"
    return tokenizer_of(model).label(token)


class _Shown:
    """The text each output token adds, as the panel streams it: a BPE piece that ends inside
    a character shows nothing until the piece that completes it shows the whole character."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.bpe = tokenizer_of(model).kind != "char"
        self.utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token: int) -> str:
        if not self.bpe or token < SPECIALS:
            return token_text(self.model, token)
        return self.utf8.decode(tokenizer_of(self.model).token_bytes(token))


def _softmax(logits: np.ndarray, temperature: float) -> np.ndarray:
    z = logits.astype(np.float64) / (temperature if temperature > 0 else 1.0)
    e = np.exp(z - z.max())
    return e / e.sum()


def choose(model: Model, text: str, beam: int = 1, temperature: float = 0.0,
           top_k: int = 0, top_p: float = 1.0, seed: int = 0,
           max_tokens: int | None = None) -> list[int]:
    """Output token ids of *text* (ending with the end token when one was produced): greedy
    when *temperature* is 0 and *beam* is 1, beam search for *beam* > 1, else sampling."""
    if beam > 1:
        return beam_search(model, text, beam, max_tokens)[0].tokens
    source, mask = encode_texts(model, [text])
    state = start(model, encode(model, source, mask))
    rng = np.random.default_rng(seed)
    token, out = BOS, []
    for _ in range(_limit(model, max_tokens)):
        token = pick(step(model, state, np.array([token]))[0], rng, temperature, top_k, top_p)
        out.append(token)
        if token == EOS:
            break
    return out


def trace(model: Model, text: str, tokens: list[int], temperature: float = 0.0,
          alternatives: int = 5) -> dict:
    """Feed *tokens* after *text*'s encoding: per token its probability (softmax at
    *temperature*; the plain softmax when it is 0) and top alternatives, and the
    cross-attention maps ``{block id: (heads, len(tokens), len(text))}``."""
    source, mask = encode_texts(model, [text])
    n_in = source.shape[1]
    state = start(model, encode(model, source, mask))
    rows: list[dict] = []
    cross: list[list[np.ndarray]] = [[] for _ in model.decoder]
    previous = BOS
    shown = _Shown(model)
    for token in tokens:
        p = _softmax(step(model, state, np.array([previous]))[0], temperature)
        top = np.argsort(-p, kind="stable")[:alternatives]
        rows.append({"token": shown.push(int(token)), "id": int(token),
                     "p": float(p[int(token)]),
                     "alternatives": [(token_text(model, int(t)), float(p[t])) for t in top]})
        for i, probs in enumerate(state.cross_probs):
            cross[i].append(probs[0][:, :n_in])  # (H, S): the input's tokens
        previous = int(token)
    sites: list[Any] = list(model.decoder)  # blocks, or a graph's cross-attention sites
    maps = {b.prefix: (np.stack(c, axis=1) if c else
                       np.zeros((b.heads, 0, n_in)))
            for b, c in zip(sites, cross)}
    tok = tokenizer_of(model)
    output = tok.decode([int(t) for t in tokens])
    return {"input": text, "tokens": rows, "output": output,
            "input_tokens": [tok.label(int(i)) for i in source[0]], "cross_attention": maps}


def decode_trace(model: Model, text: str, beam: int = 1, temperature: float = 0.0,
                 top_k: int = 0, top_p: float = 1.0, seed: int = 0,
                 max_tokens: int | None = None) -> dict:
    """:func:`choose` the output of *text*, then :func:`trace` it."""
    tokens = choose(model, text, beam, temperature, top_k, top_p, seed, max_tokens)
    shown = temperature if beam == 1 else 0.0
    return trace(model, text, tokens, shown)
