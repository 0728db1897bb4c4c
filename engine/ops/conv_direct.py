"""The direct route of conv2d: float32 convolutions of many taps, on two cores, with no
columns (:mod:`engine.kernels.conv_direct`).

Both GEMM routes (:mod:`engine.ops.conv_by_image`, :mod:`engine.ops.conv_whole`) hand their
parallel path to it where it takes the pass (:func:`takes_forward`, :func:`takes_backward`:
groups of one, the measured rules below); each saves the padded image as it would for its
own backward, so either backward reads what the other forward saved. While a direct kernel
compiles in the background (:func:`engine.kernels.parallel.ready`) the pass runs the route's
numpy code, rather than asking for a GEMM kernel that the direct one is about to replace.

Measured, one thread, direct / GEMM route time, float32 (forward, backward):

- Per-image route shapes (k ≤ 160): k = 147 (3×54² 7×7 stride 2 → 16, ``cnn_stem48``'s stem)
  0.67, 0.67–0.69; k = 150 (6×14² 5×5 → 16, ``cnn_lenet5``) 0.74, 0.75; k = 144 stride 2,
  P = 64 0.52, 0.75; k = 108, P = 16 0.44, 0.70; k = 98 0.85, 0.75; k = 81 0.92, 0.68; k = 75
  stride 2 0.82–1.14, 0.70–0.74; k = 72 stride 2 0.79, 1.00; k = 100 (4×24² 5×5 → 16) 1.08–1.14,
  0.87–0.97; 3×54² 7×7 stride 2 → 64 0.79–1.03, 0.86–0.88.
- Whole-batch route shapes (wide inputs, tiny outputs): 32×12² 3×3 stride 2 → 32
  (``cnn_issue24``'s third layer) 0.29, 0.61; 16×16² 5×5 stride 2 → 32 0.38, 0.51; 8×20² 7×7 →
  16 0.32, 0.44; 64×12² 5×5 stride 2 → 64 0.47, 0.84; 64×16² 3×3 stride 2 → 128 0.75, 0.85;
  128×16² 3×3 stride 2 → 128 0.62, 0.81; 256×8² 1×1 → 64 0.53, 0.71.
- Below :data:`MIN_TAPS` the GEMM's own blocking wins: k = 50 1.0, k = 36 1.0 / 0.9,
  k ≤ 27 1.5–4.2 (the block's stores and per-tap loads outweigh its few multiply-adds).
- The weight gradient's pixel loop is short on tiny outputs: with P < :data:`WIDE_PIXELS` and
  more than :data:`MAX_LANES_TINY` output channels, the GEMM's wide products win (P = 16:
  128×8² 3×3 stride 2 → 128 1.09–1.11, → 256 1.26, 256×4² 1×1 → 256 1.37; but → 64 0.81–0.83),
  and under :data:`MIN_PIXELS_BACKWARD` pixels at any width. The forward's limits (pixels,
  weights, 1×1 kernels) and their figures are beside the constants.
- Stride-1 3×3 and 5×5 layers of enough channels take Winograd before they get here, which
  is 1.6–1.9× faster than direct on them with AVX-512's block (forward + backward, one
  thread: 32×12² 5×5 → 64 9.3 ms against 14.4; 16×12² 3×3 → 32 1.7 against 3.2; 16×24² 3×3
  → 32 3.8 against 6.4). With AVX2's block, 3×3 layers of at most 16 input channels come here
  instead (:func:`takes_over_winograd`).
- Float64 stays on the GEMM routes (16 lanes of float64 are four AVX2 registers a row: the
  block would spill).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from engine.ops.kernel_choice import kernels

MIN_TAPS = 64  # C·kh·kw at least this: the direct kernels
MIN_PIXELS = 4  # forward: at least this many output pixels (a 6-pixel block on 1–3 pixels
# wastes most of it: 64×4² 4×4 → 512 on a 1×1 output 2.09×, 32×4² → 128 1.89×) …
MAX_WEIGHTS = 256 * 1024  # … and at most this many weights (1 MiB of float32, one core's L2:
# the kernel reads them all once per block of pixels, where the GEMM blocks them)
MAX_LANES_1X1 = 64  # 1×1 kernels of more output channels keep the GEMM (its columns are the
# image itself; 64–512 channels into ≥ 128: direct 1.10–1.23× forward, 1.04–1.20× backward)
MIN_PIXELS_BACKWARD = 16  # backward: at least this many pixels (P = 9 → 64 channels, 1024
# taps: 1.42×; P = 4: 1.84×; the weight gradient's pixel loop is too short to pay its block)
WIDE_PIXELS = 32  # … and below this many, at most MAX_LANES_TINY output channels
MAX_LANES_TINY = 64


# With AVX2's 4-pixel block (engine.kernels.conv_direct.PIXELS) the direct kernels also beat
# Winograd F(2×2, 3×3) on stride-1 3×3 layers of few input channels. Forward + backward with
# the image gradient, two threads, direct / Winograd (Zen 3, best of 3 × 20 alternating, the
# trainer's heap policy): 16 channels 32×12² → 32 0.95, 64×12² → 32 0.99, 64×16² → 16 0.87,
# 32×32² → 16 0.89, 64×28² → 16 0.90, 64×28² → 32 0.95; 8 channels 64×16² → 16 0.74, 64×28²
# → 16 0.85; 12 channels 32×20² → 24 0.96; but 24 channels 96×10² → 48 1.16 and 32 channels
# 32×16² → 64 1.27. With AVX-512's block Winograd was 1.6–1.9× faster (module doc).
MAX_CHANNELS_OVER_WINOGRAD = 16


def takes_over_winograd(params: dict, x_shape: tuple, w_shape: tuple, dtype, px: int) -> bool:
    """Whether a stride-1 3×3 layer that Winograd would take (:mod:`engine.ops.conv_winograd`)
    onto outputs of *px* pixels runs both passes on the direct kernels instead: with AVX2's
    block, at most :data:`MAX_CHANNELS_OVER_WINOGRAD` input channels, and on two cores."""
    from engine.ops import two_cores

    if tuple(w_shape[2:]) != (3, 3) or x_shape[1] > MAX_CHANNELS_OVER_WINOGRAD:
        return False
    n = x_shape[0]
    cout, k = w_shape[0], math.prod(w_shape[1:])
    if not (takes_forward(params, w_shape, dtype, px) and takes_backward(params, w_shape,
                                                                         dtype, px)):
        return False
    return (two_cores.native_threads(n, 2.0 * cout * k * n * px) > 1
            and kernels("conv_direct").PIXELS == 4)


def takes_forward(params: dict, w_shape: tuple, dtype, px: int) -> bool:
    """Whether conv2d's forward with weights of *w_shape* in *dtype*, onto outputs of *px*
    pixels, is the direct kernel's on the parallel path."""
    cout, k, taps = w_shape[0], math.prod(w_shape[1:]), math.prod(w_shape[2:])
    return (params["groups"] == 1 and np.dtype(dtype) == np.float32 and k >= MIN_TAPS
            and px >= MIN_PIXELS and cout * k <= MAX_WEIGHTS
            and not (taps == 1 and cout > MAX_LANES_1X1))


