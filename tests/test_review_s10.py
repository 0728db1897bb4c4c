"""Review of session 10's changes against PyTorch and numpy references, on shapes unlike the
bench presets: conv2d's padded image (engine.ops.conv._pad) and the pools that share it, the
GEMM kernels' im2col / col2im loop nests and plain-loop bias add (engine.kernels.conv_gemm),
the reassociated bias-gradient sums (engine.kernels.lane_sums.total) on the per-image,
whole-batch and Winograd kernels, and the heap policy of the wiregrad processes
(engine.base.heap) with its environment opt-outs.

The parallel Numba kernels run for real on a few shapes; the sweeps run each parallel
kernel's Python body (its ``prange`` over the parts as a plain loop) around the same compiled
per-part kernels, which keeps the file's compile time to seconds rather than minutes."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import OpCtx, assert_close, assert_conv_matches_torch
from tests.split_help import force_split

_GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def _emulated_parallel(monkeypatch) -> list[str]:
    """parallel.run runs the parallel kernel's Python body over the same bounds (each part
    one compiled serial call, in order); returns the list of kernels run, as module.name."""
    from engine.kernels import parallel

    ran: list[str] = []

    def run(kernel, args, rows, threads, dtype):
        if threads < 2:
            return False
        fn = kernel.py_func
        ran.append(f"{fn.__module__.rsplit('.', 1)[-1]}.{fn.__name__}")
        fn(*args, parallel.bounds(rows, threads))
        return True

    monkeypatch.setattr(parallel, "run", run)
    return ran


def _recorded_parallel(monkeypatch) -> list[str]:
    """parallel.run as it is (the real parallel kernels), recording the kernels it ran."""
    from engine.kernels import parallel

    ran: list[str] = []
    real = parallel.run

    def run(kernel, args, rows, threads, dtype):
        done = real(kernel, args, rows, threads, dtype)
        if done:
            fn = kernel.py_func
            ran.append(f"{fn.__module__.rsplit('.', 1)[-1]}.{fn.__name__}")
        return done

    monkeypatch.setattr(parallel, "run", run)
    return ran


def _inputs(x_shape, w_shape, bias: bool, dtype, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype) if bias else None
    return x, w, b


def _strided(a: np.ndarray) -> np.ndarray:
    """The same values in a non-contiguous array (rows and columns swapped in memory)."""
    return np.ascontiguousarray(a.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)


def _conv_vs_torch(torch, x, w, b, s, p, d, needs=(True, True, True), strided=False):
    """conv2d through the registry against PyTorch: forward and every gradient (*strided*:
    x and the output gradient non-contiguous)."""
    from engine.core import registry

    spec, ctx = registry.get("conv2d"), OpCtx(needs)
    params = {"stride": s, "padding": p, "dilation": d, "groups": 1}
    xs = _strided(x) if strided else x
    if strided:
        assert not xs.flags.c_contiguous
    args = (xs, w) if b is None else (xs, w, b)
    y = spec.forward(ctx, params, *args)
    g = np.random.default_rng(99).standard_normal(y.shape).astype(x.dtype)
    grads = spec.backward(ctx, params, _strided(g) if strided else g)
    assert_conv_matches_torch(torch, x, w, b, g, s, p, d, needs, y, grads)
    return ctx


# (x shape, weight shape, stride, padding, dilation, bias, route)
GEMM_CASES = [
    ((3, 1, 11, 9), (4, 1, 5, 5), 1, 2, 1, True, "image"),
    ((5, 3, 13, 10), (6, 3, 7, 7), 1, 3, 1, False, "image"),
    ((3, 3, 10, 9), (2, 3, 2, 2), 2, 0, 1, True, "image"),
    ((2, 1, 12, 11), (3, 1, 3, 3), 1, 1, 2, True, "image"),
    ((5, 3, 9, 8), (5, 3, 1, 1), 1, 0, 1, True, "image"),
    ((3, 3, 10, 10), (4, 3, 3, 5), 3, 2, 1, True, "image"),    # non-square, stride 3
    ((7, 1, 6, 17), (2, 1, 5, 2), 2, 3, 2, False, "image"),    # non-square, s 2, d 2
    ((3, 3, 8, 8), (4, 3, 2, 2), 1, 0, 1, True, "image"),      # even kernel, stride 1
    ((3, 1, 5, 5), (2, 1, 7, 7), 1, 3, 1, True, "image"),      # kernel wider than the image
    ((3, 2, 10, 11), (3, 2, 2, 2), 3, 1, 1, True, "image"),    # stride past the kernel
    ((3, 2, 4, 5), (3, 2, 2, 3), 1, 0, 1, True, "whole"),      # tiny output
    ((5, 7, 9, 9), (4, 7, 5, 5), 2, 2, 1, True, "whole"),
    ((3, 20, 7, 7), (2, 20, 3, 3), 1, 1, 2, False, "whole"),   # dilation
    ((7, 9, 6, 7), (3, 9, 5, 5), 1, 1, 1, True, "whole"),      # stride-1 nest, odd batch
    ((5, 1, 5, 4), (3, 1, 3, 3), 3, 1, 1, True, "whole"),      # one channel, stride 3
    ((3, 3, 6, 6), (2, 3, 7, 7), 2, 4, 2, True, "whole"),      # k = 147, 1×1 output
]
IMAGE_CASE, WHOLE_CASE = GEMM_CASES[0], GEMM_CASES[11]
_KERNELS = {
    "image": ["conv_gemm.forward_parallel", "conv_gemm.backward_parallel"],
    "whole": ["conv_gemm.block_forward_parallel", "conv_gemm.block_backward_parallel"],
    "winograd": ["winograd_parts.forward_parallel", "winograd_parts.backward_parallel"],
}


def _case_id(case) -> str:
    xs, ws, s, p, d, b, route = case
    return (f"{route}-x{'x'.join(map(str, xs))}-w{'x'.join(map(str, ws))}"
            f"-s{s}p{p}d{d}{'-b' if b else ''}")


@pytest.mark.torch
@pytest.mark.parametrize("variant", ["plain", "tight", "no_x", "strided"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", GEMM_CASES, ids=_case_id)
def test_gemm_kernels_match_torch(torch, monkeypatch, case, dtype, variant):
    """The per-image and whole-batch parallel GEMM kernels' parts (im2col/col2im on both loop
    nests, the bias add, the bias-gradient sums) against PyTorch. "tight": the per-image
    forward keeps no columns (the backward rebuilds them) and the whole-batch route takes
    blocks of 2 images (a short last block per part); "no_x": x is data (no col2im);
    "strided": x and the output gradient are non-contiguous views."""
    from engine.ops import conv_by_image, conv_direct, conv_whole, conv_winograd

    x_shape, w_shape, s, p, d, bias, route = case
    force_split(monkeypatch, spy=False, native=True)
    ran = _emulated_parallel(monkeypatch)
    monkeypatch.setattr(conv_winograd, "MIN_CHANNELS", 10**9)
    monkeypatch.setattr(conv_winograd, "MIN_CHANNELS_5X5", 10**9)
    monkeypatch.setattr(conv_direct, "MIN_TAPS", 10**9)  # (tests/test_conv_direct.py)
    if variant == "tight":
        monkeypatch.setattr(conv_by_image, "KEEP_BYTES", 0)
        monkeypatch.setattr(conv_whole, "block_images", lambda *a: 2)
    needs = (False, True, True) if variant == "no_x" else (True, True, True)
    x, w, b = _inputs(x_shape, w_shape, bias, dtype)
    _conv_vs_torch(torch, x, w, b, s, p, d, needs, strided=variant == "strided")
    assert ran == _KERNELS[route]


WINOGRAD_CASES = [
    ((3, 1, 7, 6), (4, 1, 3, 3), 1, 1, 1, True, "winograd"),   # one input channel
    ((5, 3, 5, 9), (2, 3, 3, 3), 1, 0, 1, True, "winograd"),   # odd output 3×7
    ((3, 2, 4, 4), (3, 2, 3, 3), 1, 2, 1, False, "winograd"),  # padding 2
    ((3, 3, 9, 8), (3, 3, 5, 5), 1, 2, 1, True, "winograd"),   # F(2×2, 5×5)
    ((2, 1, 6, 5), (2, 1, 5, 5), 1, 0, 1, True, "winograd"),   # 2×1 output
    ((7, 3, 5, 5), (5, 3, 5, 5), 1, 3, 1, True, "winograd"),   # padding 3, odd batch
]


@pytest.mark.torch
@pytest.mark.parametrize("case", WINOGRAD_CASES, ids=_case_id)
def test_winograd_kernels_match_torch(torch, monkeypatch, case):
    """The Winograd parallel kernels' parts (bias gradient by lanes) at 1 and 3 channels, in
    float64 (their float32 twin's compile alone takes ~15 s; tests/test_lane_sums.py runs the
    float32 bias gradient through the real parallel kernel)."""
    dtype = np.float64
    from engine.ops import conv_winograd

    x_shape, w_shape, s, p, d, bias, _ = case
    force_split(monkeypatch, spy=False, native=True)
    ran = _emulated_parallel(monkeypatch)
    monkeypatch.setattr(conv_winograd, "MIN_CHANNELS", 1)
    monkeypatch.setattr(conv_winograd, "MIN_CHANNELS_5X5", 1)
    x, w, b = _inputs(x_shape, w_shape, bias, dtype, seed=1)
    ctx = _conv_vs_torch(torch, x, w, b, s, p, d)
    assert ctx.saved[0] == "winograd"
    assert ran == _KERNELS["winograd"]


@pytest.mark.torch
@pytest.mark.parametrize("case", [IMAGE_CASE, WHOLE_CASE], ids=_case_id)
def test_real_parallel_gemm_kernels_match_torch_float64(torch, monkeypatch, case):
    """The compiled parallel kernels themselves (prange over Numba's threads), float64."""
    from engine.ops import conv_winograd

    x_shape, w_shape, s, p, d, bias, route = case
    force_split(monkeypatch, spy=False, native=True)
    ran = _recorded_parallel(monkeypatch)
    monkeypatch.setattr(conv_winograd, "MIN_CHANNELS", 10**9)
    x, w, b = _inputs(x_shape, w_shape, bias, np.float64, seed=2)
    _conv_vs_torch(torch, x, w, b, s, p, d)
    assert ran == _KERNELS[route]


SERIAL_CASES = [
    ((1, 3, 7, 7), (2, 3, 7, 7), 1, 3, 1, True, "image"),      # batch 1, kernel 7
    ((1, 1, 5, 4), (3, 1, 2, 3), 2, 1, 1, True, "whole"),      # batch 1, non-square
    *(c for c in GEMM_CASES if c[:2] in {((3, 3, 10, 9), (2, 3, 2, 2)),
                                         ((3, 3, 10, 10), (4, 3, 3, 5)),
                                         ((7, 1, 6, 17), (2, 1, 5, 2)),
                                         ((5, 7, 9, 9), (4, 7, 5, 5)),
                                         ((3, 20, 7, 7), (2, 20, 3, 3))}),
]


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", SERIAL_CASES, ids=_case_id)
def test_numpy_routes_match_torch(torch, monkeypatch, case, dtype):
    """No parallel Numba kernels (the ops split by halves): the padded image feeds numpy's
    windows and the Numba col2im; batch 1 runs on one thread."""
    from engine.ops import conv_winograd

    x_shape, w_shape, s, p, d, bias, _ = case
    force_split(monkeypatch, spy=False, native=False)
    ran = _recorded_parallel(monkeypatch)
    monkeypatch.setattr(conv_winograd, "MIN_CHANNELS", 10**9)
    x, w, b = _inputs(x_shape, w_shape, bias, dtype, seed=3)
    _conv_vs_torch(torch, x, w, b, s, p, d)
    assert ran == []


@pytest.mark.parametrize("route", ["image", "whole", "winograd"])
def test_bias_gradient_keeps_nan_and_inf(monkeypatch, route):
    """Reassociated sums must still propagate NaN and ±inf like a plain float64 sum."""
    from engine.core import registry
    from engine.ops import conv_winograd

    force_split(monkeypatch, spy=False, native=True)
    ran = _emulated_parallel(monkeypatch)
    monkeypatch.setattr(conv_winograd, "MIN_CHANNELS", 1 if route == "winograd" else 10**9)
    x_shape, w_shape, s = {
        "image": ((4, 1, 9, 9), (5, 1, 3, 3), 1),
        "whole": ((4, 3, 5, 5), (5, 3, 3, 3), 2),
        "winograd": ((4, 2, 7, 7), (5, 2, 3, 3), 1),
    }[route]
    dtype = np.float64 if route == "winograd" else np.float32  # (as compiled above)
    x, w, b = _inputs(x_shape, w_shape, True, dtype, seed=4)
    params = {"stride": s, "padding": 1, "dilation": 1, "groups": 1}
    spec, ctx = registry.get("conv2d"), OpCtx()
    y = spec.forward(ctx, params, x, w, b)
    g = np.random.default_rng(5).standard_normal(y.shape).astype(dtype)
    g[1, 0, 0, 0] = np.nan
    g[3, 1, -1, -1] = np.inf
    g[0, 2, 0, 1], g[2, 2, 1, 0] = np.inf, -np.inf
    g[2, 3, 0, 0] = -np.inf
    with np.errstate(invalid="ignore"):  # inf − inf in the other gradients
        gb = spec.backward(ctx, params, g)[2]
        want = g.astype(np.float64).sum(axis=(0, 2, 3))
    assert ran == _KERNELS[route]
    assert np.isnan(gb[0]) and np.isnan(gb[2])
    assert gb[1] == np.inf and gb[3] == -np.inf
    np.testing.assert_allclose(gb[4], want[4], rtol=1e-5)


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape,k,s,p", [
    ((2, 3, 7, 9), 3, 2, 1),
    ((1, 1, 5, 5), 5, 1, 2),
    ((3, 2, 6, 5), 2, 1, 1),
    ((2, 1, 8, 7), 4, 3, 2),
    ((3, 2, 7, 7), 2, 2, 1),   # the 2×2 stride-2 pool, padded
    ((1, 2, 4, 4), 3, 3, 1),
])
def test_padded_pools_match_torch(torch, x_shape, k, s, p, dtype):
    """Max pooling pads with −inf (all-negative inputs: a zero border would win) and average
    pooling with zeros, counted or not."""
    from engine.core import registry

    f = torch.nn.functional
    rng = np.random.default_rng(6)
    x = (-np.abs(rng.standard_normal(x_shape)) - 1.0).astype(dtype)
    for name, extra in [("max_pool2d", [{}]),
                        ("avg_pool2d", [{"count_include_pad": True},
                                        {"count_include_pad": False}])]:
        for more in extra:
            params = {"kernel": k, "stride": s, "padding": p, **more}
            spec, ctx = registry.get(name), OpCtx((True,))
            y = spec.forward(ctx, params, x)
            g = rng.standard_normal(y.shape).astype(dtype)
            (gx,) = spec.backward(ctx, params, g)
            xt = torch.tensor(x.astype(np.float64), requires_grad=True)
            if name == "max_pool2d":
                yt = f.max_pool2d(xt, k, s, p)
            else:
                yt = f.avg_pool2d(xt, k, s, p, count_include_pad=more["count_include_pad"])
            yt.backward(torch.tensor(g.astype(np.float64)))
            assert_close(y, yt.detach().numpy(), dtype, f"{name} {more} forward")
            assert_close(gx, xt.grad.numpy(), dtype, f"{name} {more} input gradient")
            if name == "max_pool2d":
                assert np.isfinite(y).all() and (y < 0).all()


