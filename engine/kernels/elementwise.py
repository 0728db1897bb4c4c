"""GELU forward/backward kernels (tanh and erf forms) over flat contiguous arrays, with twins.

This Numba build has no SVML, so ``math.tanh`` / ``math.exp`` / ``math.erf`` inside a kernel
are scalar libm calls (GELU with ``math.tanh``: ~52 ms on 4M floats). The kernels therefore
use only arithmetic that LLVM vectorises:

* ``exp(y)`` for ``y`` in ``[-36, 0]``: ``(e^(y/256))^256`` — a degree-9 Taylor polynomial on
  ``[-0.15, 0]`` squared eight times (relative error below 5e-13).
* ``tanh`` form: ``0.5·(1 + tanh(u)) = sigmoid(2u) = 1 / (1 + e^(-2u))``, needing only
  ``e^(-2|u|)``, taken as 0 for ``|u| ≥ 18`` (where ``1 − tanh`` is below 1e-15).
* erf form: ``erfc(z) = e^(-z²)·G(z)`` with ``G = erfcx``, smooth on ``[0, 6]``: a degree-12
  polynomial in ``s``, an affine image of ``t = (z − 3)/(z + 3)``, interpolating ``G`` at the
  Chebyshev nodes (coefficients computed at import from ``math.erfc``/``math.exp``; erf error
  ~3e-12); for ``z ≥ 6``, where ``erfc`` is below 3e-17, ``erfc`` and the density are 0.

float64 arrays run these in float64 (error ~1e-10); float32 arrays run the float32-lane
variants below (twice the SIMD width, float32-sized polynomials, within ~1 ulp of x of the
exact value). The ops use the kernels for float32 only; float64 uses exact numpy formulas
(``np.tanh`` and ``math.erf``) so the float64 gradient check and the 1e-10 PyTorch parity hold
(see ``engine.ops.elementwise``).

``error_model="numpy"`` matters: Numba's default Python error model checks every float
division for zero, which blocks vectorisation (tanh-form forward on 4M float32: 50 ms → 12 ms).
Measured on 4M float32 (this 2-core machine, shared, best of 5): forward 12 ms (tanh form) /
16 ms (erf form), backward 15 / 18 ms; numpy's float32 tanh-form forward takes 22–29 ms and an
exact-erf numpy forward (``math.erf`` per element) ~700 ms.

Each kernel has a numpy twin (``*_ref``) computing the same approximation, used by the tests.
The kernels are serial (no ``parallel=True``): on 2 cores Numba's spin-waiting OpenMP layer and
OpenBLAS threads would compete, and no measurement has shown a threaded win yet.
Kernels compile lazily on first call (no eager signatures) and are cached on disk.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload
from numpy.polynomial import chebyshev

from engine.kernels.cold import call, twin

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
INV_SQRT_2 = 1.0 / math.sqrt(2.0)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
TANH_COEF = 0.044715
ERF_Z_MAX = 6.0  # erfc(6) < 3e-17: erf is 1 in float64 beyond
TANH_U_MAX = 18.0  # 1 - tanh(18) < 1e-15
EXP_SCALE = 256.0  # exp(y) = exp(y / 256) ** 256
ERFCX_DEGREE = 12
ERFCX_K = 3.0
ERFCX_TMAX = (ERF_Z_MAX - ERFCX_K) / (ERF_Z_MAX + ERFCX_K)
ERFCX_S_SCALE = 2.0 / (ERFCX_TMAX + 1.0)


def _erfcx_coefficients(degree: int = ERFCX_DEGREE) -> np.ndarray:
    """Power-basis coefficients (highest first) of erfcx on [0, 6] in the variable ``s``.

    ``t = (z − K)/(z + K)`` maps ``z ∈ [0, 6]`` to ``[−1, TMAX]``, rescaled to ``s ∈ [−1, 1]``;
    erfcx is so smooth in ``s`` that a degree-12 Chebyshev interpolant is accurate to ~3e-12,
    and at that degree the power basis is still well conditioned (Horner is cheaper).
    """

    def erfcx(s: np.ndarray) -> np.ndarray:
        t = (s + 1.0) / ERFCX_S_SCALE - 1.0
        z = ERFCX_K * (1.0 + t) / (1.0 - t)
        return np.array([math.erfc(v) * math.exp(v * v) for v in z])

    cheb = np.asarray(chebyshev.chebinterpolate(erfcx, degree), dtype=np.float64)  # type: ignore[type-var]  # numpy stubs want a scalar type
    return np.ascontiguousarray(chebyshev.cheb2poly(cheb)[::-1], dtype=np.float64)


ERFCX_COEF = _erfcx_coefficients()
# float32 lanes: degree 9 (relative error 2e-8, below float32's epsilon) in float32.
ERFCX_DEGREE_32 = 9
ERFCX_COEF_32 = _erfcx_coefficients(ERFCX_DEGREE_32).astype(np.float32)
F32 = np.float32
INV_LN2_32 = F32(1.0 / math.log(2.0))
LN2_HI_32 = F32(0.693145751953125)  # ln 2 = HI + LO; HI has 15 trailing zero bits, so k·HI
LN2_LO_32 = F32(math.log(2.0) - 0.693145751953125)  # is exact for every k ≤ 64 (Cody–Waite)
# Reassociation and contraction (no nnan/ninf: saturation relies on exact comparisons) let
# LLVM vectorise the polynomials further: erf-form forward on 393k float32 1.94 → 1.31 ms.
_FAST = {"reassoc", "contract", "nsz", "arcp"}


# ------------------------------------------------------------------ scalar helpers (Numba)


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_FAST, inline="always")
def _exp_nonpos(y):
    """e^y for y in [-36, 0] (float64) without libm: Taylor on y/256, squared 8 times."""
    r = y * (1.0 / EXP_SCALE)
    p = 1.0 + r * (1.0 + r * (1.0 / 2.0 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (
        1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0 + r * (
            1.0 / 40320.0 + r * (1.0 / 362880.0)))))))))
    for _ in range(8):
        p = p * p
    return p


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_FAST, inline="always")
def _erfcx(z):
    """erfcx(z) = erfc(z)·e^(z²) for z in [0, 6]: Horner in s (see ``_erfcx_coefficients``)."""
    t = (z - ERFCX_K) / (z + ERFCX_K)
    s = (t + 1.0) * ERFCX_S_SCALE - 1.0
    p = ERFCX_COEF[0]
    for k in range(1, ERFCX_DEGREE + 1):
        p = p * s + ERFCX_COEF[k]
    return p


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_FAST, inline="always")
def _sigmoid_2u(x):
    """(s, u') for the tanh form: s = sigmoid(2u), u = √(2/π)(x + 0.044715x³), u' = du/dx."""
    u = SQRT_2_OVER_PI * (x + TANH_COEF * x * x * x)
    du = SQRT_2_OVER_PI * (1.0 + 3.0 * TANH_COEF * x * x)
    a = abs(u)
    e = _exp_nonpos(-2.0 * min(a, TANH_U_MAX))
    e = e if a < TANH_U_MAX else 0.0  # saturated (0 for huge |x|, so x·e cannot blow up)
    s = 1.0 / (1.0 + e)
    if u < 0.0:
        s = e * s
    return s, du


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_FAST, inline="always")
def _phi_cdf(x):
    """(Φ(x), φ(x)): standard normal CDF and density, for the erf form."""
    z = abs(x) * INV_SQRT_2
    zc = min(z, ERF_Z_MAX)
    e = _exp_nonpos(-zc * zc)
    e = e if z < ERF_Z_MAX else 0.0  # erfc and the density are 0 in float64 beyond
    half_erfc = 0.5 * e * _erfcx(zc)
    cdf = 1.0 - half_erfc if x >= 0.0 else half_erfc
    return cdf, e * INV_SQRT_2PI


# ------------------------------------------------------------------ kernels (flat arrays)


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_FAST)
def gelu_tanh_fwd(x, out):  # x, out: (N,)
    for i in range(x.shape[0]):
        v = np.float64(x[i])
        s, _ = _sigmoid_2u(v)
        out[i] = v * s


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_FAST)
def gelu_tanh_bwd(x, g, out):  # x, g, out: (N,); out = g · gelu'(x)
    for i in range(x.shape[0]):
        v = np.float64(x[i])
        s, du = _sigmoid_2u(v)
        out[i] = g[i] * (s + v * 2.0 * s * (1.0 - s) * du)


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_FAST)
def gelu_erf_fwd(x, out):  # x, out: (N,)
    for i in range(x.shape[0]):
        v = np.float64(x[i])
        cdf, _ = _phi_cdf(v)
        out[i] = v * cdf


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_FAST)
def gelu_erf_bwd(x, g, out):  # x, g, out: (N,); out = g · (Φ(x) + x·φ(x))
    for i in range(x.shape[0]):
        v = np.float64(x[i])
        cdf, pdf = _phi_cdf(v)
        out[i] = g[i] * (cdf + v * pdf)


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_FAST)
def gelu_tanh_fwd_d(x, out, d):  # x, out, d: (N,); out = gelu(x), d = gelu'(x)
    for i in range(x.shape[0]):
        v = np.float64(x[i])
        s, du = _sigmoid_2u(v)
        out[i] = v * s
        d[i] = s + v * 2.0 * s * (1.0 - s) * du


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_FAST)
def gelu_erf_fwd_d(x, out, d):  # x, out, d: (N,); out = gelu(x), d = gelu'(x)
    for i in range(x.shape[0]):
        v = np.float64(x[i])
        cdf, pdf = _phi_cdf(v)
        out[i] = v * cdf
        d[i] = cdf + v * pdf


# ------------------------------------------------------------------ float32 lanes
# The float64 kernels above cost ~3.3 ns per element at 4 doubles per AVX2 register. These
# compute in float32 (8 lanes) with float32-sized approximations: e^y by range reduction
# y = −k·ln2 + r (|r| ≤ ln2/2, degree-7 Taylor, error 5e-9) times 2^−k made from its exponent
# bits (a table lookup would block vectorisation), and erfcx of degree 9. Error
# against the exact float64 GELU: ≤ 3 float32 ulps of x. GELU forward + slope on 393k floats:
# 1.32 → 0.65 ms.


def _f32_from_bits(bits):
    """The float32 whose IEEE bits are the integer *bits* (plain Python; compiled code uses
    an LLVM bitcast, free in SIMD lanes, see ``_f32_bitcast``)."""
    return np.array(bits, np.int32).view(np.float32)[()]


@intrinsic
def _f32_bitcast(typingctx, bits):
    """int32 → float32 reinterpreting the bits (LLVM ``bitcast``)."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        word = context.cast(builder, args[0], signature.args[0], types.int32)
        return builder.bitcast(word, ir.FloatType())

    return types.float32(bits), codegen


@overload(_f32_from_bits, inline="always")
def _f32_from_bits_compiled(bits):
    """``_f32_from_bits`` inside Numba kernels (the plain function runs with the JIT off)."""
    return lambda bits: _f32_bitcast(bits)  # type: ignore[call-arg]  # typingctx is Numba's


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_FAST, inline="always")
def _exp_nonpos32(y):
    """e^y for float32 y in [-36, 0]: e^r · 2^-k with 2^-k built from its exponent bits
    (k ≤ 52, a normal float32). The same numbers, bit for bit, as the six power-of-two selects
    it replaced, in fewer lanes' instructions: GELU (erf) forward + slope on 393k float32,
    one thread, 360 → 259 µs; the exponential alone 172 → 73 µs."""
    k = np.floor(y * (-INV_LN2_32) + F32(0.5))  # 0 … 52
    r = y + k * LN2_HI_32 + k * LN2_LO_32
    p = F32(1.0) + r * (F32(1.0) + r * (F32(1.0 / 2) + r * (F32(1.0 / 6) + r * (
        F32(1.0 / 24) + r * (F32(1.0 / 120) + r * (F32(1.0 / 720) + r * F32(1.0 / 5040)))))))
    return p * _f32_from_bits((np.int32(127) - np.int32(k)) << np.int32(23))


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_FAST, inline="always")
def _sigmoid_2u32(x):
    """(s, x·2·s·(1−s)·u′) in float32: GELU′ = s + the second (see ``_sigmoid_2u``).

    u saturates (|u| ≥ 18) from |x| ≈ 7.6 on, so u and the slope use x clamped to ±10: with
    reassociation a product such as 2·x·… could otherwise overflow to inf and meet a 0."""
    xc = min(max(x, F32(-10.0)), F32(10.0))
    u = F32(SQRT_2_OVER_PI) * (xc + F32(TANH_COEF) * xc * xc * xc)
    du = F32(SQRT_2_OVER_PI) * (F32(1.0) + F32(3.0 * TANH_COEF) * xc * xc)
    a = abs(u)
    e = _exp_nonpos32(F32(-2.0) * min(a, F32(TANH_U_MAX)))
    e = e if a < F32(TANH_U_MAX) else F32(0.0)
    r = F32(1.0) / (F32(1.0) + e)
    s = e * r if u < F32(0.0) else r
    return s, F32(2.0) * xc * e * r * r * du  # s(1−s) = e/(1+e)²: no cancellation near 1


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_FAST, inline="always")
def _phi_cdf32(x):
    """float32 twin of ``_phi_cdf``."""
    z = abs(x) * F32(INV_SQRT_2)
    zc = min(z, F32(ERF_Z_MAX))
    e = _exp_nonpos32(-zc * zc)
    e = e if z < F32(ERF_Z_MAX) else F32(0.0)
    t = (zc - F32(ERFCX_K)) / (zc + F32(ERFCX_K))
    s = (t + F32(1.0)) * F32(ERFCX_S_SCALE) - F32(1.0)
    p = ERFCX_COEF_32[0]
    for j in range(1, ERFCX_DEGREE_32 + 1):
        p = p * s + ERFCX_COEF_32[j]
    half_erfc = F32(0.5) * e * p
    cdf = F32(1.0) - half_erfc if x >= F32(0.0) else half_erfc
    return cdf, e * F32(INV_SQRT_2PI)


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_FAST)
def gelu_tanh_fwd_d32(x, out, d):  # x, out, d: (N,) float32
    for i in range(x.shape[0]):
        v = x[i]
        s, slope = _sigmoid_2u32(v)
        out[i] = v * s
        d[i] = s + slope


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_FAST)
def gelu_erf_fwd_d32(x, out, d):  # x, out, d: (N,) float32
    for i in range(x.shape[0]):
        v = x[i]
        cdf, pdf = _phi_cdf32(v)
        out[i] = v * cdf
        d[i] = cdf + v * pdf


