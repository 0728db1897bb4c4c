"""Optimizers (SGD, Adam, AdamW, RMSprop), learning-rate schedules and global-norm clipping.

Updates run as fused in-place kernels (:mod:`engine.kernels.optim`) whose arithmetic follows
``torch.optim`` step for step. Optimizer state is a flat dict of arrays keyed
``<param>.<slot>`` (``exp_avg``, ``exp_avg_sq``, ``momentum_buffer``, ``square_avg``) plus a
step counter, so it round-trips through safetensors checkpoints.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from engine.ops.kernel_choice import call_kernel

# Elements of one weight from which its update runs on Numba's two threads inside a step whose
# ops own both cores (below, the fork costs about what half the pass saves).
PARALLEL_MIN_ELEMENTS = 1 << 17


def _kernels():
    from engine.kernels import optim

    return optim


@dataclass
class Schedule:
    """Learning rate at a step: constant, step decay, or cosine with linear warm-up.

    Warm-up (nanoGPT / ``torch.optim.lr_scheduler.LinearLR`` with start factor 1/(w+1)):
    lr·(t+1)/(w+1) for t < w; then cosine from lr down to ``min_lr`` at ``total`` steps
    (``CosineAnnealingLR``). ``scale`` rescales the whole curve (hot edits of the rate).
    """

    kind: str = "constant"
    base_lr: float = 1e-3
    warmup: int = 0
    total: int = 1000
    min_lr: float = 0.0
    step_size: int = 100
    gamma: float = 0.1
    scale: float = 1.0

    def __call__(self, step: int) -> float:
        return self.scale * self._unscaled(step)

    def _unscaled(self, step: int) -> float:
        lr = self.base_lr
        if step < self.warmup:
            return lr * (step + 1) / (self.warmup + 1)
        if self.kind == "constant":
            return lr
        if self.kind == "step":
            return lr * self.gamma ** ((step - self.warmup) // max(1, self.step_size))
        span = max(1, self.total - self.warmup)
        progress = min(1.0, (step - self.warmup) / span)
        return self.min_lr + (lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def set_current(self, step: int, lr: float) -> None:
        """Rescale the schedule so that the rate at *step* equals *lr*."""
        base = self._unscaled(step)
        self.scale = lr / base if base > 0 else 1.0


@dataclass
class Optimizer:
    """One optimizer over named parameters, with its per-parameter state."""

    kind: str = "adamw"
    lr: float = 1e-3  # the rate passed to the next step (the schedule sets it)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    momentum: float = 0.0
    dampening: float = 0.0
    nesterov: bool = False
    alpha: float = 0.99
    decay_names: frozenset[str] = frozenset()  # parameters that receive weight decay
    step_count: int = 0
    state: dict[str, np.ndarray] = field(default_factory=dict)

    def _slot(self, name: str, slot: str, like: np.ndarray) -> np.ndarray:
        key = f"{name}.{slot}"
        buf = self.state.get(key)
        if buf is None or buf.shape != like.shape or buf.dtype != like.dtype:
            buf = np.zeros_like(like)
            self.state[key] = buf
        return buf

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray],
             grad_scale: float = 1.0, run: Callable | None = None) -> None:
        """Update *params* in place from *grads* (arrays must be C-contiguous).

        *grad_scale* < 1 (the clipping factor, :func:`clip_coefficient`) scales each gradient
        like ``clip_grad_norm_`` (SGD and RMSprop scale *grads* in place first; Adam and AdamW
        multiply each gradient as their kernel reads it and leave *grads* as they are);
        *run(fn, names)* may spread the per-parameter work over threads
        (:meth:`engine.train.batch_split.BatchSplit.run`)."""
        self.step_count += 1
        names = [n for n in params if grads.get(n) is not None]
        work = partial(self._update, params, grads, grad_scale, self.step_count)
        if run is None:
            work(names)
        else:
            run(work, names)

    def _update(self, params: dict, grads: dict, grad_scale: float, t: int,
                names: list[str]) -> None:
        k = _kernels()
        from engine.kernels import parallel
        from engine.ops import two_cores

        adam = self.kind in ("adam", "adamw")
        for name in names:
            p, g = params[name], grads[name]
            if grad_scale < 1.0 and not adam:  # Adam folds the factor into its one pass
                g *= grad_scale
            wd = self.weight_decay if name in self.decay_names else 0.0
            pf = p.reshape(-1)
            gf = np.ascontiguousarray(g, dtype=p.dtype).reshape(-1)
            # a large weight while the step's ops own both cores: its elements on two threads
            split = two_cores.owned_ways(pf.size, pf.size, PARALLEL_MIN_ELEMENTS) == 2
            if adam:
                m = self._slot(name, "exp_avg", p).reshape(-1)
                v = self._slot(name, "exp_avg_sq", p).reshape(-1)
                args = (pf, gf, m, v, float(self.lr), float(self.betas[0]),
                        float(self.betas[1]), float(self.eps), float(wd),
                        self.kind == "adamw", int(t), gf.dtype.type(min(grad_scale, 1.0)))
                if not (split and parallel.run(k.adam_update_parallel, args, pf.size, 2,
                                               pf.dtype)):
                    call_kernel(k.adam_update, *args)
            elif self.kind == "sgd":
                first = f"{name}.momentum_buffer" not in self.state
                buf = self._slot(name, "momentum_buffer", p).reshape(-1)
                sgd = (pf, gf, buf, float(self.lr), float(self.momentum),
                       float(self.dampening), float(wd), bool(self.nesterov), first)
                if not (split and parallel.run(k.sgd_update_parallel, sgd, pf.size, 2,
                                               pf.dtype)):
                    call_kernel(k.sgd_update, *sgd)
            elif self.kind == "rmsprop":
                sq = self._slot(name, "square_avg", p).reshape(-1)
                buf = self._slot(name, "momentum_buffer", p).reshape(-1)
                call_kernel(k.rmsprop_update, pf, gf, sq, buf, self.lr, self.alpha, self.eps,
                            wd, self.momentum)
            else:
                raise ValueError(f"unknown optimizer {self.kind!r}")


def squared_norm(grads: dict[str, np.ndarray]) -> float:
    """Σ‖g‖² over every gradient, accumulated in float64."""
    k = _kernels()
    total = 0.0
    for g in grads.values():
        total += call_kernel(k.sum_of_squares, np.ascontiguousarray(g).reshape(-1))
    return total


def global_norm(grads: dict[str, np.ndarray]) -> float:
    """√(Σ‖g‖²) over every gradient, accumulated in float64."""
    return math.sqrt(squared_norm(grads))


def clip_coefficient(norm: float, max_norm: float) -> float:
    """The factor ``torch.nn.utils.clip_grad_norm_`` scales gradients by (1: no clipping,
    also when *max_norm* is 0)."""
    return min(1.0, max_norm / (norm + 1e-6)) if max_norm > 0 else 1.0


def clip_by_global_norm(grads: dict[str, np.ndarray], max_norm: float) -> float:
    """Scale *grads* in place so their global norm is at most *max_norm* (like
    ``torch.nn.utils.clip_grad_norm_``); returns the norm before clipping."""
    norm = global_norm(grads)
    coef = clip_coefficient(norm, max_norm)
    if coef < 1.0:
        for g in grads.values():
            g *= coef
    return norm
