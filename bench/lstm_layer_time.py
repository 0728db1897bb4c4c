"""One LSTM layer's forward + backward (B=16, T=64, I=64, H=192, float32) against torch.nn.LSTM
with the same weights, the two taking turns, one thread: the before/after figures of the
"Recurrent layers" section of bench/RESULTS.md.

    python bench/lstm_layer_time.py REPO_ROOT    (a checkout, e.g. `git archive 04221cd | tar -x`)

Only the op's forward/backward are used, so it runs on every version of the lstm op.
"""

from __future__ import annotations

import statistics
import sys
import time

import numpy as np
import torch
from threadpoolctl import threadpool_limits

BATCH, STEPS, FEATURES, HIDDEN = 16, 64, 64, 192


class _Ctx:
    saved: tuple = ()
    eq = type("Eq", (), {"inputs": ["x", "weight_ih", "weight_hh", "bias_ih", "bias_hh"]})

    def save(self, *arrays) -> None:
        self.saved = arrays


def main(root: str) -> None:
    sys.path.insert(0, root)
    from engine.core import registry

    torch.set_num_threads(1)
    spec = registry.get("lstm")
    module = torch.nn.LSTM(FEATURES, HIDDEN, batch_first=True)
    weights = [p.detach().numpy().copy() for p in (module.weight_ih_l0, module.weight_hh_l0,
                                                   module.bias_ih_l0, module.bias_hh_l0)]
    x = np.random.default_rng(0).standard_normal((BATCH, STEPS, FEATURES)).astype(np.float32)
    grad = np.ones((BATCH, STEPS, HIDDEN), np.float32)
    ctx, tx = _Ctx(), torch.from_numpy(x).requires_grad_(True)

    def ours() -> None:
        spec.forward(ctx, {}, x, *weights)
        spec.backward(ctx, {}, grad, None, None)

    def theirs() -> None:
        module.zero_grad()
        y, _ = module(tx)
        y.backward(torch.from_numpy(grad))

    with threadpool_limits(limits=1):
        for fn in (ours, theirs, ours, theirs):
            fn()
        times: dict = {ours: [], theirs: []}
        for _ in range(8):
            for fn, acc in times.items():
                for _ in range(4):
                    t0 = time.perf_counter()
                    fn()
                    acc.append((time.perf_counter() - t0) * 1e3)
    w, t = statistics.median(times[ours]), statistics.median(times[theirs])
    print(f"{root}: wiregrad {w:.1f} ms  torch {t:.1f} ms  ratio {w / t:.2f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
