"""A PyTorch twin of the char-GPT preset, for side-by-side learning and speed comparisons.

The twin reads its configuration from the document, takes Wiregrad's initial weights by the
same names (``wte``, ``pos_emb.weight``, ``block1.attn.qkv.weight`` …), and trains with the
same AdamW decay set, schedule, clipping and batch sequence. Needs the ``torch`` extra.
"""

from __future__ import annotations

import math

import numpy as np

from engine.base.errors import MissingExtraError


def _torch():
    try:
        import torch
    except ImportError:
        raise MissingExtraError("torch", "torch") from None
    return torch


def gpt_config(doc: dict) -> dict:
    """Layers, heads, width, vocabulary and block size of a char-GPT-shaped document."""
    nodes = {n["id"]: n for n in doc["nodes"]}
    blocks = sorted((n for n in doc["nodes"] if n["type"] == "TransformerBlock"),
                    key=lambda n: int(n["id"].removeprefix("block")))
    first = blocks[0]["params"]
    return {
        "layers": len(blocks),
        "heads": first["num_heads"],
        "width": first["embed_dim"],
        "vocab": nodes["wte"]["params"]["shape"][0],
        "block_size": nodes["pos_emb"]["params"]["block_size"],
        "mlp_ratio": first.get("mlp_ratio", 4),
    }


def build_twin(doc: dict, weights: dict[str, np.ndarray], dtype: str = "float32"):
    """An ``nn.Module`` equal to the preset's model, holding copies of *weights*."""
    torch = _torch()
    from torch import nn
    F = torch.nn.functional
    cfg = gpt_config(doc)
    C, H = cfg["width"], cfg["heads"]

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv = nn.Linear(C, 3 * C, bias=False)
            self.proj = nn.Linear(C, C, bias=False)

        def forward(self, x):  # (B, T, C)
            B, T, _ = x.shape
            q, k, v = self.qkv(x).split(C, dim=2)
            q, k, v = (t.view(B, T, H, C // H).transpose(1, 2) for t in (q, k, v))  # (B,H,T,D)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.proj(y.transpose(1, 2).reshape(B, T, C))

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(C, cfg["mlp_ratio"] * C, bias=False)
            self.proj = nn.Linear(cfg["mlp_ratio"] * C, C, bias=False)

        def forward(self, x):
            return self.proj(F.gelu(self.fc(x)))  # exact GELU

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1 = nn.LayerNorm(C, bias=False)
            self.attn = Attention()
            self.ln2 = nn.LayerNorm(C, bias=False)
            self.mlp = MLP()

        def forward(self, x):
            x = x + self.attn(self.ln1(x))
            return x + self.mlp(self.ln2(x))

    class PositionalEmbedding(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.zeros(cfg["block_size"], C))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Parameter(torch.zeros(cfg["vocab"], C))
            self.pos_emb = PositionalEmbedding()
            for i in range(1, cfg["layers"] + 1):
                self.add_module(f"block{i}", Block())
            self.ln_f = nn.LayerNorm(C, bias=False)

        def forward(self, idx):  # (B, T) -> logits (B, T, V)
            T = idx.shape[1]
            x = self.wte[idx] + self.pos_emb.weight[:T]
            for i in range(1, cfg["layers"] + 1):
                x = getattr(self, f"block{i}")(x)
            return self.ln_f(x) @ self.wte.T

    model = GPT().to(getattr(torch, dtype))
    state = {k: torch.from_numpy(np.array(v, dtype=dtype)) for k, v in weights.items()
             if k in model.state_dict()}
    missing = set(model.state_dict()) - set(state)
    if missing:
        raise KeyError(f"weights lack {sorted(missing)[:3]}")
    model.load_state_dict(state)
    return model


def twin_optimizer(model, opt_params: dict, schedule):
    """The trainer's optimizer (AdamW / Adam / SGD with momentum or Nesterov / RMSprop) over
    the twin's parameters, weight decay on 2-D+ weights only, with its learning-rate schedule."""
    torch = _torch()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": opt_params["weight_decay"]},
              {"params": no_decay, "weight_decay": 0.0}]
    algorithm, lr = opt_params.get("algorithm", "adamw"), opt_params["lr"]
    if algorithm == "sgd":
        opt = torch.optim.SGD(groups, lr=lr, momentum=opt_params["momentum"],
                              nesterov=bool(opt_params["nesterov"]))
    elif algorithm == "rmsprop":
        opt = torch.optim.RMSprop(groups, lr=lr, alpha=opt_params["alpha"],
                                  eps=opt_params["eps"], momentum=opt_params["momentum"])
    else:
        cls = torch.optim.Adam if algorithm == "adam" else torch.optim.AdamW
        opt = cls(groups, lr=lr, betas=(opt_params["beta1"], opt_params["beta2"]),
                  eps=opt_params["eps"])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: schedule(t) / lr)
    return opt, sched


def twin_step(model, opt, sched, batch: dict, clip: float) -> float:
    """One training step of the twin on a Wiregrad batch; returns the loss."""
    torch = _torch()
    tokens = torch.from_numpy(batch["tokens"])
    targets = torch.from_numpy(batch["targets"])
    logits = model(tokens)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                             targets.reshape(-1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    sched.step()
    return float(loss.detach())


def twin_eval(model, batches) -> float:
    """Mean validation loss over Wiregrad's validation batches (weighted by size)."""
    torch = _torch()
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in batches:
            logits = model(torch.from_numpy(batch["tokens"]))
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]),
                torch.from_numpy(batch["targets"]).reshape(-1))
            n = batch["tokens"].shape[0]
            total += float(loss) * n
            count += n
    return total / max(1, count)


def perplexity(loss: float) -> float:
    return math.exp(loss)


def twin_step_for(trainer, doc: dict):
    """The PyTorch twin of *trainer*'s GPT *doc*, as a no-argument step: the trainer's
    initial weights, its optimizer, schedule and clipping, and a copy of its batcher (so both
    sides see the same batches)."""
    import copy

    torch = _torch()
    model = build_twin(doc, {**trainer.params, **trainer.state})
    opt, sched = twin_optimizer(model, trainer.graph.optimizer_params, trainer.schedule)
    shadow = copy.deepcopy(next(iter(trainer.batchers.values())))
    clip = trainer.clip_norm
    torch.manual_seed(0)
    return lambda: twin_step(model, opt, sched, shadow.next(), clip)