# ------------------------------------------------------------------ numpy twins


def _exp_nonpos_ref(y: np.ndarray) -> np.ndarray:
    r = y / EXP_SCALE
    p = np.ones_like(r)
    for k in range(9, 0, -1):  # Horner: 1 + r(1 + r/2(1 + r/3(...)))
        p = 1.0 + p * r / k
    for _ in range(8):
        p = p * p
    return p


def _sigmoid_2u_ref(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    u = SQRT_2_OVER_PI * (x + TANH_COEF * x * x * x)
    du = SQRT_2_OVER_PI * (1.0 + 3.0 * TANH_COEF * x * x)
    a = np.abs(u)
    e = np.where(a < TANH_U_MAX, _exp_nonpos_ref(-2.0 * np.minimum(a, TANH_U_MAX)), 0.0)
    s = 1.0 / (1.0 + e)
    return np.where(u < 0.0, e * s, s), du


def _phi_cdf_ref(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    z = np.abs(x) * INV_SQRT_2
    zc = np.minimum(z, ERF_Z_MAX)
    e = np.where(z < ERF_Z_MAX, _exp_nonpos_ref(-zc * zc), 0.0)
    t = (zc - ERFCX_K) / (zc + ERFCX_K)
    half_erfc = 0.5 * e * np.polyval(ERFCX_COEF, (t + 1.0) * ERFCX_S_SCALE - 1.0)
    return np.where(x >= 0.0, 1.0 - half_erfc, half_erfc), e * INV_SQRT_2PI


def gelu_fwd_ref(x: np.ndarray, approximate: str) -> np.ndarray:
    """Numpy twin of the forward kernels (same approximations), in float64."""
    x = np.asarray(x, dtype=np.float64)
    if approximate == "tanh":
        return x * _sigmoid_2u_ref(x)[0]
    return x * _phi_cdf_ref(x)[0]


def gelu_and_slope_ref(x: np.ndarray, approximate: str) -> tuple[np.ndarray, np.ndarray]:
    """Numpy twin of the ``*_fwd_d`` kernels: (gelu(x), gelu'(x)) in float64, Φ computed once."""
    x = np.asarray(x, dtype=np.float64)
    if approximate == "tanh":
        s, du = _sigmoid_2u_ref(x)
        return x * s, s + x * 2.0 * s * (1.0 - s) * du
    cdf, pdf = _phi_cdf_ref(x)
    return x * cdf, cdf + x * pdf


def gelu_bwd_ref(x: np.ndarray, g: np.ndarray, approximate: str) -> np.ndarray:
    """Numpy twin of the backward kernels: g · gelu'(x), in float64."""
    return g * gelu_and_slope_ref(x, approximate)[1]


# cold-start twins (engine.kernels.cold): the kernels' arguments, outputs written in place.
# The float32 ones compute in float32 with numpy's exp over blocks that stay in the L2 cache
# (one GELU layer of the char GPT, 2M float32: the float64 twins above 27 ms, these over the
# whole array at once 34 ms, in blocks of COLD_BLOCK 8 ms; the kernel 2.5 ms).
COLD_BLOCK = 1 << 14


def _in_blocks(fn):
    """*fn*(x, out, d) run over consecutive blocks of COLD_BLOCK elements."""
    def blocked(x, out, d):
        for lo in range(0, x.shape[0], COLD_BLOCK):
            fn(x[lo:lo + COLD_BLOCK], out[lo:lo + COLD_BLOCK], d[lo:lo + COLD_BLOCK])
    return blocked


@twin(gelu_erf_fwd_d)
def _gelu_erf_fwd_d_cold(x, out, d):
    out[:], d[:] = gelu_and_slope_ref(x, "none")


@twin(gelu_tanh_fwd_d)
def _gelu_tanh_fwd_d_cold(x, out, d):
    out[:], d[:] = gelu_and_slope_ref(x, "tanh")


@twin(gelu_erf_fwd_d32)
@_in_blocks
def _gelu_erf_fwd_d32_cold(x, out, d):
    # Φ(x) = 1 − ½·e^(−z²)·erfcx(z) for x ≥ 0 (½·e^(−z²)·erfcx(z) below), z = |x|/√2
    z = np.minimum(np.abs(x) * F32(INV_SQRT_2), F32(ERF_Z_MAX))
    e = np.exp(-(z * z))  # beyond ERF_Z_MAX e^-36 instead of the kernel's 0: Φ is 1 or ~0
    s = (z - F32(ERFCX_K)) / (z + F32(ERFCX_K))
    s += F32(1.0)
    s *= F32(ERFCX_S_SCALE)
    s -= F32(1.0)
    p = np.full_like(x, ERFCX_COEF_32[0])
    for c in ERFCX_COEF_32[1:]:
        p *= s
        p += c
    p *= e
    p *= F32(0.5)  # ½·erfc(z)
    cdf = np.where(x >= 0, F32(1.0) - p, p)
    np.multiply(x, cdf, out=out)
    e *= F32(INV_SQRT_2PI)  # φ(x)
    e *= x
    np.add(cdf, e, out=d)


@twin(gelu_tanh_fwd_d32)
@_in_blocks
def _gelu_tanh_fwd_d32_cold(x, out, d):
    xc = np.clip(x, F32(-10.0), F32(10.0))
    x2 = xc * xc
    u = (F32(TANH_COEF) * x2 + F32(1.0)) * xc * F32(SQRT_2_OVER_PI)
    du = (F32(3.0 * TANH_COEF) * x2 + F32(1.0)) * F32(SQRT_2_OVER_PI)
    e = np.exp(F32(-2.0) * np.minimum(np.abs(u), F32(TANH_U_MAX)))  # e^-36 beyond, not 0
    r = F32(1.0) / (F32(1.0) + e)
    sig = np.where(u < 0, e * r, r)
    np.multiply(x, sig, out=out)
    np.add(sig, F32(2.0) * xc * e * r * r * du, out=d)


# ------------------------------------------------------------------ entry points


def gelu_forward(x: np.ndarray, approximate: str) -> np.ndarray:
    """GELU of *x* (any shape, any strides) through the kernels; result has x's dtype."""
    flat = np.ascontiguousarray(x).reshape(-1)
    if flat.dtype == np.float32:  # one float32 kernel: training and inference agree bit for bit
        return gelu_forward_and_slope(x, approximate)[0]
    out = np.empty_like(flat)
    if approximate == "tanh":
        gelu_tanh_fwd(flat, out)
    else:
        gelu_erf_fwd(flat, out)
    return out.reshape(np.shape(x))


def gelu_forward_and_slope(x: np.ndarray, approximate: str) -> tuple[np.ndarray, np.ndarray]:
    """(GELU(x), GELU'(x)) in one pass, both in x's dtype: a training forward keeps the slope
    so that the backward is one multiplication instead of a second pass of polynomials."""
    flat = np.ascontiguousarray(x).reshape(-1)
    out, d = np.empty_like(flat), np.empty_like(flat)
    f32 = flat.dtype == np.float32
    if approximate == "tanh":
        call(gelu_tanh_fwd_d32 if f32 else gelu_tanh_fwd_d, flat, out, d)
    else:
        call(gelu_erf_fwd_d32 if f32 else gelu_erf_fwd_d, flat, out, d)
    return out.reshape(np.shape(x)), d.reshape(np.shape(x))


def gelu_backward(x: np.ndarray, g: np.ndarray, approximate: str) -> np.ndarray:
    """``g · gelu'(x)`` through the kernels; *g* broadcasts to x's shape."""
    flat = np.ascontiguousarray(x).reshape(-1)
    if flat.dtype == np.float32:  # the training forward's slope, so both backwards agree
        d = gelu_forward_and_slope(x, approximate)[1]
        return np.multiply(d, g, dtype=np.float32)
    gflat = np.ascontiguousarray(np.broadcast_to(g, np.shape(x)), dtype=flat.dtype).reshape(-1)
    out = np.empty_like(flat)
    if approximate == "tanh":
        gelu_tanh_bwd(flat, gflat, out)
    else:
        gelu_erf_bwd(flat, gflat, out)
    return out.reshape(np.shape(x))
