"""Optimizers and schedules match torch.optim step for step (float64, 10 steps)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.kernels import optim as kernels
from engine.train.optim import Optimizer, Schedule, clip_by_global_norm, global_norm

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

SHAPES = {"w": (4, 3), "b": (3,)}
CASES = {
    "sgd": (dict(kind="sgd", lr=0.1), lambda ps: torch.optim.SGD(ps, lr=0.1)),
    "sgd_momentum_wd": (
        dict(kind="sgd", lr=0.05, momentum=0.9, weight_decay=0.01),
        lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=0.01)),
    "sgd_nesterov": (
        dict(kind="sgd", lr=0.05, momentum=0.8, nesterov=True),
        lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.8, nesterov=True)),
    "adam": (dict(kind="adam", lr=0.01, betas=(0.9, 0.99), weight_decay=0.02),
             lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.9, 0.99), weight_decay=0.02)),
    "adamw": (dict(kind="adamw", lr=0.01, betas=(0.9, 0.99), weight_decay=0.1),
              lambda ps: torch.optim.AdamW(ps, lr=0.01, betas=(0.9, 0.99), weight_decay=0.1)),
    "rmsprop": (dict(kind="rmsprop", lr=0.01, alpha=0.9, weight_decay=0.01),
                lambda ps: torch.optim.RMSprop(ps, lr=0.01, alpha=0.9, weight_decay=0.01)),
    "rmsprop_momentum": (
        dict(kind="rmsprop", lr=0.01, momentum=0.5),
        lambda ps: torch.optim.RMSprop(ps, lr=0.01, momentum=0.5)),
}


def _grads(step, rng_seed=0):
    rng = np.random.default_rng(rng_seed + step)
    return {k: rng.standard_normal(s) for k, s in SHAPES.items()}


@pytest.mark.parametrize("name", list(CASES))
def test_optimizer_matches_torch(name):
    ours_kwargs, make_torch = CASES[name]
    rng = np.random.default_rng(42)
    init = {k: rng.standard_normal(s) for k, s in SHAPES.items()}
    params = {k: v.copy() for k, v in init.items()}
    # decay applies to the 2-D weight only (biases never decay), as the trainer sets it.
    opt = Optimizer(**ours_kwargs, decay_names=frozenset({"w"}))
    tw = torch.tensor(init["w"], requires_grad=True)
    tb = torch.tensor(init["b"], requires_grad=True)
    wd = ours_kwargs.get("weight_decay", 0.0)
    groups = [{"params": [tw]}, {"params": [tb], "weight_decay": 0.0}]
    topt = make_torch(groups)
    for group in topt.param_groups[:1]:
        group["weight_decay"] = wd
    for step in range(10):
        g = _grads(step)
        opt.step(params, g)
        tw.grad, tb.grad = torch.tensor(g["w"]), torch.tensor(g["b"])
        topt.step()
        np.testing.assert_allclose(params["w"], tw.detach().numpy(), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(params["b"], tb.detach().numpy(), rtol=1e-12, atol=1e-14)


def _torch_lrs(scheduler_factory, steps, base_lr=0.1):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=base_lr)
    sched = scheduler_factory(opt)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_step_schedule_matches_torch():
    ours = Schedule(kind="step", base_lr=0.1, step_size=3, gamma=0.5)
    theirs = _torch_lrs(lambda o: torch.optim.lr_scheduler.StepLR(o, 3, 0.5), 10)
    np.testing.assert_allclose([ours(t) for t in range(10)], theirs, rtol=1e-12)


def test_cosine_schedule_matches_torch():
    ours = Schedule(kind="cosine", base_lr=0.1, total=20, min_lr=0.01)
    theirs = _torch_lrs(
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=20, eta_min=0.01), 20)
    np.testing.assert_allclose([ours(t) for t in range(20)], theirs, rtol=1e-10)


def test_cosine_with_warmup_matches_torch():
    w, total = 5, 30
    ours = Schedule(kind="cosine", base_lr=0.1, warmup=w, total=total, min_lr=0.01)

    def factory(o):
        warm = torch.optim.lr_scheduler.LinearLR(o, start_factor=1 / (w + 1), end_factor=1.0,
                                                 total_iters=w)
        cos = torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=total - w, eta_min=0.01)
        return torch.optim.lr_scheduler.SequentialLR(o, [warm, cos], milestones=[w])

    theirs = _torch_lrs(factory, total)
    np.testing.assert_allclose([ours(t) for t in range(total)], theirs, rtol=1e-10)


def test_hot_edit_rescales_the_schedule():
    s = Schedule(kind="cosine", base_lr=0.1, warmup=10, total=100, min_lr=0.01)
    before_next = s(51)
    s.set_current(50, 0.02)
    assert s(50) == pytest.approx(0.02)
    assert s(51) == pytest.approx(before_next * 0.02 / Schedule(
        kind="cosine", base_lr=0.1, warmup=10, total=100, min_lr=0.01)(50))


def test_clipping_matches_torch():
    rng = np.random.default_rng(0)
    grads = {k: rng.standard_normal(s) * 10 for k, s in SHAPES.items()}
    tensors = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in SHAPES.values()]
    for t, g in zip(tensors, grads.values()):
        t.grad = torch.tensor(g)
    total = torch.nn.utils.clip_grad_norm_(tensors, 1.0)
    norm = clip_by_global_norm(grads, 1.0)
    assert norm == pytest.approx(float(total), rel=1e-12)
    for t, g in zip(tensors, grads.values()):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-12)
    assert global_norm(grads) == pytest.approx(1.0, rel=1e-5)


def test_kernels_equal_numpy_twins():
    rng = np.random.default_rng(1)
    n = 1000
    for dtype in (np.float32, np.float64):
        tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12)
        base = [rng.standard_normal(n).astype(dtype) for _ in range(4)]
        a = [x.copy() for x in base]
        b = [x.copy() for x in base]
        kernels.adam_update(a[0], a[1], a[2], np.abs(a[3]), 1e-3, 0.9, 0.99, 1e-8, 0.1, True, 3)
        kernels.adam_update_ref(b[0], b[1], b[2], np.abs(b[3]), 1e-3, 0.9, 0.99, 1e-8, 0.1,
                                True, 3)
        np.testing.assert_allclose(a[0], b[0], **tol)
        a = [x.copy() for x in base]
        b = [x.copy() for x in base]
        kernels.sgd_update(a[0], a[1], a[2], 0.1, 0.9, 0.0, 0.01, True, False)
        kernels.sgd_update_ref(b[0], b[1], b[2], 0.1, 0.9, 0.0, 0.01, True, False)
        np.testing.assert_allclose(a[0], b[0], **tol)
        sq_a, sq_b = np.abs(base[3]).copy(), np.abs(base[3]).copy()
        a0, b0 = base[0].copy(), base[0].copy()
        kernels.rmsprop_update(a0, base[1], sq_a, base[2].copy(), 0.01, 0.99, 1e-8, 0.0, 0.5)
        kernels.rmsprop_update_ref(b0, base[1], sq_b, base[2].copy(), 0.01, 0.99, 1e-8, 0.0,
                                   0.5)
        np.testing.assert_allclose(a0, b0, **tol)
        assert kernels.sum_of_squares(base[0]) == pytest.approx(
            kernels.sum_of_squares_ref(base[0]), rel=1e-9)
        w = base[0].dtype.type
        out_a, out_b = np.empty_like(base[0]), np.empty_like(base[0])
        sq_a = kernels.weighted_sum_into(out_a, base[0], w(0.25), base[1], w(0.75))
        sq_b = kernels.weighted_sum_into_ref(out_b, base[0], w(0.25), base[1], w(0.75))
        np.testing.assert_allclose(out_a, out_b, **tol)
        assert sq_a == pytest.approx(sq_b, rel=1e-6) and sq_a > 0
        np.testing.assert_allclose(out_a, 0.25 * base[0] + 0.75 * base[1], rtol=1e-6, atol=1e-6)


def test_adam_folds_the_clip_factor_into_its_pass():
    """Adam's kernel multiplies each gradient by the clipping factor as it reads it: the same
    bits as scaling the float32 gradient in place first (what clip_grad_norm_ does), and the
    caller's gradient is left as it was."""
    rng = np.random.default_rng(5)
    p, g, m, v = (rng.standard_normal(777).astype(np.float32) for _ in range(4))
    v = np.abs(v)
    folded = [p.copy(), m.copy(), v.copy()]
    kept = g.copy()
    kernels.adam_update(folded[0], g, folded[1], folded[2], 1e-3, 0.9, 0.99, 1e-8, 0.1, True,
                        3, np.float32(0.37))
    np.testing.assert_array_equal(g, kept)
    first = [p.copy(), m.copy(), v.copy()]
    scaled = g.copy()
    scaled *= 0.37
    kernels.adam_update(first[0], scaled, first[1], first[2], 1e-3, 0.9, 0.99, 1e-8, 0.1, True,
                        3)
    for a, b in zip(folded, first):
        np.testing.assert_array_equal(a, b)
    ref = [p.copy(), m.copy(), v.copy()]
    kernels.adam_update_ref(ref[0], g.copy(), ref[1], ref[2], 1e-3, 0.9, 0.99, 1e-8, 0.1, True,
                            3, 0.37)
    np.testing.assert_allclose(folded[0], ref[0], rtol=1e-5, atol=1e-6)


