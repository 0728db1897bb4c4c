"""Element-wise arithmetic and activations (broadcasting like NumPy).

GELU in float32 runs the Numba kernels of :mod:`engine.kernels.elementwise`; leaky ReLU, large
ReLUs and float32 SiLU those of :mod:`engine.kernels.activations`; each imported on first use
(importing this module, or the registry, never imports Numba); float64 uses exact NumPy
formulas so the float64 gradient check and PyTorch parity hold to 1e-10.
"""

from __future__ import annotations

import math

import numpy as np

from engine.core.registry import (
    Example,
    OpSpec,
    Param,
    Port,
    TensorType,
    broadcast_shapes,
    register,
)
from engine.ops import batch_rules, two_cores
from engine.ops._util import elementwise_flops, require_float, unbroadcast
from engine.ops.kernel_choice import kernels

BINARY_EXAMPLES = [
    Example([((3, 4), "float"), ((3, 4), "float")]),
    Example([((2, 3, 4), "float"), ((4,), "float")], note="broadcast trailing"),
    Example([((3, 1), "float"), ((1, 5), "float")], note="broadcast both"),
    Example([((1, 4), "float"), ((), "float")], note="scalar, batch of 1"),
]
UNARY_EXAMPLES = [
    Example([((3, 4), "float")]),
    Example([((2, 3, 5), "float")]),
    Example([((1, 7), "float")], note="batch of 1"),
]


def _act():
    """engine.kernels.activations (one-pass leaky ReLU, ReLU gradient, SiLU), imported on
    first use."""
    return kernels("activations")


def _binary_infer(inputs, params):
    a, b = inputs
    require_float(a, "a")
    require_float(b, "b")
    return [TensorType(broadcast_shapes(a.shape, b.shape, port_names=["a", "b"]), "float")]


def binary(name: str, doc: str, fwd, grads, examples=None, flops: int = 1) -> OpSpec:
    """Register a broadcasting binary op; *grads(a, b, out, g) -> (ga, gb)* before reduction."""

    def forward(ctx, params, a, b):
        out = fwd(a, b)
        ctx.save(a, b, out)
        return out

    def backward(ctx, params, g):
        a, b, out = ctx.saved
        ga, gb = grads(a, b, out, g)
        return (unbroadcast(ga, a.shape) if ga is not None else None,
                unbroadcast(gb, b.shape) if gb is not None else None)

    return register(OpSpec(
        name=name, category="op", doc=doc,
        inputs=[Port("a"), Port("b")], outputs=[Port("out")],
        infer=_binary_infer, forward=forward, backward=backward,
        flops=elementwise_flops(flops), examples=examples or BINARY_EXAMPLES,
        batch_rule=batch_rules.broadcast_rowwise, family="elementwise",
    ))


def _unary_infer(inputs, params):
    require_float(inputs[0], "x")
    return [inputs[0]]


def unary(name: str, doc: str, fwd, grad, examples=None, params=None, flops: int = 1,
          slope=None) -> OpSpec:
    """Register a unary op; *grad(x, out, g, params) -> gx*; *fwd(x, params)*. An optional
    *slope(x, params) -> (out, d) or None* computes the output and its derivative together
    while training; the backward is then ``g · d``."""

    def forward(ctx, p, x):
        both = slope(x, p) if slope is not None and ctx.training else None
        if both is not None:
            out, d = both
            ctx.save(x, out, d)
            return out
        out = fwd(x, p)
        ctx.save(x, out, None)
        return out

    def backward(ctx, p, g):
        x, out, d = ctx.saved
        if d is not None:  # the product goes into the slope array, just read (no fresh one in
            # cold memory: char-GPT's 768×512 GELU, one thread, ~0.2 → ~0.12 ms); a second
            # backward of this context recomputes the slope through *grad*
            ctx.saved = (x, out, None)
            return (np.multiply(g, d, out=d, dtype=d.dtype),)
        return (grad(x, out, g, p),)

    return register(OpSpec(
        name=name, category="op", doc=doc,
        inputs=[Port("x")], outputs=[Port("out")], params=params or [],
        infer=_unary_infer, forward=forward, backward=backward,
        flops=elementwise_flops(flops), examples=examples or UNARY_EXAMPLES,
        batch_rule=batch_rules.rowwise, family="elementwise",
    ))


binary("add", "Element-wise a + b (broadcasting).", np.add, lambda a, b, o, g: (g, g))
binary("sub", "Element-wise a − b (broadcasting).", np.subtract, lambda a, b, o, g: (g, -g))
binary("mul", "Element-wise a × b (broadcasting).", np.multiply,
       lambda a, b, o, g: (g * b, g * a))

