"""Depthwise convolution kernels (one input channel per group): direct loops, each with a numpy
twin (``*_ref``).

Layouts: padded image ``xp (N, C, Hp, Wp)``; weight ``w (Cout, kh, kw)`` with
``Cout = C · m``: output channel ``o`` reads input channel ``o // m``; output and its gradient
``(N, Cout, Ho, Wo)``. Every kernel takes the images ``lo … hi-1`` (two threads split a batch by
images, :mod:`engine.ops.two_cores`).

Every tap is one long loop over a whole plane: the output rows are laid out at the row pitch
of the plane the tap reads (the few lanes between rows are computed and dropped, or zero in a
gradient), so a 16-wide image costs 9 loops of ~300 lanes per plane for a 3×3 kernel instead
of 9 × 16 loops of 16 (forward 2.8 → 0.4 ms CPU on 64×32×16², 3×3). At a stride s each plane
is first cut into its s × s phases (every s-th row and column from each offset): tap (i, j)
reads one phase at a stride of 1, so the same long loops apply. The weight and bias gradients
sum each tap's products into lanes (no scalar reduction in the inner loop, which would not
vectorise), totalled in float64 at the end.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, error_model="numpy")
def split_phases(plane, stride, buf):
    """*plane* (Hp, Wp) as its stride × stride phases ``buf[pi, pj, Y, X] =
    plane[stride·Y + pi, stride·X + pj]`` (zero past the plane): at a stride, tap (i, j) reads
    one phase at a stride of 1."""
    hp, wp = plane.shape
    buf[:] = 0.0
    for pi in range(stride):
        for y in range((hp - pi + stride - 1) // stride):
            src = plane[y * stride + pi]
            for pj in range(stride):
                dst = buf[pi, pj, y]
                for x in range((wp - pj + stride - 1) // stride):
                    dst[x] = src[x * stride + pj]


@njit(cache=True, nogil=True, error_model="numpy")
def add_phases(buf, stride, plane):
    """The inverse of :func:`split_phases`, added: ``plane[stride·Y + pi, stride·X + pj] +=
    buf[pi, pj, Y, X]``."""
    hp, wp = plane.shape
    for pi in range(stride):
        for y in range((hp - pi + stride - 1) // stride):
            dst = plane[y * stride + pi]
            for pj in range(stride):
                src = buf[pi, pj, y]
                for x in range((wp - pj + stride - 1) // stride):
                    dst[x * stride + pj] += src[x]


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def tap_offset(i, j, stride, dilation, pitch, rows):
    """Where tap (i, j)'s run starts in the flat source: the plane (stride 1, row pitch
    *pitch*) or the phases (stride × stride planes of *rows* × *pitch*)."""
    ii, jj = i * dilation, j * dilation
    if stride == 1:
        return ii * pitch + jj
    phase = (ii % stride) * stride + jj % stride
    return (phase * rows + ii // stride) * pitch + jj // stride


def phase_buffer(shape, stride, dtype):
    """The phases' buffer for planes of *shape* ``(…, Hp, Wp)``, or a 1-element stand-in at
    stride 1 (no phases)."""
    hp, wp = shape[-2], shape[-1]
    if stride == 1:
        return np.zeros((1, 1, 1, 1), dtype)
    return np.zeros((stride, stride, -(-hp // stride), -(-wp // stride)), dtype)


@njit(cache=True, nogil=True, error_model="numpy")
def depthwise_forward(xp, w, bias, stride, dilation, out, phases, lo, hi):
    # xp: (N, C, Hp, Wp), w: (Cout, kh, kw), bias: (Cout,) → out[lo:hi]: (N, Cout, Ho, Wo);
    # phases: scratch from phase_buffer
    cout, ho, wo = out.shape[1], out.shape[2], out.shape[3]
    m = cout // xp.shape[1]
    kh, kw = w.shape[1], w.shape[2]
    pitch = xp.shape[3] if stride == 1 else phases.shape[3]
    rows = phases.shape[2]
    span = (ho - 1) * pitch + wo  # the output rows at the source's row pitch
    acc = np.empty(span, out.dtype)
    every_phase = phases.reshape(-1)
    for b in range(lo, hi):
        for o in range(cout):
            plane = xp[b, o // m]
            if stride > 1:
                split_phases(plane, stride, phases)
                flat = every_phase
            else:
                flat = plane.reshape(-1)
            acc[:] = bias[o]
            for i in range(kh):
                for j in range(kw):
                    wv = w[o, i, j]
                    src = flat[tap_offset(i, j, stride, dilation, pitch, rows):]
                    for q in range(span):  # plain indices: no wraparound checks, vectorises
                        acc[q] += wv * src[q]
            for y in range(ho):
                dst = out[b, o, y]
                row = acc[y * pitch:]
                for x in range(wo):
                    dst[x] = row[x]


@njit(cache=True, nogil=True, error_model="numpy")
def _pitched(g, b, o, pitch, buf):
    """``g[b, o]`` into *buf* at row pitch *pitch*, zeros between the rows."""
    ho, wo = g.shape[2], g.shape[3]
    buf[:] = 0.0
    for y in range(ho):
        src = g[b, o, y]
        dst = buf[y * pitch:]
        for x in range(wo):
            dst[x] = src[x]


@njit(cache=True, nogil=True, error_model="numpy")
def depthwise_input_grad(g, w, stride, dilation, dxp, phases, lo, hi):
    # g: (N, Cout, Ho, Wo), w: (Cout, kh, kw) → accumulated into dxp[lo:hi] (zero-filled);
    # phases: scratch from phase_buffer
    cout, ho, wo = g.shape[1], g.shape[2], g.shape[3]
    m = cout // dxp.shape[1]
    kh, kw = w.shape[1], w.shape[2]
    pitch = dxp.shape[3] if stride == 1 else phases.shape[3]
    rows = phases.shape[2]
    span = (ho - 1) * pitch + wo
    buf = np.empty(span, g.dtype)
    every_phase = phases.reshape(-1)
    for b in range(lo, hi):
        for o in range(cout):
            plane = dxp[b, o // m]
            if stride > 1:
                phases[:] = 0.0
                flat = every_phase
            else:
                flat = plane.reshape(-1)
            _pitched(g, b, o, pitch, buf)
            for i in range(kh):
                for j in range(kw):
                    wv = w[o, i, j]
                    dst = flat[tap_offset(i, j, stride, dilation, pitch, rows):]
                    for q in range(span):
                        dst[q] += wv * buf[q]
            if stride > 1:
                add_phases(phases, stride, plane)


@njit(cache=True, nogil=True, error_model="numpy")
def _sum_lanes(lanes):
    """The sum of *lanes* (overwritten): halves added pairwise while more than 32 are left
    (vectorised; a plain running sum is one dependent add per lane: a 56×56 plane's nine taps
    took longer to total than to accumulate), then the rest in float64."""
    n = lanes.size
    while n > 32:
        half = n // 2
        top = lanes[half:]
        for q in range(half):
            lanes[q] += top[q]
        if n % 2:
            lanes[0] += lanes[n - 1]
        n = half
    total = 0.0
    for q in range(n):
        total += lanes[q]
    return total


@njit(cache=True, nogil=True, error_model="numpy")
def depthwise_weight_grad(g, xp, stride, dilation, dw, db, phases, lo, hi):
    # g: (N, Cout, Ho, Wo), xp: (N, C, Hp, Wp) → dw: (Cout, kh, kw), db: (Cout,) (float64),
    # the sums over images lo … hi-1 (written, not accumulated); phases: from phase_buffer
    cout, ho, wo = g.shape[1], g.shape[2], g.shape[3]
    m = cout // xp.shape[1]
    kh, kw = dw.shape[1], dw.shape[2]
    pitch = xp.shape[3] if stride == 1 else phases.shape[3]
    rows = phases.shape[2]
    span = (ho - 1) * pitch + wo
    taps = np.empty((kh * kw, span), g.dtype)  # per tap: partial sums in g's dtype
    bias_lanes = np.empty(span, g.dtype)
    buf = np.empty(span, g.dtype)
    every_phase = phases.reshape(-1)
    for o in range(cout):
        taps[:, :] = 0.0
        bias_lanes[:] = 0.0
        for b in range(lo, hi):
            plane = xp[b, o // m]
            if stride > 1:
                split_phases(plane, stride, phases)
                flat = every_phase
            else:
                flat = plane.reshape(-1)
            _pitched(g, b, o, pitch, buf)  # zeros between the rows: they add nothing
            for q in range(span):
                bias_lanes[q] += buf[q]
            for i in range(kh):
                for j in range(kw):
                    acc = taps[i * kw + j]
                    src = flat[tap_offset(i, j, stride, dilation, pitch, rows):]
                    for q in range(span):
                        acc[q] += buf[q] * src[q]
        for t in range(kh * kw):
            dw[o, t // kw, t % kw] = _sum_lanes(taps[t])
        db[o] = _sum_lanes(bias_lanes)


def _window(xp: np.ndarray, i: int, j: int, stride: int, dilation: int, ho: int, wo: int,
            channels: np.ndarray) -> np.ndarray:
    """``xp[:, channels]`` at tap (i, j): ``(N, len(channels), Ho, Wo)``."""
    r, q = i * dilation, j * dilation
    return xp[:, channels, r:r + stride * (ho - 1) + 1:stride, q:q + stride * (wo - 1) + 1:stride]


def depthwise_forward_ref(xp: np.ndarray, w: np.ndarray, bias: np.ndarray, stride: int,
                          dilation: int, ho: int, wo: int) -> np.ndarray:
    """Numpy twin of :func:`depthwise_forward` (same order of sums)."""
    cout, kh, kw = w.shape
    src = np.arange(cout) // (cout // xp.shape[1])
    out = np.broadcast_to(bias.reshape(1, cout, 1, 1), (xp.shape[0], cout, ho, wo)).copy()
    for i in range(kh):
        for j in range(kw):
            out += w[:, i, j].reshape(1, cout, 1, 1) * _window(xp, i, j, stride, dilation,
                                                               ho, wo, src)
    return out


def depthwise_input_grad_ref(g: np.ndarray, w: np.ndarray, stride: int, dilation: int,
                             xp_shape: tuple) -> np.ndarray:
    """Numpy twin of :func:`depthwise_input_grad`: the padded image's gradient."""
    n, cout, ho, wo = g.shape
    c = xp_shape[1]
    m = cout // c
    dxp = np.zeros(xp_shape, g.dtype)
    g5 = g.reshape(n, c, m, ho, wo)
    w4 = w.reshape(c, m, *w.shape[1:])
    for i in range(w.shape[1]):
        for j in range(w.shape[2]):
            r, q = i * dilation, j * dilation
            dxp[:, :, r:r + stride * (ho - 1) + 1:stride, q:q + stride * (wo - 1) + 1:stride] \
                += np.einsum("ncmhw,cm->nchw", g5, w4[:, :, i, j])
    return dxp


def depthwise_weight_grad_ref(g: np.ndarray, xp: np.ndarray, stride: int, dilation: int,
                              kh: int, kw: int) -> tuple[np.ndarray, np.ndarray]:
    """Numpy twin of :func:`depthwise_weight_grad`: ``(dw (Cout, kh, kw), db (Cout,))`` in
    float64."""
    n, cout, ho, wo = g.shape
    src = np.arange(cout) // (cout // xp.shape[1])
    g64 = g.astype(np.float64)
    dw = np.empty((cout, kh, kw))
    for i in range(kh):
        for j in range(kw):
            win = _window(xp, i, j, stride, dilation, ho, wo, src).astype(np.float64)
            dw[:, i, j] = np.einsum("nchw,nchw->c", g64, win)
    return dw, g64.sum(axis=(0, 2, 3))