def test_pad_value_on_odd_dtypes_and_empty_images():
    """The direct border keeps dtype and values like np.pad on float64, an empty batch and
    a one-pixel image."""
    from engine.ops.conv import _pad

    for x, pad, value in [
        (np.arange(6, dtype=np.float64).reshape(1, 1, 2, 3), 2, -np.inf),
        (np.zeros((0, 3, 4, 4), np.float32), 1, 0.0),
        (np.full((2, 1, 1, 1), 7.0, np.float32), 3, -np.inf),
        (np.ones((1, 2, 3, 3), np.float32).transpose(0, 1, 3, 2), 1, np.nan),
    ]:
        got = _pad(x, pad, value)
        want = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=value)
        assert got.dtype == x.dtype and got.flags.c_contiguous
        np.testing.assert_array_equal(got, want)
        assert got is not x


# ------------------------------------------------------------------------- heap policy

_CLI_PROBE = r"""
import json, sys
from engine import cli
from engine.base import heap
rc = cli.main(["validate", "spiral_mlp"])
again = heap.keep_freed_memory() if heap.is_kept() else None
heap.release_freed_memory()
print("HEAP " + json.dumps({"rc": rc, "kept": heap.is_kept(), "again": again}))
"""

_HEAP_ENV = ("WIREGRAD_KEEP_FREED_MEMORY", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_",
             "GLIBC_TUNABLES")


