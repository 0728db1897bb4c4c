"""The Winograd F(2×2, 3×3) route of conv2d (3×3, stride 1, no dilation, one group).

Forward: pad the image once into whole 4×4 tiles, transform (``V = Bᵀ d B``, Numba), 16
batched GEMMs ``M = U @ V`` in BLAS (``U = G w Gᵀ``), transform back (``Aᵀ M A``). Backward:
``dM = A g Aᵀ``, then ``dU = dM @ Vᵀ`` (weight gradient, ``Gᵀ dU G``) and, unless x is data,
``dV = Uᵀ @ dM`` scattered back as ``B dV Bᵀ``. 16 multiplications per output pair of channels
and 2×2 tile instead of 36 (2.25× fewer), and every coefficient is 0, ±1 or ½, so float64
stays at rounding level (the float64 gradient check and torch parity run through it).
See :mod:`engine.kernels.winograd`.
"""

from __future__ import annotations

import numpy as np

from engine.ops import two_cores
from engine.ops.kernel_choice import kernels

# Below this many input channels the GEMM routes win (measured per shape, CPU time of forward +
# backward, one thread, float32): the transforms cost O(C·P) and the GEMMs are too thin for
# Winograd's 2.25× fewer multiplications to pay (C = 1 and 3 first layers: 3-10× slower).
MIN_CHANNELS = 8


def applies(params: dict, x_shape: tuple, w_shape: tuple) -> bool:
    """Whether conv2d takes the Winograd route for this shape (see :data:`MIN_CHANNELS`)."""
    return (params["stride"] == 1 and params["dilation"] == 1 and params["groups"] == 1
            and w_shape[2] == 3 and w_shape[3] == 3 and x_shape[1] >= MIN_CHANNELS)


def forward(ctx, params: dict, x: np.ndarray, weight: np.ndarray,
            bias: np.ndarray | None) -> np.ndarray:
    """conv2d forward on the Winograd route; saves ``V`` and ``U`` for the backward. Large
    batches run as two halves at once (:mod:`engine.ops.two_cores`)."""
    wk = kernels("winograd")
    p = params["padding"]
    n, c, h, w_ = x.shape
    cout = weight.shape[0]
    ho, wo = h + 2 * p - 2, w_ + 2 * p - 2
    th, tw = (ho + 1) // 2, (wo + 1) // 2
    t = th * tw  # tiles per image
    xp = np.zeros((n, c, 2 * th + 2, 2 * tw + 2), x.dtype)
    v = wk.domain(c, n * t, x.dtype)  # (16, C, P)
    u = wk.weights(weight)  # (16, Cout, C)
    m = wk.domain(cout, n * t, x.dtype)  # (16, Cout, P)
    y = np.empty((n, cout, 2 * th, 2 * tw), x.dtype)

    def part(lo: int, hi: int) -> None:  # images lo … hi-1
        xp[lo:hi, :, p:p + h, p:p + w_] = x[lo:hi]
        vp, mp = v[:, :, lo * t:hi * t], m[:, :, lo * t:hi * t]
        wk.transform_in(xp[lo:hi], th, tw, vp)
        np.matmul(u, vp, out=mp)
        wk.transform_out(mp, th, tw, y[lo:hi])

    if two_cores.ways(n, 32.0 * cout * c * n * t) == 2:
        two_cores.halves(n, part)
    else:
        part(0, n)
    if ho != 2 * th or wo != 2 * tw:
        y = np.ascontiguousarray(y[:, :, :ho, :wo])
    if bias is not None:
        y += bias.reshape(1, cout, 1, 1)
    ctx.save("winograd", v, u, x.shape, bias is not None)
    return y


def backward(ctx, params: dict, g: np.ndarray):
    """(gx or None when x is data, gw, gb or None) on the Winograd route, two halves at once
    for large batches (their weight gradients summed)."""
    wk = kernels("winograd")
    _, v, u, x_shape, has_bias = ctx.saved
    p = params["padding"]
    n, c, h, w_ = x_shape
    cout = u.shape[1]
    ho, wo = g.shape[2], g.shape[3]
    th, tw = (ho + 1) // 2, (wo + 1) // 2
    t = th * tw
    gb = g.sum(axis=(0, 2, 3)) if has_bias else None
    if ho != 2 * th or wo != 2 * tw:
        gp = np.zeros((n, cout, 2 * th, 2 * tw), g.dtype)
        gp[:, :, :ho, :wo] = g
    else:
        gp = np.ascontiguousarray(g)
    need_x = not ctx.needs_input_grad or ctx.needs_input_grad[0]  # False: x is data
    dm = wk.domain(cout, n * t, g.dtype)  # (16, Cout, P)
    dv = wk.domain(c, n * t, g.dtype) if need_x else None  # (16, C, P)
    dxp = np.zeros((n, c, 2 * th + 2, 2 * tw + 2), g.dtype) if need_x else None

    def part(lo: int, hi: int) -> np.ndarray:  # images lo … hi-1; returns their dU
        dmp = dm[:, :, lo * t:hi * t]
        wk.grad_out(gp[lo:hi], th, tw, dmp)
        du = np.matmul(dmp, v[:, :, lo * t:hi * t].transpose(0, 2, 1))  # (16, Cout, C)
        if dv is not None and dxp is not None:
            dvp = dv[:, :, lo * t:hi * t]
            np.matmul(u.transpose(0, 2, 1), dmp, out=dvp)
            wk.grad_in(dvp, th, tw, dxp[lo:hi])
        return du

    flops = 32.0 * cout * c * n * t * (2 if need_x else 1)
    if two_cores.ways(n, flops) == 2:
        du = sum(two_cores.halves(n, part))
    else:
        du = part(0, n)
    gw = wk.weights_grad(du, cout, c)  # (Cout, C, 3, 3)
    if dxp is None:
        return None, gw, gb
    return dxp[:, :, p:p + h, p:p + w_], gw, gb
