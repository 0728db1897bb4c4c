"""One-pass activation kernels around convolutions (ReLU, leaky ReLU, SiLU), each with a numpy
twin.

NumPy spends three passes and two temporaries on ``np.where(x > 0, x, x·s)`` (a mask, a
product, the select); these kernels read their inputs once and write once. Leaky ReLU computes
the same products as the numpy formula (bit for bit, any float dtype, NaN propagates). ReLU
runs its kernels only on large arrays (the op's ``RELU_KERNEL_MIN``), as numpy's
``np.maximum(x, 0)`` and ``g · (x > 0)`` cost 4.3× and 2.6× the one-pass kernels on 1M float32
(0.39 / 0.41 ms against 0.09 / 0.16 ms, one-thread CPU time, malloc kept), while a small graph
(the spiral MLP) would pay 0.7 s of compile on a cold kernel cache for microseconds. SiLU's
float32 kernel returns the output and its slope in one pass (the backward is then
``g · slope``), with ``e^(−|x|)`` from the libm-free float32 exponential of
:mod:`engine.kernels.elementwise` (within ~1 ulp); float64 keeps the exact numpy formula.

Kernels take flat contiguous arrays and are serial (see :mod:`engine.kernels.elementwise`); the
entry points take an optional *blocks* runner, with which the op runs a large array as
contiguous element blocks on both cores (:mod:`engine.ops.two_cores`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numba import njit, prange

from engine.kernels import parallel
from engine.kernels.cold import call, twin
from engine.kernels.elementwise import _FAST, F32, _exp_nonpos32

SILU_SATURATE = 36.0  # e^-36 < float32 eps²: beyond, sigmoid is exactly 0 or 1


@njit(cache=True, nogil=True, error_model="numpy")
def relu_fwd(x, out):  # x, out: (N,); out = 0 where x <= 0, else x (NaN stays NaN)
    z = x.dtype.type(0)
    for i in range(x.size):
        v = x[i]
        out[i] = z if v <= z else v


@njit(cache=True, nogil=True, error_model="numpy")
def relu_bwd(x, g, out):  # x, g, out: (N,); out = g · (x > 0), the numpy product bit for bit
    ft = g.dtype.type  # bool → 0.0 / 1.0
    for i in range(x.size):
        out[i] = g[i] * ft(x[i] > 0)


@njit(cache=True, nogil=True, error_model="numpy")
def leaky_fwd(x, slope, out):  # x, out: (N,); out = x if x > 0 else slope·x
    s = x.dtype.type(slope)
    for i in range(x.size):
        v = x[i]
        out[i] = v if v > 0 else v * s


@njit(cache=True, nogil=True, error_model="numpy")
def leaky_bwd(x, g, slope, out):  # x, g, out: (N,); out = g if x > 0 else slope·g
    s = g.dtype.type(slope)
    for i in range(x.size):
        out[i] = g[i] if x[i] > 0 else g[i] * s


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_FAST)
def silu_fwd_d32(x, out, d):  # x, out, d: (N,) float32; out = x·σ(x), d = silu'(x)
    for i in range(x.size):
        v = x[i]
        a = abs(v)
        e = _exp_nonpos32(-min(a, F32(SILU_SATURATE)))
        e = e if a < F32(SILU_SATURATE) else F32(0.0)
        r = F32(1.0) / (F32(1.0) + e)
        s = r if v >= F32(0.0) else e * r  # σ(x)
        c = e * r if v >= F32(0.0) else r  # 1 − σ(x), without cancellation
        out[i] = v * s
        d[i] = s * (F32(1.0) + v * c)


@njit(cache=True, nogil=True, parallel=True)
def relu_fwd_parallel(x, out, bounds):
    # relu_fwd over element blocks bounds[t] … bounds[t+1] − 1, one per thread
    for t in prange(bounds.shape[0] - 1):
        lo, hi = bounds[t], bounds[t + 1]
        relu_fwd(x[lo:hi], out[lo:hi])


@njit(cache=True, nogil=True, parallel=True)
def relu_bwd_parallel(x, g, out, bounds):
    for t in prange(bounds.shape[0] - 1):
        lo, hi = bounds[t], bounds[t + 1]
        relu_bwd(x[lo:hi], g[lo:hi], out[lo:hi])


@njit(cache=True, nogil=True, parallel=True)
def leaky_fwd_parallel(x, slope, out, bounds):
    for t in prange(bounds.shape[0] - 1):
        lo, hi = bounds[t], bounds[t + 1]
        leaky_fwd(x[lo:hi], slope, out[lo:hi])


@njit(cache=True, nogil=True, parallel=True)
def leaky_bwd_parallel(x, g, slope, out, bounds):
    for t in prange(bounds.shape[0] - 1):
        lo, hi = bounds[t], bounds[t + 1]
        leaky_bwd(x[lo:hi], g[lo:hi], slope, out[lo:hi])


@njit(cache=True, nogil=True, parallel=True)
def silu_fwd_d32_parallel(x, out, d, bounds):
    for t in prange(bounds.shape[0] - 1):
        lo, hi = bounds[t], bounds[t + 1]
        silu_fwd_d32(x[lo:hi], out[lo:hi], d[lo:hi])


def relu_fwd_ref(x: np.ndarray) -> np.ndarray:
    """Numpy twin of :func:`relu_fwd`."""
    return np.maximum(x, x.dtype.type(0))


def relu_bwd_ref(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Numpy twin of :func:`relu_bwd`."""
    return g * (x > 0)


