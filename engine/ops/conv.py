"""2-D convolution over NCHW images.

conv2d takes the Winograd F(2×2, 3×3) route for 3×3 stride-1 convolutions of ≥ 8 channels
and F(2×2, 5×5) for 5×5 ones of ≥ 16 (:mod:`engine.ops.conv_winograd`), direct loops for
depthwise ones (one input channel per group, :mod:`engine.ops.conv_depthwise`), and takes
groups one by one where each gets a Winograd route (:mod:`engine.ops.conv_grouped`); otherwise it
lowers to im2col (a strided view copied once) + BLAS GEMMs, on one of two routes chosen
per shape (:func:`by_image`): a batched GEMM per image (few input channels) or one GEMM per
group over the whole batch; the backward uses two GEMMs and a Numba col2im scatter-add, and
skips the input gradient when x is data. On two cores, float32 convolutions of many taps
run direct kernels with no columns (:mod:`engine.ops.conv_direct`).
Square kernels, strides, paddings and dilations (one int each). Pooling: :mod:`engine.ops.pool`.
"""

from __future__ import annotations

import numpy as np

from engine.core.registry import Example, OpSpec, Param, Port, ShapeError, TensorType, register
from engine.ops import (
    batch_rules,
    conv_by_image,
    conv_depthwise,
    conv_direct,
    conv_grouped,
    conv_whole,
    conv_winograd,
)
from engine.ops._util import per_example, require_float


def _out_dim(d, pad: int, span: int, stride: int, port: str = "x"):
    """Output size of a sliding window of extent *span*; symbols stay symbolic."""
    if not isinstance(d, int):
        return f"({d}+{2 * pad}-{span})//{stride}+1"
    out = (d + 2 * pad - span) // stride + 1
    if out < 1:
        raise ShapeError(f"spatial size {d} (padding {pad}) is smaller than the window {span}",
                         port=port)
    return out


def _image(t: TensorType, port: str = "x") -> None:
    require_float(t, port)
    if len(t.shape) != 4:
        raise ShapeError(f"expects an NCHW image (4-D), got {list(t.shape)}", port=port)


def _pad(x: np.ndarray, pad: int, value: float = 0.0) -> np.ndarray:
    """*x* (N, C, H, W) inside a border of *pad* × *value*: a new C-contiguous array. Filled
    and copied directly: 64×32×6² pad 1 took 112 µs in ``np.pad``, 69 µs here; 64×1×24² pad 2,
    44 → 12 µs."""
    if pad == 0:
        return x
    n, c, h, w = x.shape
    if value == 0.0:
        out = np.zeros((n, c, h + 2 * pad, w + 2 * pad), x.dtype)
    else:
        out = np.full((n, c, h + 2 * pad, w + 2 * pad), value, x.dtype)
    out[:, :, pad:h + pad, pad:w + pad] = x
    return out


# ---------------------------------------------------------------- conv2d


def _conv_infer(inputs, params):
    x, w = inputs[0], inputs[1]
    b = inputs[2] if len(inputs) > 2 else None
    _image(x)
    _image(w, "weight")
    g = params["groups"]
    cin, cout, kh, kw = x.shape[1], w.shape[0], w.shape[2], w.shape[3]
    if isinstance(cout, int) and cout % g:
        raise ShapeError(f"{cout} output channels do not split into {g} groups", port="weight")
    if isinstance(cin, int) and isinstance(w.shape[1], int) and cin != w.shape[1] * g:
        raise ShapeError(f"weight expects {w.shape[1] * g} input channels "
                         f"({w.shape[1]} × {g} groups), x has {cin}", port="weight")
    if not (isinstance(kh, int) and isinstance(kw, int)):
        raise ShapeError("kernel size must be concrete", port="weight")
    if b is not None:
        require_float(b, "bias")
        if len(b.shape) != 1 or (isinstance(b.shape[0], int) and isinstance(cout, int)
                                 and b.shape[0] != cout):
            raise ShapeError(f"bias must have shape ({cout},), got {list(b.shape)}", port="bias")
    s, p, d = params["stride"], params["padding"], params["dilation"]
    ho = _out_dim(x.shape[2], p, d * (kh - 1) + 1, s)
    wo = _out_dim(x.shape[3], p, d * (kw - 1) + 1, s)
    return [TensorType((x.shape[0], cout, ho, wo), "float")]


def by_image(groups: int, k: int, ho: int, wo: int) -> bool:
    """Route choice, measured per shape (CPU time of forward + backward, one thread; see
    bench/RESULTS.md): one GEMM per image (columns by image, the result already NCHW) for
    few input channels × taps (k ≤ 160) and outputs of at least 16 pixels (0.43–0.92× the
    whole-batch route's time on the bench's shapes); otherwise one whole-batch GEMM, which
    stays faster for wide inputs (k 216–800: per image 1.02–1.09×) and tiny outputs (3×3:
    1.30×)."""
    return groups == 1 and k <= 160 and ho * wo >= 16