# ReLU's one-pass kernels (engine.kernels.activations) from this many elements on: 4.3× / 2.6×
# faster than numpy on 1M floats, while small graphs (spiral_mlp: 0.7 s of compile on a cold
# kernel cache) never load them; the same numbers either way
RELU_KERNEL_MIN = 1 << 16
# A one-pass activation kernel counts as 4 flops per element against two_cores.MIN_FLOPS: it
# runs as element blocks on both cores from 1M elements (relu backward, float32, cache-cold,
# one thread vs split on a host at load 3.5: 262k 59 -> 94 us, a loss; 589k 247 -> 198 us;
# 1M 573 -> 480 us)
_PASS_FLOPS = 4.0


def _blocks(x: np.ndarray):
    """The two-core runner (:func:`engine.ops.two_cores.halves`) for a one-pass kernel over
    *x*, or None to run it whole."""
    split = two_cores.ways(x.size, _PASS_FLOPS * x.size, two_cores.PASS_MIN_FLOPS) == 2
    return two_cores.halves if split else None


def _threads(x: np.ndarray) -> int:
    """Numba threads for a one-pass kernel over *x* (1: not on Numba's threads; see
    :func:`engine.ops.two_cores.native_threads`)."""
    return two_cores.native_threads(x.size, _PASS_FLOPS * x.size,
                                    two_cores.NATIVE_PASS_MIN_FLOPS)


def _relu_fwd(x, p):
    if x.size < RELU_KERNEL_MIN:
        return np.maximum(x, 0)
    return _act().relu(x, _blocks(x), _threads(x))


def _relu_grad(x, o, g, p):
    if x.size >= RELU_KERNEL_MIN:
        return _act().relu_grad(x, g, _blocks(x), _threads(x))
    return g * (x > 0)


unary("relu", "Rectified linear unit: max(x, 0).", _relu_fwd, _relu_grad)
unary("tanh", "Hyperbolic tangent.", lambda x, p: np.tanh(x),
      lambda x, o, g, p: g * (1 - o * o), flops=4)
binary("div", "Element-wise a ÷ b (broadcasting).", np.divide,
       lambda a, b, o, g: (g / b, -g * (o / b)), flops=1, examples=[
           Example([((3, 4), "float"), ((3, 4), "float")], low=0.5, high=2.0),
           Example([((2, 3, 4), "float"), ((4,), "float")], low=-2.0, high=-0.5,
                   note="broadcast trailing, negative"),
           Example([((3, 1), "float"), ((1, 5), "float")], low=0.5, high=2.0,
                   note="broadcast both"),
           Example([((1, 4), "float"), ((), "float")], low=0.5, high=2.0,
                   note="scalar divisor, batch of 1"),
       ])

unary("neg", "Negation: −x.", lambda x, p: np.negative(x), lambda x, o, g, p: -g)
unary("exp", "Exponential: eˣ.", lambda x, p: np.exp(x), lambda x, o, g, p: g * o, flops=4)
unary("log", "Natural logarithm of x (x > 0).", lambda x, p: np.log(x),
      lambda x, o, g, p: g / x, flops=4, examples=[
          Example([((3, 4), "float")], low=0.1, high=3.0),
          Example([((2, 3, 5), "float")], low=0.5, high=20.0),
          Example([((1, 7), "float")], low=0.1, high=1.0, note="batch of 1"),
      ])
unary("sqrt", "Square root of x (x ≥ 0).", lambda x, p: np.sqrt(x),
      lambda x, o, g, p: g / (2 * o), flops=2, examples=[
          Example([((3, 4), "float")], low=0.1, high=3.0),
          Example([((2, 3, 5), "float")], low=0.5, high=20.0),
          Example([((1, 7), "float")], low=0.1, high=1.0, note="batch of 1"),
      ])
unary("abs", "Absolute value |x| (gradient 0 at 0).", lambda x, p: np.abs(x),
      lambda x, o, g, p: g * np.sign(x))


def _pow_grad(x, out, g, p):
    e = p["exponent"]
    if e == 0:
        return np.zeros_like(g * x)
    return g * (e * np.power(x, e - 1))


