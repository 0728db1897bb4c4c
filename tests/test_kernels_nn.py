"""The nn kernels (softmax, norms, attention, embedding, conv/pool, cross-entropy) equal their
numpy twins, and stay finite on numerically extreme inputs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.base.errors import WiregradError
from engine.core import registry
from engine.core.params import resolve_params
from engine.core.program import Equation
from engine.core.registry import TensorType
from engine.core.run import Executor
from engine.kernels import attention as A
from engine.kernels import conv as C
from engine.kernels import embedding as E
from engine.kernels import loss as L
from engine.kernels import norm as N
from engine.kernels import pool as P
from engine.kernels import softmax as S

ROOT = Path(__file__).resolve().parents[1]
DTYPES = [np.float64, np.float32]
RNG = np.random.default_rng(1234)


def tol(dtype):
    return {"rtol": 1e-12, "atol": 1e-12} if dtype == np.float64 else {"rtol": 2e-5,
                                                                       "atol": 2e-6}


def randn(*shape, dtype=np.float64, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype(dtype)


def run_op(name, inputs, params=None, state=None, training=True, grad=None):
    """Forward (and backward with *grad*) of one registry op on concrete arrays."""
    spec = registry.get(name)
    params, problems = resolve_params(spec.params, params or {})
    assert not problems
    types = [TensorType(a.shape, "int" if a.dtype.kind == "i" else "float") for a in inputs]
    names = [f"in{i}" for i in range(len(inputs))]
    eq = Equation(name, name, spec, params, names, [f"out:{p.name}" for p in spec.outputs],
                  types, list(spec.infer(types, params)), {},
                  {s.name: f"s:{s.name}" for s in spec.state})
    dtype = next(a.dtype for a in inputs if a.dtype.kind == "f")
    ex = Executor(None, "float64" if dtype == np.float64 else "float32")
    tape = ex.forward({}, {}, state if state is not None else {}, training=training,
                      equations=[eq], values=dict(zip(names, inputs)))
    out = tape.values[eq.outputs[0]]
    if grad is None:
        return out
    _, grads = ex.backward(tape, {eq.outputs[0]: grad})
    return out, [grads.get(n) for n in names]


# ---------------------------------------------------------------- kernels equal twins


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_kernels_match_twin(dtype):
    x = randn(7, 33, dtype=dtype, scale=4.0)
    g = randn(7, 33, dtype=dtype)
    out = np.empty_like(x)
    S.softmax_fwd(x, out)
    np.testing.assert_allclose(out, S.softmax_ref(x), **tol(dtype))
    S.log_softmax_fwd(x, out)
    np.testing.assert_allclose(out, S.log_softmax_ref(x), **tol(dtype))
    y = S.softmax_ref(x)
    gx = np.empty_like(x)
    S.softmax_bwd(y, g, gx)
    np.testing.assert_allclose(gx, S.softmax_bwd_ref(y, g), **tol(dtype))
    lo = S.log_softmax_ref(x)
    S.log_softmax_bwd(lo, g, gx)
    np.testing.assert_allclose(gx, S.log_softmax_bwd_ref(lo, g), **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm_kernels_match_twin(dtype):
    x, g = randn(5, 12, dtype=dtype, scale=3.0), randn(5, 12, dtype=dtype)
    w, b = randn(12, dtype=dtype), randn(12, dtype=dtype)
    out, mean, rstd = np.empty_like(x), np.empty(5), np.empty(5)
    N.layer_norm_fwd(x, w, b, 1e-5, out, mean, rstd)
    ref_out, ref_mean, ref_rstd = N.layer_norm_fwd_ref(x, w, b, 1e-5)
    np.testing.assert_allclose(out, ref_out, **tol(dtype))
    np.testing.assert_allclose(rstd, ref_rstd, rtol=1e-6)
    gx, gw, gb = np.empty_like(x), np.zeros(12), np.zeros(12)
    N.layer_norm_bwd(g, x, mean, rstd, w, gx, gw, gb)
    for ours, ref in zip((gx, gw, gb), N.layer_norm_bwd_ref(g, x, ref_mean, ref_rstd, w)):
        np.testing.assert_allclose(ours, ref, rtol=1e-5 if dtype == np.float32 else 1e-11,
                                   atol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_kernels_match_twin(dtype):
    x, g = randn(4, 3, 10, dtype=dtype, scale=2.0) + 5, randn(4, 3, 10, dtype=dtype)
    w, b = randn(3, dtype=dtype), randn(3, dtype=dtype)
    mean, var, invstd = np.empty(3), np.empty(3), np.empty(3)
    out = np.empty_like(x)
    for c0, c1 in ((0, 1), (1, 3)):  # blocks of channels, as two threads run them
        N.batch_norm_stats(x, mean, var, invstd, 1e-5, c0, c1)
        N.batch_norm_apply(x, mean, invstd, w, b, out, c0, c1)
    ref_out, ref_mean, ref_var = N.batch_norm_fwd_ref(x, w, b, 1e-5)
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-6)
    np.testing.assert_allclose(var, ref_var, rtol=1e-5)
    np.testing.assert_allclose(invstd, 1.0 / np.sqrt(var + 1e-5), rtol=1e-15)
    np.testing.assert_allclose(out, ref_out, **tol(dtype))
    gx, gw, gb = np.empty_like(x), np.empty(3), np.empty(3)
    N.batch_norm_bwd(g, x, mean, invstd, w, gx, gw, gb, 0, 2)
    N.batch_norm_bwd(g, x, mean, invstd, w, gx, gw, gb, 2, 3)
    for ours, ref in zip((gx, gw, gb), N.batch_norm_bwd_ref(g, x, mean, invstd, w)):
        np.testing.assert_allclose(ours, ref, rtol=1e-4 if dtype == np.float32 else 1e-10,
                                   atol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("causal,tq,tk", [(True, 5, 5), (False, 3, 6), (True, 3, 6),
                                          (True, 6, 3)])
def test_attention_kernels_match_twin(dtype, causal, tq, tk):
    q, k, v = randn(4, tq, 8, dtype=dtype), randn(4, tk, 8, dtype=dtype), randn(4, tk, 5,
                                                                                dtype=dtype)
    g = randn(4, tq, 5, dtype=dtype)
    offset = tk - tq
    out, lse = np.empty((4, tq, 5), dtype), np.empty((4, tq))
    A.attention_fwd(q, k, v, A.no_mask(4), 0.3, causal, offset, out, lse)
    ref_out, ref_lse, p = A.attention_fwd_ref(q, k, v, 0.3, causal, offset)
    np.testing.assert_allclose(out, ref_out, **tol(dtype))
    # lse accumulates float32 scores in float64; fastmath may reorder the sums.
    np.testing.assert_allclose(lse, ref_lse, rtol=1e-5 if dtype == np.float32 else 1e-10,
                               atol=1e-6 if dtype == np.float32 else 1e-12)
    gq, gk, gv = np.empty_like(q), np.empty_like(k), np.empty_like(v)
    A.attention_bwd(q, k, v, A.no_mask(4), out, lse, g, 0.3, causal, offset, gq, gk, gv)
    for ours, ref in zip((gq, gk, gv), A.attention_bwd_ref(q, k, v, out, p, g, 0.3)):
        np.testing.assert_allclose(ours, ref, rtol=1e-4 if dtype == np.float32 else 1e-10,
                                   atol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_embedding_scatter_add_matches_twin(dtype):
    ids = np.array([3, 1, 3, 0, 3, 4], np.int64)  # repeated ids accumulate
    g = randn(6, 4, dtype=dtype)
    gw = np.zeros((6, 4), dtype)
    E.embedding_bwd(ids, g, gw)
    np.testing.assert_allclose(gw, E.embedding_bwd_ref(ids, g, 6), **tol(dtype))
    assert E.ids_in_range(ids, 5) == -1 and E.ids_in_range(ids, 4) == 5


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("stride,dilation", [(1, 1), (2, 1), (1, 2)])
def test_col2im_matches_twin(dtype, stride, dilation):
    xp = randn(2, 3, 9, 8, dtype=dtype)
    k = 3
    ho = (9 - dilation * (k - 1) - 1) // stride + 1
    wo = (8 - dilation * (k - 1) - 1) // stride + 1
    cols = C.im2col(xp, k, k, stride, dilation, ho, wo)
    assert cols.shape == (3, k, k, 2, ho, wo)
    assert cols[1, 2, 1, 0, 1, 0] == xp[0, 1, stride + 2 * dilation, dilation]
    dxp = np.zeros_like(xp)
    C.col2im(cols, stride, dilation, dxp)
    np.testing.assert_allclose(dxp, C.col2im_ref(cols, stride, dilation, 9, 8), **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_kernels_match_twin(dtype):
    xp = randn(2, 3, 7, 7, dtype=dtype)
    out, arg = np.empty((2, 3, 3, 3), dtype), np.empty((2, 3, 3, 3), np.int64)
    P.max_pool_fwd(xp, 3, 3, 2, out, arg)
    ref_out, ref_arg = P.max_pool_fwd_ref(xp, 3, 3, 2, 3, 3)
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(arg, ref_arg)
    g = randn(2, 3, 3, 3, dtype=dtype)
    dxp = np.zeros_like(xp)
    P.max_pool_bwd(g, arg, dxp)
    np.testing.assert_allclose(dxp, P.max_pool_bwd_ref(g, arg, 7, 7), **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("smoothing,ignore", [(0.0, -100), (0.2, 2)])
def test_cross_entropy_kernels_match_twin(dtype, smoothing, ignore):
    x = randn(9, 5, dtype=dtype, scale=3.0)
    y = RNG.integers(0, 5, 9).astype(np.int64)
    y[0] = 2
    lse = np.empty(9)
    total, kept = L.cross_entropy_fwd(x, y, ignore, smoothing, lse)
    ref_total, ref_kept, ref_lse = L.cross_entropy_fwd_ref(x, y, ignore, smoothing)
    assert kept == ref_kept == int((y != ignore).sum())
    np.testing.assert_allclose(total, ref_total, rtol=1e-5 if dtype == np.float32 else 1e-12)
    # lse accumulates float32 scores in float64; fastmath may reorder the sums.
    np.testing.assert_allclose(lse, ref_lse, rtol=1e-5 if dtype == np.float32 else 1e-10,
                               atol=1e-6 if dtype == np.float32 else 1e-12)
    gx = np.empty_like(x)
    L.cross_entropy_bwd(x, y, lse, ignore, smoothing, 0.25, gx)
    np.testing.assert_allclose(gx, L.cross_entropy_bwd_ref(x, y, lse, ignore, smoothing, 0.25),
                               **tol(dtype))


# ---------------------------------------------------------------- extreme inputs stay finite


def extreme_rows(width, dtype):
    x = randn(6, width, dtype=dtype, scale=1e3)
    x[1] = 7.0  # constant row
    x[2] = -1e3
    x[3, 0] = 1e3
    return np.clip(x, -1e3, 1e3)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("width", [1, 17, 4096])
def test_extreme_rows_stay_finite(dtype, width):
    x = extreme_rows(width, dtype)
    g = randn(*x.shape, dtype=dtype)
    for name in ("softmax", "log_softmax", "layer_norm"):
        out, (gx,) = run_op(name, [x], grad=g)
        assert np.isfinite(out).all() and np.isfinite(gx).all(), name
    sm = run_op("softmax", [x])
    np.testing.assert_allclose(sm.sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(sm[1], 1.0 / width, rtol=1e-5)  # constant row: uniform
    labels = np.arange(6, dtype=np.int64) % width
    loss, (gl, _) = run_op("cross_entropy", [x, labels], {"label_smoothing": 0.1},
                           grad=np.asarray(1.0, dtype))
    assert np.isfinite(loss) and np.isfinite(gl).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_fully_masked_rows_stay_finite(dtype):
    x = np.full((2, 5), -np.inf, dtype)
    x[1, 2] = 0.0
    out = np.empty_like(x)
    S.softmax_fwd(x, out)
    np.testing.assert_array_equal(out[0], 0.0)
    np.testing.assert_array_equal(out[1], [0, 0, 1, 0, 0])
    np.testing.assert_array_equal(S.softmax_ref(x), out)
    # attention: Tq > Tk with causal alignment leaves the first queries without any key
    q, k, v = (randn(2, 2, 5, 4, dtype=dtype, scale=1e2), randn(2, 2, 3, 4, dtype=dtype,
                                                                 scale=1e2),
               randn(2, 2, 3, 4, dtype=dtype))
    g = randn(2, 2, 5, 4, dtype=dtype)
    o, (gq, gk, gv) = run_op("scaled_dot_product_attention", [q, k, v], grad=g)
    for a in (o, gq, gk, gv):
        assert np.isfinite(a).all()
    np.testing.assert_array_equal(o[:, :, :2], 0.0)  # queries 0, 1 see no key
    np.testing.assert_array_equal(gq[:, :, :2], 0.0)
    assert np.abs(o[:, :, 2:]).max() > 0


def test_log_softmax_is_shift_invariant():
    x = randn(4, 9)
    for c in (1e3, -1e3, 123.456):
        np.testing.assert_allclose(run_op("log_softmax", [x + c]), run_op("log_softmax", [x]),
                                   rtol=0, atol=1e-9)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_gradient_is_softmax_minus_onehot(dtype):
    x = randn(6, 4, dtype=dtype, scale=2.0)
    y = np.array([0, 3, 1, 1, 2, 3], np.int64)
    _, (gx, gy) = run_op("cross_entropy", [x, y], grad=np.asarray(1.0, dtype))
    expected = S.softmax_ref(x.astype(np.float64)) - np.eye(4)[y]
    np.testing.assert_allclose(gx, expected / 6, **tol(dtype))
    assert gy is None


def test_cross_entropy_ignored_rows_get_no_gradient_and_leave_the_mean():
    x = randn(5, 3)
    y = np.array([0, -100, 2, -100, 1], np.int64)
    loss, (gx, _) = run_op("cross_entropy", [x, y], grad=np.asarray(1.0))
    kept = y != -100
    ref = -S.log_softmax_ref(x)[kept][np.arange(3), y[kept]].mean()
    assert loss == pytest.approx(ref, rel=1e-12)
    np.testing.assert_array_equal(gx[~kept], 0.0)


def test_batch_norm_eval_uses_running_statistics():
    x = randn(3, 2, 4)
    w, b = np.array([2.0, 0.5]), np.array([0.1, -1.0])
    state = {"s:running_mean": np.array([0.5, -0.25]), "s:running_var": np.array([4.0, 0.25])}
    before = {k: v.copy() for k, v in state.items()}
    out = run_op("batch_norm", [x, w, b], state=state, training=False)
    rm, rv = before["s:running_mean"], before["s:running_var"]
    expected = (x - rm[:, None]) / np.sqrt(rv[:, None] + 1e-5) * w[:, None] + b[:, None]
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    for k in state:  # evaluation leaves the running statistics alone
        np.testing.assert_array_equal(state[k], before[k])


def test_batch_norm_training_updates_running_statistics():
    x = randn(4, 3) * 2 + 1
    state = {"s:running_mean": np.zeros(3), "s:running_var": np.ones(3)}
    run_op("batch_norm", [x], {"momentum": 0.25}, state=state)
    np.testing.assert_allclose(state["s:running_mean"], 0.25 * x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(state["s:running_var"], 0.75 + 0.25 * x.var(0, ddof=1),
                               rtol=1e-12)


def test_batch_norm_single_value_per_channel_is_a_clear_error():
    with pytest.raises(WiregradError, match="more than one value") as info:
        run_op("batch_norm", [randn(1, 3)], state={"s:running_mean": np.zeros(3),
                                                   "s:running_var": np.ones(3)})
    assert info.value.node == "batch_norm"


def test_embedding_ids_out_of_range_name_the_node():
    with pytest.raises(WiregradError, match=r"token id 9 .*\[0, 5\)") as info:
        run_op("embedding", [np.array([[1, 9]], np.int64), randn(5, 3)])
    assert info.value.node == "embedding" and info.value.port == "ids"


def test_dropout_is_identity_in_eval_and_scales_in_training():
    x = randn(200, 50) + 3.0
    np.testing.assert_array_equal(run_op("dropout", [x], {"p": 0.3}, training=False), x)
    out = run_op("dropout", [x], {"p": 0.3})
    dropped = out == 0
    assert 0.25 < dropped.mean() < 0.35
    np.testing.assert_allclose(out[~dropped], x[~dropped] / 0.7, rtol=1e-12)


def test_catalog_stays_numba_free():
    code = ("import sys, engine.core.registry as r; r.catalog(); "
            "assert 'numba' not in sys.modules and not any("
            "m.startswith('engine.kernels.') for m in sys.modules), 'numba imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)


def test_twins_pass_without_jit_in_a_subprocess():
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__,
         "-k", "match_twin and float64"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout
