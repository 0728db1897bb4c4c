"""The PyTorch twin of the seq2seq preset: the same encoder–decoder written with torch.nn, its
modules named like the graph's nodes so the engine's weights load by name, and a training
step on the same batches (cross-entropy ignoring padding, the trainer's optimizer).

Greedy decoding comes two ways: :class:`TwinDecoder` decodes as a competent PyTorch user would
(the encoder once per input, the cross-attention K/V of its output computed once per decoder
block, a self-attention KV cache grown one token at a time, the engine's greedy rule) — the
``seq2seq_decode`` bench case times that; :func:`twin_greedy_recompute` recomputes the whole
prefix each step (the reference the cached decoder is checked against).

Used by the float64 agreement tests and the ``seq2seq_step`` / ``seq2seq_decode`` bench cases.
"""

from __future__ import annotations

import numpy as np

from engine.base.errors import WiregradError
from engine.bench.gpt_twin import twin_optimizer
from engine.sample.seq2seq import BOS, EOS, Seq2SeqModel, load_model

__all__ = ["TwinDecoder", "build_twin", "twin_greedy", "twin_greedy_recompute", "twin_loss",
           "twin_optimizer", "twin_step"]


def _torch():
    import torch

    return torch


def _modules(heads: int):
    torch = _torch()
    from torch import nn

    F = torch.nn.functional

    class Attention(nn.Module):
        def __init__(self, c: int, causal: bool):
            super().__init__()
            self.q_proj, self.kv_proj = nn.Linear(c, c), nn.Linear(c, 2 * c)
            self.proj, self.causal = nn.Linear(c, c), causal

        def forward(self, query, key_value, keep=None):  # (B, Tq, C), (B, Tk, C), (B, Tk)
            b, tq, c = query.shape
            q = self.q_proj(query).view(b, tq, heads, c // heads).transpose(1, 2)
            k, v = self.kv_proj(key_value).split(c, dim=2)
            k, v = (t.view(b, -1, heads, c // heads).transpose(1, 2) for t in (k, v))
            mask = None if keep is None else (keep != 0)[:, None, None, :]
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=self.causal)
            return self.proj(y.transpose(1, 2).reshape(b, tq, c))

    class MLP(nn.Module):
        def __init__(self, c: int, ratio: int):
            super().__init__()
            self.fc, self.proj = nn.Linear(c, ratio * c), nn.Linear(ratio * c, c)

        def forward(self, x):
            return self.proj(F.gelu(self.fc(x)))

    class Encoder(nn.Module):
        def __init__(self, c: int, ratio: int):
            super().__init__()
            self.ln1, self.attn = nn.LayerNorm(c), Attention(c, False)
            self.ln2, self.mlp = nn.LayerNorm(c), MLP(c, ratio)

        def forward(self, x, keep):
            h = self.ln1(x)
            x = x + self.attn(h, h, keep)
            return x + self.mlp(self.ln2(x))

    class Decoder(nn.Module):
        def __init__(self, c: int, ratio: int):
            super().__init__()
            self.ln1, self.self_attn = nn.LayerNorm(c), Attention(c, True)
            self.ln2, self.cross_attn = nn.LayerNorm(c), Attention(c, False)
            self.ln3, self.mlp = nn.LayerNorm(c), MLP(c, ratio)

        def forward(self, x, memory, keep):
            h = self.ln1(x)
            x = x + self.self_attn(h, h)
            x = x + self.cross_attn(self.ln2(x), memory, keep)
            return x + self.mlp(self.ln3(x))

    return Encoder, Decoder


def _structured(doc: dict, weights: dict[str, np.ndarray]) -> Seq2SeqModel:
    """The preset-shaped reading of *doc* (the twin mirrors that structure), or a clear error."""
    m = load_model(doc, weights)
    if not isinstance(m, Seq2SeqModel):
        raise WiregradError("the PyTorch twin is written for graphs shaped like the "
                            "seq2seq_dates preset", field="nodes")
    return m


def build_twin(doc: dict, weights: dict[str, np.ndarray], dtype: str = "float32"):
    """A torch module equal to the seq2seq graph *doc*, loaded with *weights*."""
    torch = _torch()
    from torch import nn
    m = _structured(doc, weights)
    heads = m.encoder[0].heads
    v, c = m.weight("src_emb").shape
    ratio = m.encoder[0].weight("mlp.fc.weight").shape[0] // c
    encoder_cls, decoder_cls = _modules(heads)
    names = m.names

    class Seq2Seq(nn.Module):
        def __init__(self):
            super().__init__()
            self.names, self.heads = names, heads  # read by TwinDecoder
            self.enc_ids = [b.prefix for b in m.encoder]
            self.dec_ids = [b.prefix for b in m.decoder]
            for role, (rows, width) in (("src_emb", (v, c)), ("tgt_emb", (v, c)),
                                        ("src_pos", (m.src_len, c)),
                                        ("tgt_pos", (m.max_steps, c))):
                self.add_module(names[role], nn.Embedding(rows, width))
            for b in m.encoder:
                self.add_module(b.prefix, encoder_cls(c, ratio))
            for b in m.decoder:
                self.add_module(b.prefix, decoder_cls(c, ratio))
            self.add_module(names["enc_ln"], nn.LayerNorm(c))
            self.add_module(names["dec_ln"], nn.LayerNorm(c))
            self.add_module(names["head"], nn.Linear(c, v))

        def forward(self, source, keep, target_in):  # (B, S), (B, S), (B, T) -> (B, T, V)
            get = self.get_submodule
            s, t = source.shape[1], target_in.shape[1]
            x = (get(names["src_emb"])(source)
                 + self.get_parameter(f"{names['src_pos']}.weight")[:s])
            for b in m.encoder:
                x = get(b.prefix)(x, keep)
            memory = get(names["enc_ln"])(x)
            y = (get(names["tgt_emb"])(target_in)
                 + self.get_parameter(f"{names['tgt_pos']}.weight")[:t])
            for b in m.decoder:
                y = get(b.prefix)(y, memory, keep)
            return get(names["head"])(get(names["dec_ln"])(y))

    model = Seq2Seq().to(getattr(torch, dtype))
    state = {k: torch.from_numpy(np.array(weights[k], dtype=dtype))
             for k in model.state_dict()}
    model.load_state_dict(state)
    return model


def _batch(batch: dict):
    torch = _torch()
    return tuple(torch.from_numpy(np.array(batch[k]))  # a copy: dataset arrays are read-only
                 for k in ("source", "source_mask", "target_in", "target_out"))


def twin_loss(model, batch: dict):
    """Mean cross-entropy over the labelled target positions (padding ignored)."""
    torch = _torch()
    source, keep, target_in, target_out = _batch(batch)
    logits = model(source, keep, target_in)
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                             target_out.reshape(-1), ignore_index=-100)


def twin_step(model, opt, sched, batch: dict, clip: float) -> float:
    """One training step of the twin on a Wiregrad batch; returns the loss."""
    torch = _torch()
    loss = twin_loss(model, batch)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    sched.step()
    return float(loss.detach())


def twin_greedy_recompute(model, source: np.ndarray, keep: np.ndarray,
                          steps: int) -> np.ndarray:
    """Greedy decoding by full recomputation each step (no cache): ids (B, steps)."""
    torch = _torch()
    src, mask = torch.from_numpy(source), torch.from_numpy(keep)
    out = torch.ones((source.shape[0], 1), dtype=torch.int64)  # the begin token
    with torch.no_grad():
        for _ in range(steps):
            nxt = model(src, mask, out)[:, -1].argmax(-1, keepdim=True)
            out = torch.cat([out, nxt], dim=1)
    return out[:, 1:].numpy()


class TwinDecoder:
    """Cached greedy decoding with a :func:`build_twin` model: :meth:`encode` runs the encoder
    and each decoder block's cross-attention K/V projection once; :meth:`step` feeds one token
    per row through the decoder, appending its self-attention K/V to the cache."""

    def __init__(self, model) -> None:
        self.torch = _torch()
        self.model = model
        get = model.get_submodule
        self.blocks = [get(i) for i in model.dec_ids]
        self.encoders = [get(i) for i in model.enc_ids]
        self.src_emb, self.tgt_emb = get(model.names["src_emb"]), get(model.names["tgt_emb"])
        self.src_pos = get(model.names["src_pos"]).weight
        self.tgt_pos = get(model.names["tgt_pos"]).weight
        self.enc_ln, self.dec_ln = get(model.names["enc_ln"]), get(model.names["dec_ln"])
        self.head = get(model.names["head"])
        self.heads = model.heads
        self.cross: list = []
        self.cache: list = []
        self.mask = None
        self.position = 0

    def _split(self, x):  # (B, T, C) -> (B, H, T, D)
        b, t, c = x.shape
        return x.view(b, t, self.heads, c // self.heads).transpose(1, 2)

    def encode(self, source, keep) -> None:
        """Encode *source* (B, S) ids with *keep* (B, S); resets the decoder's cache."""
        x = self.src_emb(source) + self.src_pos[:source.shape[1]]
        for enc in self.encoders:
            x = enc(x, keep)
        memory = self.enc_ln(x)
        c = memory.shape[-1]
        self.cross = [tuple(self._split(t) for t in blk.cross_attn.kv_proj(memory).split(c, 2))
                      for blk in self.blocks]
        self.mask = (keep != 0)[:, None, None, :]  # (B, 1, 1, S)
        self.cache = [None] * len(self.blocks)
        self.position = 0

    def step(self, tokens):
        """Logits (B, V) after feeding *tokens* (B,) at the next position."""
        F = self.torch.nn.functional
        x = (self.tgt_emb(tokens) + self.tgt_pos[self.position])[:, None, :]  # (B, 1, C)
        b, _, c = x.shape
        for i, blk in enumerate(self.blocks):
            sa = blk.self_attn
            h = blk.ln1(x)
            q = self._split(sa.q_proj(h))
            k, v = (self._split(t) for t in sa.kv_proj(h).split(c, 2))
            if self.cache[i] is not None:
                k = self.torch.cat([self.cache[i][0], k], dim=2)
                v = self.torch.cat([self.cache[i][1], v], dim=2)
            self.cache[i] = (k, v)
            y = F.scaled_dot_product_attention(q, k, v)  # the newest query sees every key
            x = x + sa.proj(y.transpose(1, 2).reshape(b, 1, c))
            ca = blk.cross_attn
            q = self._split(ca.q_proj(blk.ln2(x)))
            ck, cv = self.cross[i]
            y = F.scaled_dot_product_attention(q, ck, cv, attn_mask=self.mask)
            x = x + ca.proj(y.transpose(1, 2).reshape(b, 1, c))
            x = x + blk.mlp(blk.ln3(x))
        self.position += 1
        return self.head(self.dec_ln(x[:, 0]))

    def greedy(self, source: np.ndarray, keep: np.ndarray, steps: int) -> np.ndarray:
        """The engine's greedy rule (:func:`engine.sample.seq2seq_search.greedy`): a row that
        has produced the end token keeps producing it; stops when every row has, or after
        *steps* tokens. Ids (B, ≤ steps)."""
        torch = self.torch
        with torch.inference_mode():
            self.encode(torch.from_numpy(source), torch.from_numpy(keep))
            tokens = torch.full((source.shape[0],), BOS, dtype=torch.int64)
            done = torch.zeros(source.shape[0], dtype=torch.bool)
            out = []
            for _ in range(min(steps, self.tgt_pos.shape[0])):
                tokens = torch.where(done, EOS, self.step(tokens).argmax(-1))
                out.append(tokens)
                done |= tokens == EOS
                if bool(done.all()):
                    break
            return torch.stack(out, dim=1).numpy()


def twin_greedy(model, source: np.ndarray, keep: np.ndarray, steps: int) -> np.ndarray:
    """Cached greedy decoding of a batch with the twin (:class:`TwinDecoder`): ids (B, ≤ steps)."""
    return TwinDecoder(model).greedy(source, keep, steps)