unary("pow", """Power with a constant exponent: x ** exponent.

    Non-integer exponents need x > 0 (negative x gives NaN, like NumPy and PyTorch).""",
      lambda x, p: np.power(x, p["exponent"]), _pow_grad, flops=4,
      params=[Param("exponent", "float", 2.0, doc="The constant exponent.")],
      examples=[
          Example([((3, 4), "float")], {"exponent": 2.0}),
          Example([((2, 3, 5), "float")], {"exponent": 3.0}),
          Example([((3, 4), "float")], {"exponent": 0.5}, low=0.2, high=2.0),
          Example([((1, 7), "float")], {"exponent": -1.5}, low=0.5, high=2.0,
                  note="batch of 1"),
          Example([((2, 3), "float")], {"exponent": 0.0}, low=0.5, high=2.0, note="x ** 0"),
      ])


def _clamp_fwd(x, p):
    out = x
    if p["min"] is not None:
        out = np.maximum(out, p["min"])
    if p["max"] is not None:
        out = np.minimum(out, p["max"])
    return out if out is not x else x.copy()


def _clamp_grad(x, out, g, p):
    keep = np.ones(x.shape, dtype=bool)
    if p["min"] is not None:
        keep &= x >= p["min"]
    if p["max"] is not None:
        keep &= x <= p["max"]
    return g * keep


unary("clamp", """Clamp x into [min, max]; either bound may be left empty.

    The gradient passes where min ≤ x ≤ max (like PyTorch); if min > max every value is max.""",
      _clamp_fwd, _clamp_grad,
      params=[Param("min", "float", None, optional=True, doc="Lower bound (empty: none)."),
              Param("max", "float", None, optional=True, doc="Upper bound (empty: none).")],
      examples=[
          Example([((3, 4), "float")], {"min": -0.5, "max": 0.5}),
          Example([((2, 3, 5), "float")], {"min": 0.0}),
          Example([((1, 7), "float")], {"max": 0.25}, note="batch of 1"),
          Example([((2, 4), "float")], {"min": 0.5, "max": -0.5}, note="min > max"),
      ])

unary("leaky_relu", "Leaky ReLU: x for x > 0, negative_slope·x otherwise.",
      lambda x, p: _act().leaky_relu(x, p["negative_slope"], _blocks(x), _threads(x)),
      lambda x, o, g, p: _act().leaky_relu_grad(x, g, p["negative_slope"], _blocks(x),
                                                _threads(x)),
      params=[Param("negative_slope", "float", 0.01, doc="Slope for x ≤ 0.")],
      examples=[Example([((3, 4), "float")]),
                Example([((2, 3, 5), "float")], {"negative_slope": 0.2}),
                Example([((1, 7), "float")], {"negative_slope": -0.5}, note="batch of 1")])


def _sigmoid(x: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(x))  # never overflows
    r = 1 / (1 + e)
    return np.where(x >= 0, r, e * r)


unary("sigmoid", "Logistic sigmoid: 1 / (1 + e⁻ˣ).", lambda x, p: _sigmoid(x),
      lambda x, o, g, p: g * (o * (1 - o)), flops=4,
      examples=UNARY_EXAMPLES + [Example([((2, 6), "float")], low=-6.0, high=6.0,
                                         note="large |x|")])


def _silu_grad(x, out, g, p):
    if x.dtype == np.float32:  # the training forward's slope kernel: every backward agrees
        slope = _act().silu_and_slope32(x, _blocks(x), _threads(x))[1]
        return np.multiply(g, slope, dtype=np.float32)
    s = _sigmoid(x)
    return g * (s * (1 + x * (1 - s)))


def _silu_slope(x, p):
    return _act().silu_and_slope32(x, _blocks(x), _threads(x)) if x.dtype == np.float32 else None


def _silu_fwd(x, p):  # float32: the training kernel, so training and inference agree
    if x.dtype == np.float32:
        return _act().silu_and_slope32(x, _blocks(x), _threads(x))[0]
    return x * _sigmoid(x)


unary("silu", "SiLU (swish): x · sigmoid(x).", _silu_fwd, _silu_grad,
      flops=5, slope=_silu_slope,
      examples=UNARY_EXAMPLES + [Example([((2, 6), "float")], low=-6.0, high=6.0,
                                         note="large |x|")])

# ------------------------------------------------------------------ GELU
# float32 runs the Numba kernels in engine.kernels.elementwise (loaded on first use, so that
# importing the registry never imports Numba); float64 runs the exact formulas below, which the
# float64 gradient check and PyTorch parity (≤ 1e-10) rely on.

_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
_ERF = np.frompyfunc(math.erf, 1, 1)


def _kernels():
    """engine.kernels.elementwise, imported on first use."""
    import engine.kernels.elementwise as kernels

    return kernels