def test_adam_float32_lanes_match_the_float32_twin_and_float64():
    """The float32 kernel computes each element in float32 (like torch and the numpy twin),
    so p, m and v stay within a few float32 ulps of the twin's, and within float32 rounding
    of the same update done in float64 — with and without decoupled decay and clipping."""
    rng = np.random.default_rng(11)
    p, g, m, v = (rng.standard_normal(4099).astype(np.float32) for _ in range(4))
    v = np.abs(v)
    for decoupled, wd, scale in ((True, 0.1, 1.0), (False, 0.02, 0.37)):
        got = [p.copy(), m.copy(), v.copy()]
        kernels.adam_update(got[0], g, got[1], got[2], 3e-3, 0.9, 0.99, 1e-8, wd, decoupled,
                            7, np.float32(scale))
        twin = [p.copy(), m.copy(), v.copy()]
        kernels.adam_update_ref(twin[0], g.copy(), twin[1], twin[2], 3e-3, 0.9, 0.99, 1e-8, wd,
                                decoupled, 7, scale)
        wide = [x.astype(np.float64) for x in (p, m, v)]
        kernels.adam_update_ref(wide[0], g.astype(np.float64) * np.float32(scale), wide[1],
                                wide[2], 3e-3, 0.9, 0.99, 1e-8, wd, decoupled, 7)
        for a, b, c in zip(got, twin, wide):
            assert a.dtype == np.float32
            np.testing.assert_allclose(a, b, rtol=4e-7, atol=1e-7)
            np.testing.assert_allclose(a, c, rtol=2e-6, atol=1e-6)