def _env(**extra: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in _HEAP_ENV}
    return {**clean, **extra}


@pytest.mark.parametrize("extra", [
    {},
    {"WIREGRAD_KEEP_FREED_MEMORY": "1"},
    {"WIREGRAD_KEEP_FREED_MEMORY": "0"},
    {"WIREGRAD_KEEP_FREED_MEMORY": " 0 "},
    {"MALLOC_TRIM_THRESHOLD_": "1000000"},
    {"MALLOC_MMAP_THRESHOLD_": "65536"},
    {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1000000"},
    {"GLIBC_TUNABLES": "glibc.cpu.x86_rep_movsb_threshold=4096"},
], ids=lambda e: ",".join(f"{k}={v.strip()}" for k, v in e.items()) or "default")
def test_cli_turns_the_policy_on_unless_opted_out(extra):
    out = subprocess.run([sys.executable, "-c", _CLI_PROBE], env=_env(**extra),
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("HEAP ")]
    assert line, out.stdout
    res = json.loads(line[-1][5:])
    assert res["rc"] == 0
    on = _GLIBC and extra.get("WIREGRAD_KEEP_FREED_MEMORY", "1").strip() != "0" and not (
        set(extra) & {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"}) \
        and "glibc.malloc." not in extra.get("GLIBC_TUNABLES", "")
    assert res["kept"] is on, res  # and release_freed_memory leaves it as it was
    assert res["again"] is (True if on else None)  # a second call keeps it on


@pytest.mark.parametrize("extra", [{"WIREGRAD_KEEP_FREED_MEMORY": "0"},
                                   {"MALLOC_TRIM_THRESHOLD_": "1000000"}],
                         ids=["opted-out", "glibc-env"])
def test_cli_module_still_validates(extra):
    out = subprocess.run([sys.executable, "-m", "engine.cli", "validate", "spiral_mlp"],
                         env=_env(**extra), capture_output=True, text=True, timeout=120,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "ok"


@pytest.mark.parametrize("extra", [{}, {"MALLOC_TRIM_THRESHOLD_": "1000000"}],
                         ids=["policy-on", "glibc-env"])
def test_cli_trains_under_the_policy(tmp_path, extra):
    run = tmp_path / "run"
    out = subprocess.run([sys.executable, "-m", "engine.cli", "train", "spiral_mlp",
                          "--steps", "3", "--quiet", "--out", str(run)],
                         env=_env(**extra), capture_output=True, text=True, timeout=180,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert (run / "weights.safetensors").is_file()