def erf_exact(x: np.ndarray) -> np.ndarray:
    """erf element-wise through ``math.erf`` (exact, slow: used for float64 only)."""
    return np.asarray(_ERF(x), dtype=np.float64)


def gelu_exact(x: np.ndarray, approximate: str) -> np.ndarray:
    """GELU with exact float64 functions (``np.tanh`` or ``math.erf``)."""
    x = np.asarray(x, dtype=np.float64)
    if approximate == "tanh":
        return 0.5 * x * (1 + np.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1 + erf_exact(x / math.sqrt(2)))


def gelu_grad_exact(x: np.ndarray, g: np.ndarray, approximate: str) -> np.ndarray:
    """``g · gelu'(x)`` with exact float64 functions."""
    x = np.asarray(x, dtype=np.float64)
    if approximate == "tanh":
        t = np.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x ** 3))
        du = _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x)
        return g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du)
    cdf = 0.5 * (1 + erf_exact(x / math.sqrt(2)))
    return g * (cdf + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi))


def _gelu_fwd(x, p):
    if x.dtype == np.float32:
        return _kernels().gelu_forward(x, p["approximate"])
    return gelu_exact(x, p["approximate"]).astype(x.dtype, copy=False)


def _gelu_slope(x, p):
    if x.dtype == np.float32:
        return _kernels().gelu_forward_and_slope(x, p["approximate"])
    return None


def _gelu_grad(x, out, g, p):
    if x.dtype == np.float32:
        return _kernels().gelu_backward(x, g, p["approximate"])
    return gelu_grad_exact(x, g, p["approximate"]).astype(x.dtype, copy=False)


unary("gelu", """GELU: x · Φ(x), Φ the standard normal CDF (exact erf, or the tanh form).

    ``approximate="tanh"`` uses 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³))) like GPT-2.
    float32 runs fused Numba kernels accurate to ~1e-10; float64 uses exact functions.""",
      _gelu_fwd, _gelu_grad, flops=8, slope=_gelu_slope,
      params=[Param("approximate", "choice", "none", choices=("none", "tanh"),
                    doc="none: exact (erf); tanh: the tanh approximation.")],
      examples=[
          Example([((3, 4), "float")], low=-3.0, high=3.0),
          Example([((3, 4), "float")], {"approximate": "tanh"}, low=-3.0, high=3.0),
          Example([((2, 3, 5), "float")], {"approximate": "tanh"}, low=-4.0, high=4.0),
          Example([((2, 3, 5), "float")], low=-4.0, high=4.0, note="wide range"),
          Example([((1, 7), "float")], note="batch of 1"),
      ])

# ------------------------------------------------------------------ where


def _where_infer(inputs, params):
    cond, a, b = inputs
    require_float(a, "a")
    require_float(b, "b")
    shape = broadcast_shapes(cond.shape, a.shape, b.shape, port_names=["cond", "a", "b"])
    return [TensorType(shape, "float")]


def _where_forward(ctx, params, cond, a, b):
    mask = np.asarray(cond) != 0
    ctx.save(mask, a.shape, b.shape)
    return np.where(mask, a, b)


def _where_backward(ctx, params, g):
    mask, a_shape, b_shape = ctx.saved
    zero = np.zeros((), dtype=g.dtype)
    return (None, unbroadcast(np.where(mask, g, zero), a_shape),
            unbroadcast(np.where(mask, zero, g), b_shape))


register(OpSpec(
    name="where", category="op",
    doc="""Select a where cond is nonzero, else b (broadcasting all three).

    cond is a mask (float or int; nonzero means true) and gets no gradient.""",
    inputs=[Port("cond", dtype="any", differentiable=False, doc="Mask: nonzero picks a."),
            Port("a"), Port("b")],
    outputs=[Port("out")],
    infer=_where_infer, forward=_where_forward, backward=_where_backward,
    flops=elementwise_flops(1), batch_rule=batch_rules.broadcast_rowwise, family="elementwise",
    examples=[
        Example([((3, 4), "int", 2), ((3, 4), "float"), ((3, 4), "float")]),
        Example([((2, 1, 4), "int", 2), ((3, 1), "float"), ((2, 3, 4), "float")],
                note="broadcast all"),
        Example([((3, 4), "float"), ((4,), "float"), ((), "float")], note="float mask"),
        Example([((1, 5), "int", 2), ((1, 5), "float"), ((1, 1), "float")],
                note="batch of 1"),
    ],
))