def _conv_forward(ctx, params, x, weight, bias=None):
    if conv_grouped.applies(params, x.shape, weight.shape):
        return conv_grouped.forward(ctx, params, x, weight, bias, _conv_forward)
    s, p, d, groups = params["stride"], params["padding"], params["dilation"], params["groups"]
    n, c, h, w_ = x.shape
    cout, cg, kh, kw = weight.shape
    ho = (h + 2 * p - d * (kh - 1) - 1) // s + 1
    wo = (w_ + 2 * p - d * (kw - 1) - 1) // s + 1
    if conv_winograd.applies(params, x.shape, weight.shape) and \
            not conv_direct.takes_over_winograd(params, x.shape, weight.shape, x.dtype,
                                                ho * wo):
        return conv_winograd.forward(ctx, params, x, weight, bias)
    xp = _pad(x, p)
    k = cg * kh * kw
    if conv_depthwise.applies(params, x.shape, weight.shape):
        return conv_depthwise.forward(ctx, params, xp, weight, bias, ho, wo)
    if by_image(groups, k, ho, wo):
        return conv_by_image.forward(ctx, params, xp, weight, bias, ho, wo)
    return conv_whole.forward(ctx, params, xp, weight, bias, ho, wo)


def _conv_backward(ctx, params, g):
    if ctx.saved[0] == "grouped":
        return conv_grouped.backward(ctx, params, g, _conv_backward)
    if ctx.saved[0] == "winograd":
        return conv_winograd.backward(ctx, params, g)
    need_x = not ctx.needs_input_grad or ctx.needs_input_grad[0]
    if ctx.saved[0] == "depthwise":
        xp_shape = ctx.saved[1].shape
        gxp, gw, gb = conv_depthwise.backward(ctx, params, g, need_x)
    else:
        per_image, _, _, xp_shape, _ = ctx.saved
        route = conv_by_image if per_image else conv_whole
        gxp, gw, gb = route.backward(ctx, params, g, need_x)
    p = params["padding"]
    hp, wp = xp_shape[2], xp_shape[3]
    if gxp is None:
        return None, gw, gb  # x is data (the first convolution): no input gradient
    gx = gxp[:, :, p:hp - p, p:wp - p] if p else gxp
    return gx, gw, gb


def _conv_flops(inputs, outputs, params):
    w = inputs[1].shape
    k = 1
    for dim in w[1:]:
        k *= dim if isinstance(dim, int) else 1
    return 2 * k * per_example(outputs[0])


register(OpSpec(
    name="conv2d",
    category="op",
    doc="""2-D convolution (cross-correlation, like PyTorch) of an NCHW image.

    ``weight`` is (Cout, Cin/groups, kh, kw); ``bias`` (Cout,) is optional. Wire both from
    parameter nodes. Output size per axis:
    ⌊(H + 2·padding − dilation·(k − 1) − 1) / stride⌋ + 1.""",
    inputs=[Port("x"), Port("weight"), Port("bias", optional=True)],
    outputs=[Port("out")],
    params=[
        Param("stride", "int", 1, minimum=1, doc="Step between windows."),
        Param("padding", "int", 0, minimum=0, doc="Zeros added on every side."),
        Param("dilation", "int", 1, minimum=1, doc="Spacing between kernel taps."),
        Param("groups", "int", 1, minimum=1, doc="Channel groups (Cin and Cout divisible)."),
    ],
    infer=_conv_infer,
    forward=_conv_forward,
    backward=_conv_backward,
    flops=_conv_flops,
    examples=[
        Example([((2, 3, 5, 5), "float"), ((4, 3, 3, 3), "float"), ((4,), "float")]),
        Example([((2, 2, 6, 5), "float"), ((3, 2, 2, 3), "float")],
                {"stride": 2, "padding": 1}, note="no bias, stride, padding"),
        Example([((1, 4, 7, 7), "float"), ((6, 2, 3, 3), "float"), ((6,), "float")],
                {"dilation": 2, "groups": 2, "padding": 2}, note="batch of 1, groups, dilation"),
        Example([((2, 1, 3, 3), "float"), ((2, 1, 1, 1), "float")], low=-1e3, high=1e3,
                note="1×1, extreme"),
        Example([((2, 2, 6, 5), "float"), ((3, 2, 3, 2), "float"), ((3,), "float")],
                {"padding": 1}, note="per-image GEMM route (≥ 16 output pixels)"),
        Example([((1, 1, 9, 10), "float"), ((2, 1, 3, 3), "float")],
                {"dilation": 2, "stride": 1, "padding": 1}, note="per-image route, dilation"),
        Example([((2, 8, 5, 4), "float"), ((3, 8, 3, 3), "float"), ((3,), "float")],
                {"padding": 1}, note="Winograd route (3×3, stride 1, ≥ 8 channels), odd output"),
        Example([((1, 9, 6, 6), "float"), ((2, 9, 3, 3), "float")],
                {"padding": 0}, note="Winograd route, no padding"),
        Example([((1, 16, 5, 4), "float"), ((2, 16, 5, 5), "float"), ((2,), "float")],
                {"padding": 1}, note="Winograd F(2×2, 5×5) route (5×5, stride 1, ≥ 16 channels), "
                "odd output"),
        Example([((2, 3, 6, 5), "float"), ((3, 1, 3, 3), "float"), ((3,), "float")],
                {"groups": 3, "padding": 1}, note="depthwise route (one input channel per group)"),
        Example([((1, 2, 7, 7), "float"), ((6, 1, 3, 2), "float")],
                {"groups": 2, "stride": 2, "dilation": 2, "padding": 2},
                note="depthwise route, 3 outputs per channel, stride, dilation"),
        Example([((2, 16, 4, 5), "float"), ((4, 8, 3, 3), "float"), ((4,), "float")],
                {"groups": 2, "padding": 1}, note="group by group (Winograd per group)"),
    ],
    batch_rule=batch_rules.first_input_only(batch_rules.leading_only),
    family="conv",
))
