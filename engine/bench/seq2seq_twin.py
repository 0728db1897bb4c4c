"""The PyTorch twin of the seq2seq preset: the same encoder–decoder written with torch.nn, its
modules named like the graph's nodes so the engine's weights load by name, and a training
step on the same batches (cross-entropy ignoring padding, the trainer's optimizer).

Used by the float64 agreement tests and the ``seq2seq`` bench case.
"""

from __future__ import annotations

import numpy as np

from engine.bench.gpt_twin import twin_optimizer
from engine.sample.seq2seq import load_model

__all__ = ["build_twin", "twin_optimizer", "twin_step", "twin_loss", "twin_greedy"]


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


def build_twin(doc: dict, weights: dict[str, np.ndarray], dtype: str = "float32"):
    """A torch module equal to the seq2seq graph *doc*, loaded with *weights*."""
    torch = _torch()
    from torch import nn
    m = load_model(doc, weights)
    heads = m.encoder[0].heads
    v, c = m.weight("src_emb").shape
    ratio = m.encoder[0].weight("mlp.fc.weight").shape[0] // c
    encoder_cls, decoder_cls = _modules(heads)
    names = m.names

    class Seq2Seq(nn.Module):
        def __init__(self):
            super().__init__()
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


def twin_greedy(model, source: np.ndarray, keep: np.ndarray, steps: int) -> np.ndarray:
    """Greedy decoding by full recomputation each step (the twin has no cache): ids (B, n)."""
    torch = _torch()
    src, mask = torch.from_numpy(source), torch.from_numpy(keep)
    out = torch.ones((source.shape[0], 1), dtype=torch.int64)  # the begin token
    with torch.no_grad():
        for _ in range(steps):
            nxt = model(src, mask, out)[:, -1].argmax(-1, keepdim=True)
            out = torch.cat([out, nxt], dim=1)
    return out[:, 1:].numpy()
