"""Convolution helpers: im2col (numpy strided view + one copy) and the col2im scatter-add,
each with a numpy twin (pooling kernels: :mod:`engine.kernels.pool`).

Layouts: images ``(N, C, H, W)``; columns either ``(C, kh, kw, N, Ho, Wo)`` so that
``reshape(groups, C/groups*kh*kw, N*Ho*Wo)`` feeds one large BLAS GEMM per group (the
whole batch at once), or by image ``(N, C, kh, kw, Ho, Wo)`` for a batched GEMM per image
whose result is already NCHW (no transposes; faster for few input channels).
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.lib.stride_tricks import as_strided


def windows(xp: np.ndarray, kh: int, kw: int, stride: int, dilation: int,
            ho: int, wo: int) -> np.ndarray:
    """Read-only strided view ``(C, kh, kw, N, Ho, Wo)`` of the padded image *xp*."""
    n, c, _, _ = xp.shape
    sn, sc, sh, sw = xp.strides
    return as_strided(xp, (c, kh, kw, n, ho, wo),
                      (sc, sh * dilation, sw * dilation, sn, sh * stride, sw * stride),
                      writeable=False)


def im2col(xp: np.ndarray, kh: int, kw: int, stride: int, dilation: int,
           ho: int, wo: int) -> np.ndarray:
    """Columns ``(C, kh, kw, N, Ho, Wo)`` (one contiguous copy) of the padded image *xp*."""
    return np.ascontiguousarray(windows(xp, kh, kw, stride, dilation, ho, wo))


@njit(cache=True, nogil=True)
def col2im(cols, stride, dilation, dxp):
    # cols: (C, kh, kw, N, Ho, Wo) → accumulated into dxp: (N, C, Hp, Wp) (zero-filled)
    c, kh, kw, n, ho, wo = cols.shape
    for ch in range(c):
        for i in range(kh):
            for j in range(kw):
                for b in range(n):
                    for y in range(ho):
                        row = y * stride + i * dilation
                        if stride == 1:  # a contiguous row: the loop vectorises
                            for x in range(wo):
                                dxp[b, ch, row, x + j * dilation] += cols[ch, i, j, b, y, x]
                        else:
                            for x in range(wo):
                                dxp[b, ch, row, x * stride + j * dilation] += \
                                    cols[ch, i, j, b, y, x]


def col2im_ref(cols: np.ndarray, stride: int, dilation: int, hp: int, wp: int) -> np.ndarray:
    c, kh, kw, n, ho, wo = cols.shape
    dxp = np.zeros((n, c, hp, wp), cols.dtype)
    for i in range(kh):
        for j in range(kw):
            r, q = i * dilation, j * dilation
            dxp[:, :, r:r + stride * (ho - 1) + 1:stride,
                q:q + stride * (wo - 1) + 1:stride] += cols[:, i, j].transpose(1, 0, 2, 3)
    return dxp


def windows_by_image(xp: np.ndarray, kh: int, kw: int, stride: int, dilation: int,
                     ho: int, wo: int) -> np.ndarray:
    """Read-only strided view ``(N, C, kh, kw, Ho, Wo)`` of the padded image *xp*: one
    image's columns together (the per-image GEMM layout)."""
    sn, sc, sh, sw = xp.strides
    n, c = xp.shape[:2]
    return as_strided(xp, (n, c, kh, kw, ho, wo),
                      (sn, sc, sh * dilation, sw * dilation, sh * stride, sw * stride),
                      writeable=False)


@njit(cache=True, nogil=True)
def col2im_by_image(cols, stride, dilation, dxp):
    # cols: (N, C, kh, kw, Ho, Wo) → accumulated into dxp: (N, C, Hp, Wp) (zero-filled)
    n, c, kh, kw, ho, wo = cols.shape
    for b in range(n):
        for ch in range(c):
            for i in range(kh):
                for j in range(kw):
                    for y in range(ho):
                        row = y * stride + i * dilation
                        if stride == 1:  # a contiguous row: the loop vectorises
                            for x in range(wo):
                                dxp[b, ch, row, x + j * dilation] += cols[b, ch, i, j, y, x]
                        else:
                            for x in range(wo):
                                dxp[b, ch, row, x * stride + j * dilation] += \
                                    cols[b, ch, i, j, y, x]


def col2im_by_image_ref(cols: np.ndarray, stride: int, dilation: int, hp: int,
                        wp: int) -> np.ndarray:
    """Numpy twin of :func:`col2im_by_image`: the padded image gradient."""
    return col2im_ref(cols.transpose(1, 2, 3, 0, 4, 5), stride, dilation, hp, wp)