def leaky_fwd_ref(x: np.ndarray, slope: float) -> np.ndarray:
    """Numpy twin of :func:`leaky_fwd`."""
    return np.where(x > 0, x, x * x.dtype.type(slope))


def leaky_bwd_ref(x: np.ndarray, g: np.ndarray, slope: float) -> np.ndarray:
    """Numpy twin of :func:`leaky_bwd`."""
    return np.where(x > 0, g, g * g.dtype.type(slope))


def silu_fwd_d_ref(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Numpy twin of :func:`silu_fwd_d32` (exact exponential, float64 inside)."""
    v = x.astype(np.float64)
    e = np.exp(-np.abs(v))
    r = 1 / (1 + e)
    s = np.where(v >= 0, r, e * r)
    c = np.where(v >= 0, e * r, r)
    return (v * s).astype(x.dtype), (s * (1 + v * c)).astype(x.dtype)


# cold-start twins (engine.kernels.cold): the kernels' arguments, outputs written in place


@twin(relu_fwd)
def _relu_fwd_cold(x, out):
    out[:] = np.where(x <= 0, x.dtype.type(0), x)


@twin(relu_bwd)
def _relu_bwd_cold(x, g, out):
    out[:] = relu_bwd_ref(x, g)


@twin(leaky_fwd)
def _leaky_fwd_cold(x, slope, out):
    out[:] = leaky_fwd_ref(x, slope)


@twin(leaky_bwd)
def _leaky_bwd_cold(x, g, slope, out):
    out[:] = leaky_bwd_ref(x, g, slope)


@twin(silu_fwd_d32)
def _silu_fwd_d32_cold(x, out, d):
    out[:], d[:] = silu_fwd_d_ref(x)


# ------------------------------------------------------------------ entry points


def _flat(a: np.ndarray, dtype) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=dtype).reshape(-1)


Blocks = Callable[[int, Callable[[int, int], object]], object]  # runs fn(lo, hi) over range(n)


def _each(n: int, fn: Callable[[int, int], object], blocks: Blocks | None, threads: int = 1,
          kernel=None, args: tuple = ()) -> None:
    """``kernel(*args, bounds)`` on *threads* of Numba's (:func:`parallel.run`, when ≥ 2 and
    compiled), else ``fn(0, n)``, or *blocks* (the op's two-core runner) over contiguous
    element blocks."""
    if kernel is not None and parallel.run(kernel, args, n, threads, args[0].dtype):
        return
    if blocks is None:
        fn(0, n)
    else:
        blocks(n, fn)


def relu(x: np.ndarray, blocks: Blocks | None = None, threads: int = 1) -> np.ndarray:
    """ReLU of *x* (any shape), one pass (in element blocks through *blocks*, if given, or on
    *threads* of Numba's)."""
    flat = _flat(x, x.dtype)
    out = np.empty_like(flat)
    _each(flat.size, lambda lo, hi: call(relu_fwd, flat[lo:hi], out[lo:hi]), blocks, threads,
          relu_fwd_parallel, (flat, out))
    return out.reshape(x.shape)


def relu_grad(x: np.ndarray, g: np.ndarray, blocks: Blocks | None = None,
              threads: int = 1) -> np.ndarray:
    """``g · (x > 0)``, one pass; *g* broadcasts to x's shape."""
    dtype = np.result_type(x.dtype, g.dtype)
    gf = _flat(np.broadcast_to(g, x.shape), dtype)
    xf = _flat(x, x.dtype)
    out = np.empty_like(gf)
    _each(xf.size, lambda lo, hi: call(relu_bwd, xf[lo:hi], gf[lo:hi], out[lo:hi]), blocks,
          threads if xf.dtype == gf.dtype else 1, relu_bwd_parallel, (xf, gf, out))
    return out.reshape(x.shape)


def leaky_relu(x: np.ndarray, slope: float, blocks: Blocks | None = None,
               threads: int = 1) -> np.ndarray:
    """Leaky ReLU of *x* (any shape), one pass."""
    flat = _flat(x, x.dtype)
    out = np.empty_like(flat)
    _each(flat.size, lambda lo, hi: call(leaky_fwd, flat[lo:hi], slope, out[lo:hi]), blocks,
          threads, leaky_fwd_parallel, (flat, float(slope), out))
    return out.reshape(x.shape)


def leaky_relu_grad(x: np.ndarray, g: np.ndarray, slope: float,
                    blocks: Blocks | None = None, threads: int = 1) -> np.ndarray:
    """``g · leaky'(x)``, one pass; *g* broadcasts to x's shape."""
    dtype = np.result_type(x.dtype, g.dtype)
    gf = _flat(np.broadcast_to(g, x.shape), dtype)
    xf = _flat(x, x.dtype)
    out = np.empty_like(gf)
    _each(xf.size, lambda lo, hi: call(leaky_bwd, xf[lo:hi], gf[lo:hi], slope,
                                                 out[lo:hi]), blocks,
          threads if xf.dtype == gf.dtype else 1, leaky_bwd_parallel,
          (xf, gf, float(slope), out))
    return out.reshape(x.shape)


def silu_and_slope32(x: np.ndarray, blocks: Blocks | None = None,
                     threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(SiLU(x), SiLU'(x)) of a float32 *x* in one pass."""
    flat = _flat(x, np.float32)
    out, d = np.empty_like(flat), np.empty_like(flat)
    _each(flat.size, lambda lo, hi: call(silu_fwd_d32, flat[lo:hi], out[lo:hi],
                                                   d[lo:hi]), blocks,
          threads, silu_fwd_d32_parallel, (flat, out, d))
    return out.reshape(x.shape), d.reshape(x.shape)
