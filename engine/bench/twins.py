"""PyTorch counterparts for ``wiregrad bench``: the spiral MLP and shapes CNN as ``nn.Module``
twins loaded with Wiregrad's initial weights, their train step, and char-GPT sampling with a
PyTorch KV cache running the same algorithm as :class:`engine.sample.sampler.Sampler` (prefill, one
token at a time, the same sliding window and the same next-token rule).

Needs the ``torch`` extra; imported only by :mod:`engine.bench.benchmark`.
"""

from __future__ import annotations

import numpy as np

from engine.bench.gpt_twin import _torch
from engine.sample.sampler import draw, next_token_distribution


def load_weights(model, weights: dict[str, np.ndarray], dtype: str,
                 rename: dict[str, str]) -> None:
    """Copy Wiregrad *weights* into *model*'s state dict (names mapped through *rename*)."""
    torch = _torch()
    state = model.state_dict()
    for name, value in weights.items():
        key = rename.get(name, name)
        if key in state:
            state[key] = torch.from_numpy(np.array(value, dtype=dtype))
    model.load_state_dict(state)


def mlp_twin(weights: dict[str, np.ndarray], dtype: str = "float32"):
    """Linear(2→64) → ReLU → Linear(64→3), the spiral preset."""
    torch = _torch()
    from torch import nn

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(2, 64)
            self.fc2 = nn.Linear(64, 3)

        def forward(self, x):  # (N, 2) -> (N, 3)
            return self.fc2(torch.relu(self.fc1(x)))

    model = MLP().to(getattr(torch, dtype))
    load_weights(model, weights, dtype, {})
    return model


def cnn_twin(weights: dict[str, np.ndarray], channels=(8, 16), size: int = 16,
             classes: int = 4, dtype: str = "float32"):
    """Two Conv2d(3×3, pad 1) → BatchNorm2d → ReLU → MaxPool2d(2) stages, Flatten, Linear."""
    torch = _torch()
    from torch import nn
    c1, c2 = channels

    class CNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, c1, 3, padding=1)
            self.bn1 = nn.BatchNorm2d(c1)
            self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
            self.bn2 = nn.BatchNorm2d(c2)
            self.fc = nn.Linear(c2 * (size // 4) ** 2, classes)

        def forward(self, x):  # (N, 1, S, S) -> (N, classes)
            x = torch.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 2)
            x = torch.max_pool2d(torch.relu(self.bn2(self.conv2(x))), 2)
            return self.fc(x.flatten(1))

    model = CNN().to(getattr(torch, dtype))
    rename = {f"bn{i}.norm.running_{s}": f"bn{i}.running_{s}" for i in (1, 2)
              for s in ("mean", "var")}
    load_weights(model, weights, dtype, rename)
    return model


def classifier_step(model, opt, sched, batch: dict, ports: list[str]) -> float:
    """One cross-entropy training step on a Wiregrad batch ``{inputs, labels}``."""
    torch = _torch()
    x = torch.from_numpy(batch[ports[0]])
    labels = torch.from_numpy(batch[ports[1]])
    loss = torch.nn.functional.cross_entropy(model(x), labels)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()
    return float(loss.detach())


class TorchSampler:
    """KV-cache generation with a :func:`engine.bench.gpt_twin.build_twin` model, the algorithm of
    :class:`engine.sample.sampler.Sampler`: keys and values are appended per token, and when the
    context reaches the block size the cache is refilled from the last 3/4 block."""

    def __init__(self, model, block_size: int, heads: int) -> None:
        self.torch = _torch()
        self.model = model
        self.block_size = block_size
        self.heads = heads
        self.blocks = [m for n, m in model.named_children() if n.startswith("block")]
        self.cache: list = []
        self.window: list[int] = []

    def _run(self, ids: list[int], past: int):
        torch = self.torch
        F = torch.nn.functional
        m = self.model
        idx = torch.tensor([ids], dtype=torch.long)
        T = len(ids)
        x = m.wte[idx] + m.pos_emb.weight[past:past + T]  # (1, T, C)
        C = x.shape[-1]
        H = self.heads
        for i, blk in enumerate(self.blocks):
            q, k, v = blk.attn.qkv(blk.ln1(x)).split(C, dim=2)
            q, k, v = (t.view(1, T, H, C // H).transpose(1, 2) for t in (q, k, v))
            if past:
                k_old, v_old = self.cache[i]
                k = torch.cat([k_old, k], dim=2)
                v = torch.cat([v_old, v], dim=2)
                self.cache[i] = (k, v)
            else:
                self.cache.append((k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=past == 0 and T > 1)
            x = x + blk.attn.proj(y.transpose(1, 2).reshape(1, T, C))
            x = x + blk.mlp(blk.ln2(x))
        return (m.ln_f(x[:, -1]) @ m.wte.T)[0]

    def prefill(self, ids: list[int]):
        ids = list(ids)[-self.block_size:]
        self.cache = []
        logits = self._run(ids, 0)
        self.window = ids
        return logits

    def advance(self, token: int):
        if len(self.window) >= self.block_size:
            keep = max(1, (3 * self.block_size) // 4)
            return self.prefill(self.window[-(keep - 1):] + [token])
        logits = self._run([token], len(self.window))
        self.window.append(token)
        return logits

    def generate(self, ids: list[int], n: int, temperature: float = 0.8, seed: int = 0):
        """Token ids of *n* sampled continuations (same rule and RNG use as the Sampler)."""
        rng = np.random.default_rng(seed)
        out = []
        with self.torch.inference_mode():
            logits = self.prefill(ids)
            for _ in range(n):
                probs = next_token_distribution(logits.numpy(), temperature)
                token = draw(probs, rng)
                out.append(token)
                logits = self.advance(token)
        return out
