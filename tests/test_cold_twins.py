"""Cold-start twins (engine.kernels.cold): every registered numpy twin writes what its kernel
writes (within the kernel's rounding) for the kernel's own arguments, ops route to the twin
only while this process's helper compiles the kernel, and a model trained on the twins
follows the same loss curve as on the kernels."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from engine.kernels import (
    activations,
    attention,
    cold,
    elementwise,
    embedding,
    loss,
    norm,
    optim,
    precompile,
)

ROOT = Path(__file__).resolve().parent.parent
RNG = np.random.default_rng(7)
F32, F64 = np.float32, np.float64


def _a(*shape, dtype=F32, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype(dtype)


def _ce(dtype, smoothing):
    def fwd():
        x = _a(37, 11, dtype=dtype, scale=3.0)
        y = RNG.integers(0, 11, 37)
        y[[3, 20]] = -100  # ignored rows
        return (x, y, -100, smoothing, np.empty(37))

    def bwd():
        x, y, _, eps, _ = fwd()
        lse = loss.cross_entropy_fwd_ref(x, y, -100, eps)[2]
        return (x, y, lse, -100, eps, 0.37, np.empty_like(x))
    return fwd, bwd


def _probs(kernel_kind, causal, offset, masked, with_lse):
    def build():
        s = _a(6, 9, 13, scale=4.0)
        keep = RNG.random((6, 13)) > 0.3 if masked else attention.no_mask(6)
        if masked:
            keep[2] = False  # every key of one row hidden
        lse = np.empty((6, 9)) if with_lse else np.empty((6, 0))
        if kernel_kind == "unmasked":
            return (s, 0.3, causal, offset, lse)
        return (s.astype(F64) if kernel_kind == "64" else s, keep, 0.3, causal, offset, lse)
    return build


def _flat_pair(n=1001, dtype=F32):
    return lambda: (_a(n, dtype=dtype, scale=2.0), np.empty(n, dtype))


def _layer_norm_bwd_args(x):
    _, mean, rstd = norm.layer_norm_fwd_ref(x, 1.0, 0.0, 1e-5)
    return (_a(*x.shape), x, mean, rstd, _a(x.shape[1]), np.empty(x.shape, F32),
            _a(x.shape[1], dtype=F64), _a(x.shape[1], dtype=F64))  # gw, gb accumulate


def _optim_args(kind):
    def build():
        p, g, m = _a(513), _a(513), _a(513, scale=0.1)
        v = np.abs(_a(513, scale=0.1))
        if kind == "adam":
            return (p, g, m, v, 1e-2, 0.9, 0.99, 1e-8, 0.01, True, 3, F32(0.8))
        if kind == "adam_l2":
            return (p, g, m, v, 1e-2, 0.8, 0.95, 1e-6, 0.05, False, 1, F32(1.0))
        if kind == "sgd":
            return (p, g, m, 0.05, 0.9, 0.1, 1e-3, True, False)
        return (p, g, v, m, 0.01, 0.99, 1e-8, 1e-3, 0.9)  # rmsprop
    return build


# kernel → argument builders (several per kernel where the kernel branches)
CASES = {
    loss.cross_entropy_fwd32: [_ce(F32, 0.0)[0], _ce(F32, 0.1)[0]],
    loss.cross_entropy_bwd32: [_ce(F32, 0.0)[1], _ce(F32, 0.2)[1]],
    loss.cross_entropy_fwd: [_ce(F64, 0.1)[0]],
    loss.cross_entropy_bwd: [_ce(F64, 0.1)[1]],
    attention.attention_probs32_unmasked: [_probs("unmasked", True, 0, False, False),
                                           _probs("unmasked", True, -2, False, True),
                                           _probs("unmasked", False, 0, False, True)],
    attention.attention_probs32: [_probs("32", True, 3, True, True),
                                  _probs("32", False, 0, True, True)],
    attention.attention_probs: [_probs("64", True, 0, True, True)],
    attention.attention_dscores: [lambda: (
        attention.attention_probs_ref(_a(6, 7, 5), 0.5, False, 0)[0].reshape(3, 2, 7, 5),
        _a(3, 2, 7, 5), _a(3, 7, 2, 4), _a(3, 7, 2, 4), 0.5)],
    norm.layer_norm_fwd: [lambda: (_a(21, 17, scale=3.0) + 2, _a(17), _a(17), 1e-5,
                                   np.empty((21, 17), F32), np.empty(21), np.empty(21))],
    norm.layer_norm_bwd: [lambda: _layer_norm_bwd_args(_a(21, 17) * 3 + 1)],
    elementwise.gelu_erf_fwd_d32: [lambda: (_a(70001, scale=4.0), np.empty(70001, F32),
                                            np.empty(70001, F32))],
    elementwise.gelu_tanh_fwd_d32: [lambda: (_a(3001, scale=6.0), np.empty(3001, F32),
                                             np.empty(3001, F32))],
    elementwise.gelu_erf_fwd_d: [lambda: (_a(501, dtype=F64, scale=4.0), np.empty(501),
                                          np.empty(501))],
    elementwise.gelu_tanh_fwd_d: [lambda: (_a(501, dtype=F64, scale=4.0), np.empty(501),
                                           np.empty(501))],
    embedding.embedding_bwd: [lambda: (RNG.integers(0, 9, 40), _a(40, 6),
                                       np.zeros((9, 6), F32))],
    activations.relu_fwd: [_flat_pair(), _flat_pair(dtype=F64)],
    activations.relu_bwd: [lambda: (_a(999), _a(999), np.empty(999, F32))],
    activations.leaky_fwd: [lambda: (_a(999), 0.1, np.empty(999, F32))],
    activations.leaky_bwd: [lambda: (_a(999), _a(999), 0.02, np.empty(999, F32))],
    activations.silu_fwd_d32: [lambda: (_a(999, scale=10.0), np.empty(999, F32),
                                        np.empty(999, F32))],
    optim.adam_update: [_optim_args("adam"), _optim_args("adam_l2")],
    optim.sgd_update: [_optim_args("sgd")],
    optim.rmsprop_update: [_optim_args("rmsprop")],
    optim.weighted_sum_into: [lambda: (np.empty(777, F32), _a(777), F32(0.25), _a(777),
                                       F32(0.75))],
    optim.sum_of_squares: [lambda: (_a(777),)],
}


def test_every_twin_has_a_case_here():
    assert set(cold.TWINS) == set(CASES)


def _copy(args):
    return tuple(a.copy() if isinstance(a, np.ndarray) else a for a in args)


@pytest.mark.parametrize("kernel,build", [(k, b) for k, bs in CASES.items() for b in bs],
                         ids=lambda v: getattr(getattr(v, "py_func", None), "__name__", ""))
def test_a_twin_writes_what_its_kernel_writes(kernel, build):
    args = build()
    k_args, t_args = _copy(args), _copy(args)
    got_k = kernel(*k_args)
    got_t = cold.TWINS[kernel](*t_args)
    f32 = any(isinstance(a, np.ndarray) and a.dtype == F32 for a in args)
    rtol, atol = (2e-5, 2e-6) if f32 else (1e-10, 1e-12)
    assert type(got_k) is type(got_t) or got_k is None
    if got_k is not None:
        np.testing.assert_allclose(np.asarray(got_t, F64), np.asarray(got_k, F64),
                                   rtol=rtol * 10, atol=atol)
    for a, ka, ta in zip(args, k_args, t_args):
        if isinstance(a, np.ndarray) and a.dtype.kind == "f":
            assert ta.dtype == ka.dtype and ta.shape == ka.shape
            finite = np.abs(ka[np.isfinite(ka)])
            scale = max(1.0, float(finite.max())) if finite.size else 1.0
            np.testing.assert_allclose(ta, ka, rtol=rtol, atol=atol * scale, equal_nan=True)


def test_ops_call_the_twin_only_while_the_helper_has_the_kernel(monkeypatch):
    class Helper:
        code = None

        def poll(self):
            return self.code

    helper = Helper()
    kernel = loss.cross_entropy_fwd32
    cold.forget()
    calls = []
    monkeypatch.setitem(cold.TWINS, kernel, lambda *a: calls.append("twin") or (0.0, 0))
    monkeypatch.setattr(precompile, "_helper", helper)
    monkeypatch.setattr(precompile, "_handed", frozenset({(kernel.py_func.__module__,
                                                           kernel.py_func.__name__)}))
    monkeypatch.setattr(cold, "_saved", lambda k, args: False)
    args = _ce(F32, 0.0)[0]()
    assert cold.call(kernel, *args) == (0.0, 0) and calls == ["twin"]
    helper.code = 0  # the helper ended (done, or without this kernel): the kernel itself
    total, kept = cold.call(kernel, *args)
    assert calls == ["twin"] and kept == 35 and total > 0
    cold.forget()
    helper.code = None
    clock = {"now": 100.0}
    monkeypatch.setattr(cold, "_clock", lambda: clock["now"])
    cold.call(kernel, *args)  # the twin again, from a clean slate
    clock["now"] += cold.PATIENCE + 1  # a starved helper: this process compiles it after all
    assert cold.call(kernel, *args)[1] == 35 and calls == ["twin", "twin"]
    cold.forget()
    monkeypatch.setattr(precompile, "_handed", frozenset())  # a kernel it was not given
    assert cold.call(kernel, *args)[1] == 35 and calls == ["twin", "twin"]
    cold.forget()


def test_a_model_trained_on_the_twins_follows_its_run_on_the_kernels(monkeypatch):
    from engine.train.trainer import Trainer

    doc = _tiny_lm()
    losses, used = {}, set()
    for route in ("kernels", "twins"):
        cold.forget()
        if route == "twins":
            for k, fn in dict(cold.TWINS).items():
                monkeypatch.setitem(cold.TWINS, k, _noting(used, k, fn))
            monkeypatch.setattr(cold, "_helper_has", lambda k: True)
            monkeypatch.setattr(cold, "_saved", lambda k, a: False)
        tr = Trainer(doc, steps=12, batch_split=1)
        losses[route] = [float(tr.train_step()["loss"]) for _ in range(12)]
    cold.forget()
    names = {k.py_func.__name__ for k in used}
    assert {"layer_norm_fwd", "layer_norm_bwd", "gelu_erf_fwd_d32", "attention_probs32_unmasked",
            "attention_dscores", "cross_entropy_fwd32", "cross_entropy_bwd32", "embedding_bwd",
            "sgd_update"} <= names
    np.testing.assert_allclose(losses["twins"], losses["kernels"], rtol=2e-4)
    assert losses["kernels"][-1] < losses["kernels"][0]


def _noting(used: set, kernel, fn):
    def run(*args):
        used.add(kernel)
        return fn(*args)
    return run


def _tiny_lm() -> dict:
    """A one-block causal LM unlike the presets: 3 heads of 5, a block of 7 tokens, label
    smoothing, SGD with Nesterov momentum, float32."""
    from engine.graphs.builders import finish, node
    from engine.ops.text_data import SHAKESPEARE_VOCAB

    v, width = len(SHAKESPEARE_VOCAB), 15
    nodes = [node("text", "text_corpus", (0, 0), source="shakespeare", vocab=SHAKESPEARE_VOCAB,
                  block_size=7, batch_size=3),
             node("tok", "Embedding", (200, 0), num_embeddings=v, embedding_dim=width),
             node("pos", "PositionalEmbedding", (300, 0), block_size=7, embedding_dim=width),
             node("blk", "TransformerBlock", (400, 0), embed_dim=width, num_heads=3,
                  mlp_ratio=3, dropout=0.0, bias=True),
             node("ln", "LayerNorm", (600, 0), normalized_shape=width, bias=True),
             node("head", "Linear", (700, 0), in_features=width, out_features=v, bias=False),
             node("loss", "cross_entropy", (900, 0), label_smoothing=0.1),
             node("optimizer", "optimizer", (1100, 0), algorithm="sgd", lr=0.3, momentum=0.9,
                  nesterov=True)]
    edges = [("text:tokens", "tok:ids"), ("tok:y", "pos:x"), ("pos:y", "blk:x"),
             ("blk:y", "ln:x"), ("ln:y", "head:x"), ("head:y", "loss:logits"),
             ("text:targets", "loss:labels"), ("loss:loss", "optimizer:loss")]
    training = {"steps": 12, "eval_every": 0, "eval_batches": 1, "checkpoint_every": 0,
                "seed": 3, "dtype": "float32"}
    return finish("Tiny LM", "cold-start twins", nodes, edges, training)


CHILD = """
    import fcntl, json, os
    import numpy as np
    from engine.kernels import cold, loss, precompile
    from engine.ops.kernel_choice import call_kernel
    precompile.prestart()
    helper = precompile.start(["cross_entropy"], "float32", "sgd")
    kernel = loss.cross_entropy_fwd32
    lock = os.path.join(kernel._cache._cache_path, ".wiregrad-save.lock")
    os.makedirs(os.path.dirname(lock), exist_ok=True)
    held = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(held, fcntl.LOCK_EX)  # the helper compiles but cannot save yet
    x = np.linspace(-3, 3, 44, dtype=np.float32).reshape(4, 11)
    y = np.array([1, 2, -100, 10])
    first = call_kernel(kernel, x, y, -100, 0.0, np.empty(4))
    on_twin = len(kernel.overloads) == 0
    os.close(held)
    code = helper.wait(timeout=240)
    import time
    time.sleep(cold.LOOK_EVERY)
    second = call_kernel(kernel, x, y, -100, 0.0, np.empty(4))
    print(json.dumps({"on_twin": on_twin, "code": code, "hits": sum(kernel._cache_hits.values()),
                      "first": first[0], "second": second[0], "kept": [first[1], second[1]]}))
"""


def test_a_cold_process_runs_the_twin_then_loads_what_the_helper_saved(tmp_path):
    env = {**os.environ, "WIREGRAD_HOME": str(tmp_path / "home"),
           "NUMBA_CACHE_DIR": str(tmp_path / "numba"), "WIREGRAD_PRECOMPILE": "1"}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(CHILD)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["on_twin"] and got["code"] == 0 and got["hits"] == 1
    assert got["kept"] == [3, 3]
    assert got["second"] == pytest.approx(got["first"], rel=1e-6)
