"""Review of session 12's changes, on models and inputs unlike the presets:

1. engine.kernels.blas.gemm (scipy-openblas64's sgemm/dgemm bound by symbol): random views
   (blocks, transposes, strides, negative strides, size-1 axes) from Python and from
   compiled code, degenerate sizes, non-finite values, refused outputs, nothing written
   outside the output's view, a cached kernel calling it in a fresh process;
2. the convolutions' parallel routes (engine.kernels.conv_gemm per image and whole blocks,
   engine.kernels.winograd_parts) against float64 PyTorch on both sides of the
   weight-gradient orientation rule (k ≥ 96 and P ≥ 16·Cout: cols·gᵀ), strides 1–3, padding,
   dilation, groups, batch 1 and odd batches, 1–16 channels, parts of several images or
   blocks, both dtypes (Winograd: float32); the rule itself at its boundary; the FC rows
   route (engine.ops.linalg._product) on thin and odd GEMMs;
3. a hand-written CNN (7×7 stride-2 stem, 5×5 conv of 6 channels, 3×3, batch norm, FC head)
   trained with the parallel routes on and off, float32 and float64;
4. gradcheck_document on graphs with scalar-producing ops in odd places, and a wrong backward
   on a 0-d value must be caught;
5. the kernels' library back on one thread at the next launch after threadpool_limits(2);
6. without scipy-openblas64 the recurrent ops still run (a bug: they do not).

Compiling a parallel convolution kernel takes 10–25 s, so the convolutions' parallel routes run
through :func:`_serial_runs` — each parallel kernel's own Python body (its ``prange`` a plain
range) calling the compiled serial parts inside ``parallel.launch()``: every line those
commits touched, without the OpenMP fork. The real OpenMP kernels run here for the FC rows
route (blas.gemm called from two threads at once, and from a cached parallel kernel in a new
process); test_review_s11 and test_parallel_kernels run the real convolution kernels.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numba import njit

from engine.core.registry import get
from engine.kernels import blas, parallel
from engine.ops import two_cores
from tests.helpers import OpCtx, doc_of, e, n, record_native_runs, torch_conv

ROOT = Path(__file__).resolve().parents[1]
native = pytest.mark.skipif(not parallel.available(), reason="needs Numba's OpenMP layer")


@pytest.fixture(scope="module")
def torch():
    # skipped where PyTorch is not installed (README's test command runs without it; on CI,
    # which installs it, a skip fails the run)
    return pytest.importorskip("torch")


def _serial_runs(monkeypatch) -> list[str]:
    """engine.kernels.parallel.run replaced by the parallel kernel's own Python body (its
    prange a range over the same bounds) calling the compiled serial parts, inside
    ``parallel.launch()``: every line of the parallel routes but the OpenMP fork, without
    compiling a parallel kernel. Records ``module.kernel`` of each run."""
    ran: list[str] = []

    def run(kernel, args, rows, threads, dtype, variant=""):
        if threads < 2:
            return False
        with parallel.launch():
            kernel.py_func(*args, parallel.bounds(rows, threads))
        ran.append(f"{kernel.py_func.__module__.rsplit('.', 1)[-1]}.{kernel.py_func.__name__}")
        return True

    monkeypatch.setattr(parallel, "run", run)
    return ran


def _rel_err(got, want) -> float:
    scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
    return float(np.max(np.abs(got.astype(np.float64) - want))) / scale if want.size else 0.0


# =============================================================== 1. blas.gemm

@njit(cache=False)
def _gemm_in_kernel(a, b, out, accumulate):
    blas.gemm(a, b, out, accumulate)


def _view(rng, rows: int, cols: int, dtype, kind: str):
    """(base, view) with view (rows, cols) inside base, laid out as *kind*."""
    if kind == "C":
        base = rng.standard_normal((rows, cols)).astype(dtype)
        return base, base
    if kind == "F":
        base = rng.standard_normal((cols, rows)).astype(dtype)
        return base, base.T
    step_r, step_c, flip_r, flip_c, trans = {
        "block": (1, 1, False, False, False), "T-block": (1, 1, False, False, True),
        "rows2": (2, 1, False, False, False), "cols2": (1, 2, False, False, False),
        "T-rows3": (3, 1, False, False, True), "neg-rows": (1, 1, True, False, False),
        "neg-cols": (1, 1, False, True, False), "both2": (2, 2, False, False, False)}[kind]
    r, c = (cols, rows) if trans else (rows, cols)
    base = rng.standard_normal((step_r * r + 3, step_c * c + 4)).astype(dtype)
    v = base[1:1 + step_r * r:step_r, 2:2 + step_c * c:step_c]
    v = v[::-1] if flip_r else v
    v = v[:, ::-1] if flip_c else v
    return base, (v.T if trans else v)


KINDS = ["C", "F", "block", "T-block", "rows2", "cols2", "T-rows3", "neg-rows", "neg-cols",
         "both2"]
# operand layouts gemm must take whatever the sizes (unit stride along one axis, rows apart)
ACCEPTED = {"C", "F", "block", "T-block", "rows2", "T-rows3"}


def test_gemm_on_random_views_is_right_or_refused_and_never_writes_outside():
    """Random sizes (0, 1, thin, odd) and random layouts of a, b and out (float64: each
    layout triple compiles gemm anew; float32 is the same code on the other symbol, below):
    either the product (± accumulation) to float64 numpy's, with every element of out's base
    outside the view untouched, or a ValueError with out untouched; layouts BLAS takes
    directly (C, F, blocks of either, rows or transposed rows apart) are never refused."""
    dtype = np.float64
    rng = np.random.default_rng(12)
    out_kinds = ["C", "block", "rows2", "F", "cols2", "neg-rows", "T-block"]
    done = refused = 0
    for _ in range(90):
        m, k, nn = (int(rng.choice([0, 1, 1, 2, 3, 7, 33])) for _ in range(3))
        ka, kb, ko = rng.choice(KINDS), rng.choice(KINDS), rng.choice(out_kinds)
        _, a = _view(rng, m, k, dtype, ka)
        _, b = _view(rng, k, nn, dtype, kb)
        obase, out = _view(rng, m, nn, dtype, ko)
        acc = bool(rng.random() < 0.5)
        start, base_before = out.copy(), obase.copy()
        want = (start.astype(np.float64) if acc else 0.0) + a.astype(np.float64) @ b
        try:
            blas.gemm(a, b, out, acc)
        except ValueError:
            refused += 1
            np.testing.assert_array_equal(obase, base_before)
            assert not (ka in ACCEPTED and kb in ACCEPTED and ko in ("C", "block", "rows2")), \
                (ka, kb, ko, m, k, nn)
            continue
        done += 1
        tol = 1e-12 * max(1, k)
        np.testing.assert_allclose(out, want, rtol=tol, atol=tol, err_msg=f"{ka} {kb} {ko}")
        outside = np.ones(obase.shape, bool)  # the elements of obase that out does not cover
        if out.size:
            outside.flat[_positions(obase, out).ravel()] = False
        np.testing.assert_array_equal(obase[outside], base_before[outside])
    assert done >= 15 and refused >= 3  # both outcomes were exercised


def _positions(base: np.ndarray, view: np.ndarray) -> np.ndarray:
    """The flat indices into C-contiguous *base* of each element of *view* (a view of it)."""
    start = (view.__array_interface__["data"][0] - base.__array_interface__["data"][0]) \
        // base.itemsize
    steps = np.array(view.strides) // base.itemsize
    grids = np.indices(view.shape)
    return start + sum(g * st for g, st in zip(grids, steps))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_degenerate_and_thin_sizes_match_numpy(dtype):
    """M, N or K of 1, K = 0 (zeros, or out kept when accumulating), very thin and very wide
    products, through Python and a compiled caller, on C and transposed operands."""
    rng = np.random.default_rng(5)
    for m, k, nn in [(1, 1, 1), (1, 513, 1), (513, 1, 1), (1, 1, 513), (2, 3001, 3),
                     (257, 2, 129), (1, 64, 700), (700, 64, 1), (5, 0, 4), (0, 6, 3),
                     (4, 6, 0)]:
        for ta, tb in [(False, False), (True, False), (False, True), (True, True)]:
            a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
            b = rng.standard_normal((nn, k) if tb else (k, nn)).astype(dtype)
            a, b = (a.T if ta else a), (b.T if tb else b)
            want = a.astype(np.float64) @ b.astype(np.float64)
            tol = 2e-6 * np.sqrt(max(k, 1)) if dtype == np.float32 else 1e-13 * max(k, 1)
            for call in (blas.gemm, _gemm_in_kernel):
                out = np.full((m, nn), np.nan, dtype)  # beta 0: what out held is ignored
                call(a, b, out, False)
                np.testing.assert_allclose(out, want, rtol=tol, atol=tol)
                call(a, b, out, True)
                np.testing.assert_allclose(out, 2 * want, rtol=tol, atol=2 * tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m,k,nn", [(4, 5, 3), (70, 33, 65)])
def test_gemm_propagates_non_finite_values_like_numpy(dtype, m, k, nn):
    rng = np.random.default_rng(m)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, nn)).astype(dtype)
    a[0, 1], a[1, 2], a[3, :] = np.inf, np.nan, 0.0
    b[1, 0], b[3, 2], b[:, 1] = 0.0, -np.inf, 0.0  # inf · 0 → nan
    with np.errstate(invalid="ignore", over="ignore"):
        want = a @ b
    out = np.full((m, nn), 7.0, dtype)
    blas.gemm(a, b, out)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(want))
    np.testing.assert_array_equal(np.isposinf(out), np.isposinf(want))
    np.testing.assert_array_equal(np.isneginf(out), np.isneginf(want))
    fin = np.isfinite(want)
    np.testing.assert_allclose(out[fin], want[fin], rtol=1e-4, atol=1e-4)
    acc = np.zeros((m, nn), dtype)
    acc[2, 2] = np.nan  # accumulating keeps a nan already there
    blas.gemm(np.ones((m, k), dtype), np.ones((k, nn), dtype), acc, True)
    assert np.isnan(acc[2, 2]) and np.isfinite(np.delete(acc.ravel(), 2 * nn + 2)).all()
    big = np.full((2, 3), np.finfo(dtype).max / 2, dtype)
    over = np.zeros((2, 2), dtype)
    blas.gemm(big, big.T, over)
    assert np.isposinf(over).all()


def test_gemm_refuses_outputs_and_operands_it_cannot_write_or_read():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 5))
    f_out = np.zeros((5, 3)).T  # (3, 5), column-major: a transposed output
    bad_outs = [f_out, np.zeros((3, 10))[:, ::2], np.zeros((3, 5))[::-1],
                np.zeros((3, 5))[:, ::-1]]
    for out in bad_outs:
        before = out.copy()
        with pytest.raises(ValueError, match="gemm"):
            blas.gemm(a, b, out)
        np.testing.assert_array_equal(out, before)
    for x, y in [(np.broadcast_to(a[:, :1], (3, 4)), b), (a, np.broadcast_to(b[:1], (4, 5))),
                 (a, b[:, ::-1]), (a[:, :3], b), (a, b.T)]:
        with pytest.raises(ValueError, match="gemm"):
            blas.gemm(x, y, np.zeros((3, 5)))
    # the same refusals raised from compiled code
    with pytest.raises(ValueError, match="gemm"):
        _gemm_in_kernel(a, b, f_out, False)


def test_a_cached_kernel_calling_gemm_runs_right_in_a_fresh_process(tmp_path):
    """The GEMM is bound by symbol names registered with LLVM at import: a kernel compiled
    and cached by one process — a serial one and a parallel one (its OpenMP body is a module
    of its own) — must link and compute in the next one (cache hits)."""
    code = (
        "import json, numpy as np\n"
        "from engine.kernels import gemm as G\n"
        "x = np.arange(35, dtype=np.float32).reshape(5, 7) / 7\n"
        "y = np.asfortranarray(np.arange(21, dtype=np.float32).reshape(7, 3) / 5)\n"
        "out = np.zeros((5, 3), np.float32)\n"
        "G.rows_part(x, y, out, 1, 4)\n"
        "full = np.zeros((5, 3), np.float32)\n"
        "G.rows_parallel(x, y, full, np.array([0, 2, 5], np.int64))\n"
        "print(json.dumps({'out': out.tolist(), 'full': full.tolist(),\n"
        "                  'want': (x @ y).tolist(),\n"
        "                  'hits': sum(G.rows_part.stats.cache_hits.values())\n"
        "                          + sum(G.rows_parallel.stats.cache_hits.values())}))\n")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba"),
           "PYTHONPATH": str(ROOT)}
    results = []
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert results[0]["hits"] == 0 and results[1]["hits"] == 2
    for r in results:
        out, want = np.array(r["out"]), np.array(r["want"])
        np.testing.assert_allclose(out[1:4], want[1:4], rtol=1e-5)
        np.testing.assert_allclose(np.array(r["full"]), want, rtol=1e-5)
        assert not out[0].any() and not out[4].any()  # rows outside lo … hi-1 untouched


# =============================================================== 2. convolutions

def _conv_against_torch(torch, case, dtype, need_x: bool, seed: int) -> None:
    nb, cin, h, w, cout, k, s, p, d, groups, bias = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((nb, cin, h, w)).astype(dtype)
    wt = (rng.standard_normal((cout, cin // groups, k, k)) / np.sqrt(cin * k * k / groups)
          ).astype(dtype)
    b = rng.standard_normal(cout).astype(dtype) if bias else None
    spec, ctx = get("conv2d"), OpCtx((need_x, True, True))
    params = {"stride": s, "padding": p, "dilation": d, "groups": groups}
    with two_cores.own_threads(2):
        y = spec.forward(ctx, params, *((x, wt) if b is None else (x, wt, b)))
        g = rng.standard_normal(y.shape).astype(dtype)
        grads = spec.backward(ctx, params, g)
    ry, rgx, rgw, rgb = torch_conv(torch, x, wt, b, g, s, p, d, groups)
    tol = 3e-6 if dtype == np.float32 else 1e-13
    if k == 5 and s == 1 and d == 1 and cin // groups >= 16:
        tol = 3e-5 if dtype == np.float32 else 1e-12  # F(2×2, 5×5): see conv_winograd
    assert y.dtype == dtype and y.shape == ry.shape
    checks = [("forward", y, ry), ("weight gradient", grads[1], rgw)]
    if need_x:
        checks.append(("input gradient", grads[0], rgx))
    else:
        assert grads[0] is None
    if bias:
        checks.append(("bias gradient", grads[2], rgb))
    else:
        assert len(grads) < 3 or grads[2] is None
    for what, got, want in checks:
        assert got.shape == want.shape, what
        assert _rel_err(got, want) <= tol * 10, (what, _rel_err(got, want))


def _orientation(case) -> str:
    """Which side of the weight-gradient rule the per-image route takes (T: cols·gᵀ)."""
    nb, cin, h, w, cout, k, s, p, d, groups, bias = case
    kk = cin // groups * k * k
    ho = (h + 2 * p - d * (k - 1) - 1) // s + 1
    wo = (w + 2 * p - d * (k - 1) - 1) // s + 1
    return "T" if kk >= 96 and ho * wo >= 16 * cout else "D"


# (batch, cin, h, w, cout, k, stride, pad, dilation, groups, bias)
CONV_CASES = {
    "stem7s2-k147-T": (3, 3, 33, 29, 8, 7, 2, 3, 1, 1, True),
    "stem7s2-k147-D": (3, 3, 33, 29, 24, 7, 2, 3, 1, 1, False),  # P 255 < 16·24
    "c1-5x5-D": (5, 1, 20, 22, 6, 5, 1, 2, 1, 1, True),
    "c2-7x7s3-batch2-T": (2, 2, 40, 37, 2, 7, 3, 1, 1, 1, True),  # one image per part
    "c12-3x3s2-k108-T": (5, 12, 18, 17, 4, 3, 2, 1, 1, 1, True),
    "c16-3x3-dil2-k144-T": (3, 16, 14, 13, 3, 3, 1, 2, 2, 1, False),
    "c9-5x5s2-k225-block-T": (3, 9, 21, 19, 5, 5, 2, 2, 1, 1, True),
    "c14-3x3s2-tiny-block-D": (7, 14, 6, 5, 20, 3, 2, 1, 1, 1, True),
    # a 1 MB block holds one image's columns: each part runs several blocks, whose weight
    # gradients must add up
    "c9-5x5-k225-blocks-of-one-T": (3, 9, 24, 24, 5, 5, 1, 2, 1, 1, True),
    "c9-5x5-k225-blocks-of-one-D": (3, 9, 24, 24, 40, 5, 1, 2, 1, 1, False),
    "c8-winograd3": (3, 8, 11, 9, 5, 3, 1, 1, 1, 1, True),
    "c8-winograd3-blocks-of-one": (5, 8, 48, 47, 5, 3, 1, 1, 1, 1, False),  # (2 MB blocks)
    "c16-winograd5": (2, 16, 9, 12, 4, 5, 1, 2, 1, 1, False),
    "g2-c16-winograd3-per-group": (3, 16, 10, 9, 6, 3, 1, 1, 1, 2, True),
    "c3-1x1s2": (3, 3, 17, 16, 4, 1, 2, 0, 1, 1, True),
    "batch1-stem": (1, 3, 33, 29, 8, 7, 2, 3, 1, 1, True),
}


def _expected_kernels(case, dtype) -> list[str]:
    from engine.ops import conv, conv_direct, conv_winograd

    nb, cin, h, w, cout, k, s, p, d, groups, bias = case
    if nb < 2:
        return []
    params = {"stride": s, "padding": p, "dilation": d, "groups": 1}
    cg = cin // groups
    if conv_winograd.applies(params, (nb, cg, h, w), (cout // groups, cg, k, k)):
        pair = ["winograd_parts.forward_parallel", "winograd_parts.backward_parallel"]
        return sorted(pair * groups)
    ho = (h + 2 * p - d * (k - 1) - 1) // s + 1
    wo = (w + 2 * p - d * (k - 1) - 1) // s + 1
    if conv.by_image(groups, cg * k * k, ho, wo):
        gemm = ["conv_gemm.forward_parallel", "conv_gemm.backward_parallel"]
    else:
        gemm = ["conv_gemm.block_forward_parallel", "conv_gemm.block_backward_parallel"]
    w_shape = (cout // groups, cg, k, k)
    if conv_direct.takes_forward({"groups": groups}, w_shape, dtype, ho * wo):
        gemm[0] = "conv_direct.forward_parallel"
        if conv_direct.takes_backward({"groups": groups}, w_shape, dtype, ho * wo):
            gemm[1] = "conv_direct.backward_parallel"
    return sorted(gemm)


# every case in float32, and in float64 but for the Winograd parts (their compile is ~15 s a
# dtype; the float64 Winograd parallel route is run by test_parallel_kernels' CNN)
CONV_RUNS = [(name, np.float32) for name in CONV_CASES] + \
    [(name, np.float64) for name in CONV_CASES if "winograd" not in name]


@pytest.mark.torch
@pytest.mark.parametrize("name,dtype", CONV_RUNS,
                         ids=[f"{nm}-{np.dtype(dt).name}" for nm, dt in CONV_RUNS])
def test_conv_parallel_routes_match_torch(torch, monkeypatch, name, dtype):
    """Forward and input / weight / bias gradients on the parallel routes (their parts, see
    _serial_runs), with and without the input gradient, against float64 PyTorch."""
    case = CONV_CASES[name]
    if name.endswith(("-T", "-D")) and "block" not in name:
        assert _orientation(case) == name[-1]  # the case is on the side its name says
    from engine.ops import conv_direct

    monkeypatch.setattr(two_cores, "NATIVE_MIN_FLOPS", 0.0)
    # the Winograd cases stay on Winograd (few-channel ones the direct kernels can take over
    # with AVX2's block are checked in tests/test_conv_direct.py)
    monkeypatch.setattr(conv_direct, "MAX_CHANNELS_OVER_WINOGRAD", 0)
    ran = _serial_runs(monkeypatch)
    # the float32 cases the direct kernels take run on the GEMM routes as well
    for min_taps in (conv_direct.MIN_TAPS, 10**9):
        monkeypatch.setattr(conv_direct, "MIN_TAPS", min_taps)
        for need_x in (True, False):
            ran.clear()
            _conv_against_torch(torch, case, dtype, need_x, seed=len(name))
            assert sorted(ran) == _expected_kernels(case, dtype), ran
        if not any(kernel.startswith("conv_direct") for kernel in ran):
            break


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_weight_gradient_rule_at_its_boundary_adds_g_times_columns_transposed(dtype):
    """k 95 / 96 × P 16·Cout − 1 / 16·Cout, on the views the kernels pass (an image of
    g3 (N, Cout, P), kept columns (N, k, P), a part's accumulator of gws (parts, Cout, k)),
    added onto what the accumulator held — twice, as for two images of one part."""
    from engine.kernels import conv_gemm

    rng = np.random.default_rng(96)
    for cout in (1, 3, 7):
        for k in (95, 96):
            for p in (16 * cout - 1, 16 * cout):
                g3 = rng.standard_normal((2, cout, p)).astype(dtype)
                kept = rng.standard_normal((2, k, p)).astype(dtype)
                gws = rng.standard_normal((2, cout, k)).astype(dtype)
                other = gws[0].copy()
                want = gws[1].astype(np.float64).copy()
                scratch = np.full((k, cout), np.nan, dtype)  # garbage from np.empty
                for b in range(2):
                    conv_gemm._weight_gradient(g3[b], kept[b], gws[1], scratch)
                    want += g3[b].astype(np.float64) @ kept[b].astype(np.float64).T
                tol = 1e-5 if dtype == np.float32 else 1e-13
                assert _rel_err(gws[1], want) <= tol, (cout, k, p)
                np.testing.assert_array_equal(gws[0], other)  # the other part's


def _owned_product(x, y):
    from engine.ops import linalg

    with two_cores.own_threads(2):
        return linalg._product(x, y)


@native
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fc_rows_route_on_thin_and_odd_gemms(monkeypatch, dtype):
    """linalg._product on Numba's threads (engine.kernels.gemm → blas.gemm): K = 1, N = 1,
    two rows, a column-major weight, the transposed-output route (N > M, yᵀ weight), a
    strided x, mixed dtypes — every result C-contiguous and equal to float64 numpy."""
    monkeypatch.setattr(parallel, "BACKGROUND", False)
    ran = record_native_runs(monkeypatch)
    rng = np.random.default_rng(7)

    def arr(*shape):
        return rng.standard_normal(shape).astype(dtype)

    cases = [(arr(1500, 1), arr(1, 1600)),             # K = 1
             (arr(3000, 700), arr(700, 1)),            # N = 1
             (arr(2, 900), arr(900, 1300)),            # two rows
             (arr(37, 300), np.asfortranarray(arr(300, 260))),
             (arr(3, 500), arr(2100, 500).T),          # N > M, transposed weight
             (arr(40, 600)[:, ::2], arr(300, 333)),    # strided x
             (arr(33, 257), rng.standard_normal((257, 301)))]  # float64 weight
    for x, y in cases:
        ran.clear()
        got = _owned_product(x, y)
        want = x.astype(np.float64) @ y.astype(np.float64)
        assert ran == ["rows_parallel"], (x.shape, y.shape)
        assert got.flags.c_contiguous and got.dtype == np.result_type(x, y)
        tol = 2e-5 if got.dtype == np.float32 else 1e-12
        assert _rel_err(got, want) <= tol * np.sqrt(x.shape[1]), (x.shape, y.shape)


# =============================================================== 3. training

def _cnn_doc(tmp_path: Path, dtype: str) -> dict:
    """3×31×29 images, batch 13 → 7×7 stride-2 stem (12, k 147, P 240: cols·gᵀ) → BN → ReLU
    → 5×5 conv of 6 channels (k 300, block route) → SiLU → 3×3 stride 1 (10, per image,
    k 54: g·colsᵀ) → BN → leaky → max pool → FC 560 → 48 → 7; SGD with momentum."""
    from engine.bench import cnn_cases

    case = cnn_cases.CnnCase(
        "review_s12_cnn", (3, 31, 29), 7, 13,
        (("conv", 12, 7, 2, 3), ("bn2",), ("relu",), ("conv", 6, 5, 1, 2), ("silu",),
         ("conv", 10, 3, 1, 1), ("bn2",), ("leaky",), ("max", 2), ("flatten",), ("fc", 48),
         ("relu",), ("fc", 7)),
        optimizer={"algorithm": "sgd", "lr": 0.05, "momentum": 0.9})  # (Adam would blow the
    # rounding noise of the conv biases before batch norm, whose gradient is 0, up to lr)
    doc = cnn_cases.document(case, cnn_cases.write_data(case, tmp_path, n=13 * 4))
    doc["training"]["dtype"] = dtype
    return doc


@native
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_hand_written_cnn_trains_the_same_with_the_parallel_routes_on_and_off(
        tmp_path, monkeypatch, dtype):
    from engine.train.trainer import Trainer

    doc = _cnn_doc(tmp_path, dtype)
    steps = 4

    def run():
        trainer = Trainer(doc, base_dir=tmp_path, steps=steps)
        losses = [trainer.train_step()["loss"] for _ in range(steps)]
        return np.array(losses), trainer.params, trainer.split_note

    with monkeypatch.context() as m:
        ran = _serial_runs(m)
        on, on_params, note = run()
    assert "BLAS on one" in note, note
    if dtype == "float32":  # the stem and the 5×5 layer (300 taps) take the direct kernels
        assert {"conv_direct.forward_parallel", "conv_direct.backward_parallel",
                "conv_gemm.forward_parallel", "conv_gemm.backward_parallel"} == set(ran)
        assert ran.count("conv_direct.backward_parallel") == 2 * steps
        assert ran.count("conv_gemm.backward_parallel") == steps  # the 3×3 layer
    else:
        assert {"conv_gemm.forward_parallel", "conv_gemm.backward_parallel",
                "conv_gemm.block_forward_parallel", "conv_gemm.block_backward_parallel"} \
            <= set(ran)
        assert ran.count("conv_gemm.backward_parallel") == 2 * steps  # stem and the 3×3
    with monkeypatch.context() as m:
        m.setattr(parallel, "available", lambda: False)
        off_ran = _serial_runs(m)
        off, off_params, _ = run()
    assert off_ran == []
    assert np.isfinite(on).all() and on[0] != on[-1]
    tol = 2e-5 if dtype == "float32" else 1e-11
    np.testing.assert_allclose(on, off, rtol=tol)
    assert set(on_params) == set(off_params)
    for name in on_params:
        np.testing.assert_allclose(on_params[name], off_params[name], rtol=tol * 10,
                                   atol=tol, err_msg=name)


# =============================================================== 4. gradcheck

def _scalar_graphs() -> dict:
    x = [n("x", "input", shape=["B", 3]), n("W", "parameter", shape=[3, 2]), n("mm", "matmul")]
    xe = [e("x:out", "mm:a"), e("W:out", "mm:b")]
    return {
        "mean-of-0d": (x + [n("s", "sum"), n("m", "mean"), n("o", "exp")],
                       xe + [e("mm:out", "s:x"), e("s:out", "m:x"), e("m:out", "o:x")],
                       ["m", "o"]),
        "add-sub-div-log-sqrt": (
            x + [n("sa", "sum"), n("sb", "mean"), n("ad", "add"), n("sb2", "sub"),
                 n("dv", "div"), n("ex", "exp"), n("lg", "log"), n("sq", "sqrt")],
            xe + [e("mm:out", "sa:x"), e("mm:out", "sb:x"), e("sa:out", "ad:a"),
                  e("sb:out", "ad:b"), e("sa:out", "sb2:a"), e("sb:out", "sb2:b"),
                  e("ad:out", "dv:a"), e("sb2:out", "dv:b"), e("dv:out", "ex:x"),
                  e("ex:out", "lg:x"), e("lg:out", "sq:x")],
            ["dv", "ex", "lg", "sq"]),
        "0d-back-onto-a-matrix": (
            x + [n("s", "sum"), n("s2", "add"), n("ad", "add"), n("t", "tanh"),
                 n("o", "sum")],
            xe + [e("mm:out", "s:x"), e("s:out", "s2:a"), e("s:out", "s2:b"),
                  e("mm:out", "ad:a"), e("s2:out", "ad:b"), e("ad:out", "t:x"),
                  e("t:out", "o:x")],
            ["ad"]),
        "activations-on-0d": (
            x + [n("s", "sum"), n("m", "mean"), n("a", "add"), n("ng", "neg"), n("ab", "abs"),
                 n("pw", "pow", exponent=3.0), n("sg", "sigmoid"), n("gl", "gelu"),
                 n("si", "silu"), n("cl", "clamp", min=-5.0, max=5.0), n("tn", "tanh")],
            xe + [e("mm:out", "s:x"), e("mm:out", "m:x"), e("s:out", "a:a"), e("m:out", "a:b"),
                  e("a:out", "ng:x"), e("ng:out", "ab:x"), e("ab:out", "pw:x"),
                  e("pw:out", "sg:x"), e("sg:out", "gl:x"), e("gl:out", "si:x"),
                  e("si:out", "cl:x"), e("cl:out", "tn:x")],
            ["ng", "pw", "gl", "tn"]),
        "loss-plus-l2-penalty": (
            [n("x", "input", shape=["B", 3]), n("y", "input", shape=["B"], dtype="int", high=2),
             n("W", "parameter", shape=[3, 2]), n("mm", "matmul"), n("ce", "cross_entropy"),
             n("sq", "pow", exponent=2.0), n("ss", "sum"),
             n("lam", "constant", value=0.01, shape=[]), n("pen", "mul"), n("loss", "add"),
             n("o", "exp")],
            [e("x:out", "mm:a"), e("W:out", "mm:b"), e("mm:out", "ce:logits"),
             e("y:out", "ce:labels"), e("W:out", "sq:x"), e("sq:out", "ss:x"),
             e("ss:out", "pen:a"), e("lam:out", "pen:b"), e("ce:loss", "loss:a"),
             e("pen:out", "loss:b"), e("loss:out", "o:x")],
            ["pen", "loss", "o"]),
        "0d-parameter": (
            [n("x", "input", shape=["B", 3]), n("P", "parameter", shape=[]), n("s", "sum"),
             n("a", "add"), n("m", "mul"), n("o", "exp")],
            [e("x:out", "s:x"), e("s:out", "a:a"), e("P:out", "a:b"), e("a:out", "m:a"),
             e("P:out", "m:b"), e("m:out", "o:x")],
            ["a", "m", "o"]),
        "index-to-0d-and-concat": (
            x + [n("r", "index", axis=0, index=1), n("c", "index", axis=0, index=0),
                 n("s2", "mean"), n("a", "add"), n("r1", "reshape", shape=[1]),
                 n("r2", "reshape", shape=[1]), n("cc", "concat", axis=0),
                 n("sm", "softmax", axis=0), n("q", "sum")],
            xe + [e("mm:out", "r:x"), e("r:out", "c:x"), e("mm:out", "s2:x"),
                  e("c:out", "a:a"), e("s2:out", "a:b"), e("a:out", "r1:x"),
                  e("c:out", "r2:x"), e("r1:out", "cc:inputs[0]"),
                  e("r2:out", "cc:inputs[1]"), e("cc:out", "sm:x"), e("sm:out", "q:x")],
            ["a", "r1", "r2"]),
    }


SCALAR_GRAPHS = _scalar_graphs()


@pytest.mark.parametrize("name", list(SCALAR_GRAPHS))
def test_gradcheck_passes_graphs_with_scalars_in_odd_places(name):
    from engine.core.gradcheck import gradcheck_document

    nodes, edges, scalar_readers = SCALAR_GRAPHS[name]
    reports = {r.id: r for r in gradcheck_document(doc_of(nodes, edges), seed=4)}
    assert all(r.ok for r in reports.values()), \
        [(r.id, r.max_excess, r.worst) for r in reports.values() if not r.ok]
    for nid in scalar_readers:  # the nodes reading a 0-d value were really perturbed
        assert reports[nid].checked > 0, nid


def test_gradcheck_catches_a_wrong_gradient_of_a_node_reading_a_numpy_scalar(monkeypatch):
    """exp's backward made 10 % wrong where its input is 0-d: the node reading the numpy
    scalar that ``add`` of two sums gives is flagged, the others still pass."""
    from engine.core.gradcheck import gradcheck_document

    spec = get("exp")
    real = spec.backward

    def wrong(ctx, params, g):
        grads = real(ctx, params, g)
        return tuple(None if v is None else (v * 1.1 if np.ndim(v) == 0 else v) for v in grads)

    monkeypatch.setattr(spec, "backward", wrong)
    nodes, edges, _ = SCALAR_GRAPHS["add-sub-div-log-sqrt"]
    reports = {r.id: r for r in gradcheck_document(doc_of(nodes, edges), seed=1)}
    assert not reports["ex"].ok and reports["ex"].checked > 0
    assert all(r.ok for nid, r in reports.items() if nid != "ex")


# =============================================================== 5. threads

def _kernels_library():
    from threadpoolctl import ThreadpoolController

    ours = [lib for lib in ThreadpoolController().select(user_api="blas").lib_controllers
            if os.path.realpath(lib.filepath) == os.path.realpath(blas.library_path())]
    assert len(ours) == 1
    return ours[0]


@native
def test_the_next_launch_after_threadpool_limits_runs_the_library_on_one_thread(monkeypatch):
    """threadpool_limits(2) raises the kernels' library to two threads; the next parallel
    launch (the FC rows kernel, whose workers call blas.gemm) must run it on one thread
    inside the launch, again after it was raised between launches, and compute right; the
    limit's exit restores one thread."""
    from threadpoolctl import threadpool_limits

    from engine.kernels import gemm

    monkeypatch.setattr(parallel, "BACKGROUND", False)
    lib = _kernels_library()
    inside: list[int] = []
    real_launch = parallel.launch

    class launch:  # noqa: N801  (stands in for the context manager function)
        def __enter__(self):
            self._cm = real_launch()
            self._cm.__enter__()
            inside.append(lib.get_num_threads())

        def __exit__(self, *exc):
            return self._cm.__exit__(*exc)

    monkeypatch.setattr(parallel, "launch", launch)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 300)).astype(np.float32)
    y = rng.standard_normal((300, 200)).astype(np.float32)
    assert lib.get_num_threads() == 1
    with threadpool_limits(limits=2):
        assert lib.get_num_threads() == 2  # (the limit reached it: the check can fail)
        for _ in range(2):
            out = np.full((64, 200), np.nan, np.float32)
            assert parallel.run(gemm.rows_parallel, (x, y, out), 64, 2, np.float32, "C")
            assert _rel_err(out, x.astype(np.float64) @ y) <= 1e-5
            lib.set_num_threads(2)  # raised between launches (as own_threads' exit does)
        assert inside == [1, 1]
    assert lib.get_num_threads() == 1


# =============================================================== 6. without the library

def test_recurrent_ops_run_without_the_kernels_gemm_library(monkeypatch):
    import engine.kernels

    parallel.available.cache_clear()
    monkeypatch.delitem(sys.modules, "engine.kernels.blas", raising=False)
    monkeypatch.delattr(engine.kernels, "blas", raising=False)
    monkeypatch.setitem(sys.modules, "scipy_openblas64", None)  # the package missing
    try:
        assert not parallel.available()  # the parallel routes fall back (this much works)
        rng = np.random.default_rng(0)
        x = rng.standard_normal((2, 3, 4))
        w_ih, w_hh = rng.standard_normal((5, 4)), rng.standard_normal((5, 5))
        ys = get("rnn").forward(OpCtx(), {"nonlinearity": "tanh"}, x, w_ih, w_hh)
        assert ys[0].shape == (2, 3, 5) and np.isfinite(ys[0]).all()
    finally:
        parallel.available.cache_clear()
        monkeypatch.undo()
