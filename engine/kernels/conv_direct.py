"""Direct convolution for few input channels × taps: no im2col, accumulators in registers.

The per-image GEMM route (:mod:`engine.kernels.conv_gemm`) copies each image into columns
``(C·kh·kw, Ho·Wo)`` and OpenBLAS packs them again; with few output channels (M = 16) its GEMM
runs well under peak. Here every output is computed straight from the padded image:

- **Forward** (:func:`_forward_image`): a block of :data:`PIXELS` output pixels ×
  :data:`LANES` output channels is held in registers (:func:`engine.kernels.stack.stack_block`)
  while the loop runs over the taps ``(c, i, j)``: each tap loads one vector of weights
  (``LANES`` channels) and one input value per pixel, and does ``PIXELS`` vector FMAs.
- **Weight gradient** (:func:`_weight_grad_image`): a block of ``PIXELS`` taps × ``LANES``
  output channels in registers while the loop runs over the pixels: each pixel loads one
  vector of the output gradient (transposed per image to ``(P, LANES)``) and one input value
  per tap.
- **Input gradient** (only when x is not data): ``Wᵀ·g`` as one GEMM and the col2im scatter of
  :mod:`engine.kernels.conv_gemm`.

Where an input value sits is one addition: ``image[pixel_base[p] + tap_offset[t]]`` with
``pixel_base[y·Wo + x] = y·s·Wp + x·s`` and ``tap_offset[(c·kh + i)·kw + j] = c·Hp·Wp + i·d·Wp
+ j·d`` (:func:`tables`), so strides, dilations and paddings share one loop, and the pixel
blocks run over the flattened output (a block may cross a row end; the last block repeats
its last pixel and stores only the real ones). Output channels come in blocks of ``LANES``,
the weights packed per block and zero-padded past Cout (:func:`pack_weights`).

The block's height follows the vector registers Numba compiles for (:func:`wide_registers`):
on AVX-512 (32 registers, one per 16 lanes) 6 pixels × 16 lanes take 6 registers; on AVX2 (16
registers of 8 lanes) the same block takes 12 accumulators, 2 weight vectors and 6
broadcasts, more than there are, and LLVM spilled the accumulators to the stack on every tap.
So AVX2 hosts use blocks of 4 pixels (8 accumulators + 2 + 4 = 14 registers). One thread,
forward and weight gradient, float32:

- AVX-512 (session 13's host), 3×54² 7×7 stride 2 → 16 × 24² (the ``cnn_stem48`` bench
  case's first layer), one image: im2col + GEMM 62 µs, here 27.6 µs (98 GFLOP/s).
- AVX2 (an AMD EPYC Zen 3 host, sgemm peak 90 GFLOP/s a core), 6 pixels → 4 pixels, ms for
  the batch: that stem × 32 images 2.68 → 1.24 and 2.42 → 1.18; 6×14² 5×5 → 16 × 64 0.79 →
  0.42 and 0.85 → 0.44; 32×12² 3×3 stride 2 → 32 × 64 1.05 → 0.58 and 1.33 → 0.81; 16×16²
  5×5 stride 2 → 32 × 64 2.73 → 1.39 and 2.98 → 1.63 (32–41 → 64–76 GFLOP/s forward).

Layouts: padded images flattened ``(N, C·Hp·Wp)``; outputs and output gradients
``(N, Cout, P)``; packed weights and weight gradients ``(Cout blocks, C·kh·kw, LANES)``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from engine.kernels.blas import gemm
from engine.kernels.conv_gemm import _scatter
from engine.kernels.lane_sums import total
from engine.kernels.stack import stack_block


def wide_registers() -> bool:
    """Whether Numba compiles for AVX-512 (32 vector registers of 16 float32 lanes): the
    features of its code generator, which follow ``NUMBA_CPU_NAME`` / ``NUMBA_CPU_FEATURES``
    where set (a portable cache compiled for a generic CPU gets the AVX2-sized block)."""
    from numba.core.registry import cpu_target

    return "+avx512f" in cpu_target.target_context.codegen().magic_tuple()[2]


LANES = 16  # output channels a register block holds: one AVX-512 vector of float32, two AVX2
# pixels (forward) or taps (weight gradient) a register block holds (see the module doc)
PIXELS = 6 if wide_registers() else 4
# A block sums at most this many taps (forward) or pixels (weight gradient) before it is added
# to the output or the gradient: one float32 running sum over a 512² image's pixels drifted to
# 3.4e-5 of the largest weight gradient, against 1.0e-6 through OpenBLAS, which blocks its sums
# too. Each flush costs a load and store of the block (the 7×7 stem's backward: 1.09× with
# chunks of 256 pixels against none; its 576 pixels fit one chunk of 1024).
TAP_CHUNK = 512
PIXEL_CHUNK = 1024


def tables(c: int, hp: int, wp: int, kh: int, kw: int, s: int, d: int, ho: int,
           wo: int) -> tuple[np.ndarray, np.ndarray]:
    """``(tap_offset (C·kh·kw,), pixel_base (Ho·Wo,))`` as uint64 (see the module doc)."""
    ch, i, j = np.meshgrid(np.arange(c), np.arange(kh), np.arange(kw), indexing="ij")
    taps = (ch * hp * wp + i * d * wp + j * d).reshape(-1)
    y, x = np.meshgrid(np.arange(ho), np.arange(wo), indexing="ij")
    pixels = (y * s * wp + x * s).reshape(-1)
    return taps.astype(np.uint64), pixels.astype(np.uint64)


def pack_weights(wmat: np.ndarray) -> np.ndarray:
    """``wmat (Cout, K)`` → ``(⌈Cout / LANES⌉, K, LANES)``, zero past Cout."""
    cout, k = wmat.shape
    blocks = -(-cout // LANES)
    packed = np.zeros((blocks * LANES, k), wmat.dtype)
    packed[:cout] = wmat
    return np.ascontiguousarray(packed.reshape(blocks, LANES, k).transpose(0, 2, 1))


def pack_bias(bias: np.ndarray | None, cout: int, dtype) -> np.ndarray:
    """The bias as ``(⌈Cout / LANES⌉, LANES)``, zero past Cout (all zero without one)."""
    blocks = -(-cout // LANES)
    packed = np.zeros(blocks * LANES, dtype)
    if bias is not None:
        packed[:cout] = bias
    return packed.reshape(blocks, LANES)


def unpack_weights(packed: np.ndarray, cout: int) -> np.ndarray:
    """Inverse of :func:`pack_weights`: ``(blocks, K, LANES)`` → ``(Cout, K)``."""
    blocks, k, lanes = packed.shape
    return packed.transpose(0, 2, 1).reshape(blocks * lanes, k)[:cout]


@njit(cache=True, nogil=True, inline="always")
def _six(offsets, start):
    # offsets[start … start + 5]; past the end, the last one again (a block's spare rows
    # compute on a real position and are never stored)
    last = offsets.shape[0] - 1
    return (offsets[start], offsets[min(start + 1, last)], offsets[min(start + 2, last)],
            offsets[min(start + 3, last)], offsets[min(start + 4, last)],
            offsets[min(start + 5, last)])


@njit(cache=True, nogil=True, inline="always")
def _four(offsets, start):
    # offsets[start … start + 3], as _six
    last = offsets.shape[0] - 1
    return (offsets[start], offsets[min(start + 1, last)], offsets[min(start + 2, last)],
            offsets[min(start + 3, last)])


@njit(cache=True, nogil=True, fastmath={"contract"}, inline="always")
def _multiply_add6(acc, img, at, shift, vec):
    # acc (6, LANES) row q += img[at[q] + shift] · vec (LANES,): one vector multiply-add a row
    v0, v1, v2 = img[at[0] + shift], img[at[1] + shift], img[at[2] + shift]
    v3, v4, v5 = img[at[3] + shift], img[at[4] + shift], img[at[5] + shift]
    for lane in range(LANES):
        x = vec[lane]
        acc[0, lane] += v0 * x
        acc[1, lane] += v1 * x
        acc[2, lane] += v2 * x
        acc[3, lane] += v3 * x
        acc[4, lane] += v4 * x
        acc[5, lane] += v5 * x


@njit(cache=True, nogil=True, fastmath={"contract"}, inline="always")
def _multiply_add4(acc, img, at, shift, vec):
    # acc (4, LANES), as _multiply_add6
    v0, v1 = img[at[0] + shift], img[at[1] + shift]
    v2, v3 = img[at[2] + shift], img[at[3] + shift]
    for lane in range(LANES):
        x = vec[lane]
        acc[0, lane] += v0 * x
        acc[1, lane] += v1 * x
        acc[2, lane] += v2 * x
        acc[3, lane] += v3 * x


# the block's offsets and its multiply-add, for PIXELS rows (resolved when the kernels compile)
_block_at = _six if PIXELS == 6 else _four
_multiply_add = _multiply_add6 if PIXELS == 6 else _multiply_add4


@njit(cache=True, nogil=True, inline="always")
def _put(acc, out, co0, p0):
    # out[co0 + lane, p0 + q] = acc[q, lane], for the channels and pixels out has
    n_co, n_q = min(LANES, out.shape[0] - co0), min(PIXELS, out.shape[1] - p0)
    if n_co == LANES and n_q == PIXELS:  # a whole block: constant trip counts
        for lane in range(LANES):
            row = out[co0 + lane]
            for q in range(PIXELS):
                row[p0 + q] = acc[q, lane]
    else:
        for lane in range(n_co):
            row = out[co0 + lane]
            for q in range(n_q):
                row[p0 + q] = acc[q, lane]


@njit(cache=True, nogil=True, inline="always")
def _add(acc, out, co0, p0):
    # out[co0 + lane, p0 + q] += acc[q, lane] (a later chunk of taps)
    for lane in range(min(LANES, out.shape[0] - co0)):
        row = out[co0 + lane]
        for q in range(min(PIXELS, out.shape[1] - p0)):
            row[p0 + q] += acc[q, lane]


@njit(cache=True, nogil=True, fastmath={"contract"})
def _forward_image(img, taps, pixels, wpk, bias_lanes, out):
    # out (Cout, P) = conv of img (C·Hp·Wp,) + bias_lanes (blocks, LANES), zero past Cout
    n_px = out.shape[1]
    n_taps = taps.shape[0]
    acc = stack_block(out, PIXELS, LANES)  # type: ignore[call-arg,var-annotated]
    for blk in range(wpk.shape[0]):
        wb = wpk[blk]
        co0 = blk * LANES
        for c0 in range(0, n_taps, TAP_CHUNK):  # the first chunk of taps stores, later add
            first = c0 == 0
            taps_c, wb_c = taps[c0:c0 + TAP_CHUNK], wb[c0:c0 + TAP_CHUNK]  # (views: loops at 0
            for p0 in range(0, n_px, PIXELS):  # let LLVM drop the negative-index checks)
                bases = _block_at(pixels, p0)
                for q in range(PIXELS):
                    for lane in range(LANES):
                        acc[q, lane] = bias_lanes[blk, lane] if first else 0.0
                for t in range(taps_c.shape[0]):
                    off = taps_c[t]
                    wv = wb_c[t]
                    _multiply_add(acc, img, bases, off, wv)
                if first:
                    _put(acc, out, co0, p0)
                else:
                    _add(acc, out, co0, p0)


@njit(cache=True, nogil=True, fastmath={"contract"})
def _weight_grad_image(img, taps, pixels, gt, gwpk):
    # gwpk (blocks, K, LANES) += Σ_p gt[blk, p, lane] · img[pixels[p] + taps[t]];
    # gt (blocks, P, LANES) is the image's output gradient, transposed and zero past Cout
    n_taps = taps.shape[0]
    n_px = pixels.shape[0]
    acc = stack_block(gwpk, PIXELS, LANES)  # type: ignore[call-arg,var-annotated]
    for blk in range(gwpk.shape[0]):
        gb = gt[blk]
        gw = gwpk[blk]
        for c0 in range(0, n_px, PIXEL_CHUNK):  # (views, as in _forward_image)
            pixels_c, gb_c = pixels[c0:c0 + PIXEL_CHUNK], gb[c0:c0 + PIXEL_CHUNK]
            for t0 in range(0, n_taps, PIXELS):
                offsets = _block_at(taps, t0)
                for q in range(PIXELS):
                    for lane in range(LANES):
                        acc[q, lane] = 0.0
                for p in range(pixels_c.shape[0]):
                    base = pixels_c[p]
                    gv = gb_c[p]
                    _multiply_add(acc, img, offsets, base, gv)
                for q in range(min(PIXELS, n_taps - t0)):
                    for lane in range(LANES):
                        gw[t0 + q, lane] += acc[q, lane]


@njit(cache=True, nogil=True)
def forward_part(xf, taps, pixels, wpk, bias_lanes, out, lo, hi):
    # images lo … hi-1 of xf (N, C·Hp·Wp) → out (N, Cout, P)
    for b in range(lo, hi):
        _forward_image(xf[b], taps, pixels, wpk, bias_lanes, out[b])


@njit(cache=True, nogil=True, parallel=True)
def forward_parallel(xf, taps, pixels, wpk, bias_lanes, out, bounds):
    for t in prange(bounds.shape[0] - 1):
        forward_part(xf, taps, pixels, wpk, bias_lanes, out, bounds[t], bounds[t + 1])


@njit(cache=True, nogil=True)
def backward_part(xf, taps, pixels, wmat, kh, kw, s, d, ho, wo, g3, gwpk, gb, gxp, lo, hi):
    # images lo … hi-1: gwpk (blocks, K, LANES) += their weight gradient, gb (Cout,) += Σ g
    # (when gb.shape[0] > 0), and unless gxp is a (0, …) placeholder, gxp[b] (C, Hp, Wp) +=
    # col2im(wmatᵀ @ g(b))
    cout, n_px = g3.shape[1], g3.shape[2]
    blocks = gwpk.shape[0]
    gt = np.zeros((blocks, n_px, LANES), g3.dtype)  # lanes past Cout stay zero
    gcols = np.empty((wmat.shape[1], n_px) if gxp.shape[0] else (0, 0), g3.dtype)
    wt = wmat.T
    for b in range(lo, hi):
        gimg = g3[b]
        for co in range(cout):
            row = gimg[co]
            blk, lane = co // LANES, co % LANES
            for p in range(n_px):
                gt[blk, p, lane] = row[p]
            if gb.shape[0]:
                gb[co] += total(row)
        _weight_grad_image(xf[b], taps, pixels, gt, gwpk)
        if gxp.shape[0]:
            gemm(wt, gimg, gcols)
            _scatter(gcols, b, kh, kw, s, d, ho, wo, gxp)


@njit(cache=True, nogil=True, parallel=True)
def backward_parallel(xf, taps, pixels, wmat, kh, kw, s, d, ho, wo, g3, gwpks, gbs, gxp,
                      bounds):
    # part t accumulates into gwpks[t] (blocks, K, LANES) and gbs[t] (Cout,)
    for t in prange(bounds.shape[0] - 1):
        backward_part(xf, taps, pixels, wmat, kh, kw, s, d, ho, wo, g3, gwpks[t], gbs[t], gxp,
                      bounds[t], bounds[t + 1])
