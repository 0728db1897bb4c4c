"""Search over a seq2seq model's decoder: greedy (the default), beam search, and sampling
with temperature / top-k / top-p; plus the numbers a user cares about on validation pairs —
exact-match sequence accuracy by greedy decoding and the character error rate.

Every search encodes each input once (:func:`engine.sample.seq2seq.encode`) and stops a
sequence at the end token or after ``max_tokens``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.base.errors import WiregradError
from engine.sample.seq2seq import (
    BOS,
    EOS,
    Model,
    encode,
    encode_texts,
    start,
    step,
    tokenizer_of,
)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def to_text(model: Model, ids) -> str:
    """The detokenized text of *ids* up to the end token (characters, or BPE pieces joined)."""
    return tokenizer_of(model).decode(ids)


def _limit(model: Model, max_tokens: int | None) -> int:
    n = model.max_steps if max_tokens is None else int(max_tokens)
    if n < 1:
        raise WiregradError("-n (the most output tokens) must be at least 1", field="-n")
    return min(n, model.max_steps)


def greedy(model: Model, source: np.ndarray, mask: np.ndarray,
           max_tokens: int | None = None) -> tuple[np.ndarray, list]:
    """Greedy decoding of a batch: (ids (B, ≤n) ending at EOS or n, per-step logits)."""
    n = _limit(model, max_tokens)
    state = start(model, encode(model, source, mask))
    tokens = np.full(source.shape[0], BOS, np.int64)
    done = np.zeros(source.shape[0], bool)
    out, trace = [], []
    for _ in range(n):
        logits = step(model, state, tokens)
        trace.append(logits)
        tokens = np.where(done, EOS, logits.argmax(-1))
        out.append(tokens)
        done |= tokens == EOS
        if done.all():
            break
    return np.stack(out, axis=1), trace


def pick(logits: np.ndarray, rng: np.random.Generator, temperature: float = 1.0,
         top_k: int = 0, top_p: float = 1.0) -> int:
    """One token drawn from *logits* (V,) like the GPT sampler: temperature, then the top-k
    largest, then the smallest set whose probability reaches top-p."""
    if temperature <= 0:
        return int(np.argmax(logits))
    z = logits.astype(np.float64) / temperature
    order = np.argsort(-z, kind="stable")
    keep = order[:top_k] if top_k and top_k > 0 else order
    p = np.exp(z[keep] - z[keep].max())
    p /= p.sum()
    if top_p < 1.0:
        cut = int(np.searchsorted(np.cumsum(p), top_p) + 1)
        keep, p = keep[:cut], p[:cut] / p[:cut].sum()
    return int(keep[rng.choice(len(keep), p=p)])


def sample(model: Model, text: str, rng: np.random.Generator, temperature: float = 1.0,
           top_k: int = 0, top_p: float = 1.0, max_tokens: int | None = None) -> str:
    """One output for *text*, sampled token by token."""
    source, mask = encode_texts(model, [text])
    state = start(model, encode(model, source, mask))
    token, out = BOS, []
    for _ in range(_limit(model, max_tokens)):
        token = pick(step(model, state, np.array([token]))[0], rng, temperature, top_k, top_p)
        if token == EOS:
            break
        out.append(token)
    return to_text(model, out)


@dataclass
class Hypothesis:
    tokens: list[int]
    score: float  # sum of log-probabilities
    done: bool = False


def beam_search(model: Model, text: str, beam: int,
                max_tokens: int | None = None) -> list[Hypothesis]:
    """The *beam* best outputs of *text* by total log-probability, best first.

    With ``beam == 1`` this is greedy decoding. A hypothesis ends at the end token (which
    counts in its score); the search stops when the best ``beam`` are all finished.
    """
    if beam < 1:
        raise WiregradError("--beam must be at least 1", field="--beam")
    source, mask = encode_texts(model, [text])
    state = start(model, encode(model, source, mask))
    live = [Hypothesis([], 0.0)]
    finished: list[Hypothesis] = []
    for _ in range(_limit(model, max_tokens)):
        last = np.array([h.tokens[-1] if h.tokens else BOS for h in live])
        logp = _log_softmax(step(model, state, last))  # (len(live), V)
        cand = [(live[r].score + float(logp[r, t]), r, int(t))
                for r in range(len(live)) for t in np.argsort(-logp[r], kind="stable")[:beam]]
        cand.sort(key=lambda c: -c[0])  # stable: ties keep the lower row, then token rank
        rows, nxt = [], []
        for score, r, t in cand[:beam]:
            h = Hypothesis(live[r].tokens + [t], score, t == EOS)
            if h.done:
                finished.append(h)
            else:
                rows.append(r)
                nxt.append(h)
        finished.sort(key=lambda h: -h.score)
        live = nxt
        # Scores only fall as tokens are added: a live hypothesis cannot overtake these.
        if not live or (len(finished) >= beam and finished[beam - 1].score >= live[0].score):
            break
        state = state.select(np.array(rows))
    best = sorted(finished + live, key=lambda h: -h.score)
    return best[:beam]


def translate(model: Model, texts: list[str], beam: int = 1,
              max_tokens: int | None = None) -> list[str]:
    """The output of each input (greedy in one batch, or beam search one by one)."""
    if beam == 1:
        source, mask = encode_texts(model, texts)
        ids, _ = greedy(model, source, mask, max_tokens)
        return [to_text(model, row) for row in ids]
    return [to_text(model, beam_search(model, t, beam, max_tokens)[0].tokens) for t in texts]


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance between *a* and *b*."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        cur = [i]
        for j, cb in enumerate(b, start=1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def evaluate_pairs(model: Model, pairs: list[tuple[str, str]],
                   batch: int = 250) -> dict:
    """Greedy decoding of every (source, target) pair: exact-match accuracy, character error
    rate (edits / target characters) and the outputs."""
    outputs: list[str] = []
    for i in range(0, len(pairs), batch):
        outputs += translate(model, [a for a, _ in pairs[i:i + batch]])
    exact = sum(o == b for o, (_, b) in zip(outputs, pairs))
    edits = sum(edit_distance(o, b) for o, (_, b) in zip(outputs, pairs))
    chars = sum(len(b) for _, b in pairs)
    return {"pairs": len(pairs), "exact_match": exact / max(len(pairs), 1),
            "cer": edits / max(chars, 1), "outputs": outputs}