def takes_backward(params: dict, w_shape: tuple, dtype, px: int) -> bool:
    """Whether its backward is."""
    return (takes_forward(params, w_shape, dtype, px) and px >= MIN_PIXELS_BACKWARD
            and (px >= WIDE_PIXELS or w_shape[0] <= MAX_LANES_TINY))


@lru_cache(maxsize=64)
def _tables(xp_shape: tuple, kh: int, kw: int, s: int, d: int, ho: int, wo: int) -> tuple:
    """The kernels' (tap offsets, pixel bases) for padded images of *xp_shape*."""
    _, c, hp, wp = xp_shape
    taps, pixels = kernels("conv_direct").tables(c, hp, wp, kh, kw, s, d, ho, wo)
    return taps, pixels  # shared between calls: never written


def forward(params: dict, xp: np.ndarray, weight: np.ndarray, bias: np.ndarray | None,
            out: np.ndarray, ho: int, wo: int, threads: int) -> bool:
    """conv2d of the padded image *xp* into *out* (N, Cout, Ho, Wo or Ho·Wo, C-contiguous)
    as one parallel Numba call over *threads*, where :func:`takes_forward`; False (nothing
    done) while its kernel is not compiled yet."""
    from engine.kernels import parallel

    n = xp.shape[0]
    cout, cg, kh, kw = weight.shape
    xp = np.ascontiguousarray(xp)
    taps, pixels = _tables(xp.shape, kh, kw, params["stride"], params["dilation"], ho, wo)
    cd = kernels("conv_direct")
    wmat = np.ascontiguousarray(weight.reshape(cout, -1), xp.dtype)
    args = (xp.reshape(n, -1), taps, pixels, cd.pack_weights(wmat),
            cd.pack_bias(bias, cout, xp.dtype), out.reshape(n, cout, ho * wo))
    return parallel.run(cd.forward_parallel, args, n, threads, xp.dtype)


def backward(params: dict, g: np.ndarray, xp: np.ndarray, weight: np.ndarray, has_bias: bool,
             need_x: bool, threads: int) -> tuple | None:
    """(padded image gradient or None, weight gradient, bias gradient or None) from the
    padded image *xp* the forward saved, as one parallel Numba call, where
    :func:`takes_backward`; None while its kernel is not compiled yet."""
    from engine.kernels import parallel

    n = xp.shape[0]
    cout, cg, kh, kw = weight.shape
    ho, wo = g.shape[2], g.shape[3]
    k, dt = cg * kh * kw, g.dtype
    cd = kernels("conv_direct")
    s, d = params["stride"], params["dilation"]
    xp = np.ascontiguousarray(xp, dt)
    taps, pixels = _tables(xp.shape, kh, kw, s, d, ho, wo)
    parts = parallel.bounds(n, threads).shape[0] - 1
    gwpks = np.zeros((parts, -(-cout // cd.LANES), k, cd.LANES), dt)
    gbs = np.zeros((parts, cout if has_bias else 0), dt)
    gxp = np.zeros(xp.shape if need_x else (0, 1, 1, 1), dt)
    args = (xp.reshape(n, -1), taps, pixels, np.ascontiguousarray(weight.reshape(cout, k), dt),
            kh, kw, s, d, ho, wo, np.ascontiguousarray(g).reshape(n, cout, ho * wo), gwpks, gbs,
            gxp)
    if not parallel.run(cd.backward_parallel, args, n, threads, dt):
        return None
    gw = cd.unpack_weights(gwpks.sum(axis=0), cout).reshape(weight.shape)
    gb = gbs.sum(axis=0) if has_bias else None
    return (gxp if need_x else None), gw, gb
