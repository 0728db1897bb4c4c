"""Average-pool kernels: the general window (output rows wider than the window, or windows
wider than the output row: a global pool) and the 2×2 stride-2 one equal their numpy twins
(the same additions in the same order), and the op equals the old strided-add formula."""

from __future__ import annotations

import numpy as np
import pytest

from engine.core import registry
from engine.kernels import pool as P


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k,stride,size", [(2, 2, 8), (3, 2, 9), (3, 1, 6), (2, 1, 5),
                                           (8, 8, 8), (5, 1, 6), (4, 3, 10)])
def test_avg_pool_kernels_equal_their_twins(dtype, k, stride, size):
    rng = np.random.default_rng(0)
    xp = rng.standard_normal((2, 3, size, size + 1)).astype(dtype)
    ho, wo = (size - k) // stride + 1, (size + 1 - k) // stride + 1
    out = np.empty((2, 3, ho, wo), dtype)
    div = dtype(k * k)
    P.avg_pool_fwd(xp, k, stride, div, out)
    np.testing.assert_allclose(out, P.avg_pool_fwd_ref(xp, k, stride, ho, wo) / div,
                               rtol=1e-6, atol=1e-7)
    gd = rng.standard_normal((2, 3, ho, wo)).astype(dtype)
    dxp = np.zeros_like(xp)
    P.avg_pool_bwd(gd, k, stride, dxp)
    np.testing.assert_allclose(dxp, P.avg_pool_bwd_ref(gd, k, stride, size, size + 1),
                               rtol=1e-6, atol=1e-6)
    if k == stride == 2:
        out2, dxp2 = np.empty_like(out), np.zeros_like(xp)
        P.avg_pool2_fwd(xp, div, out2)
        P.avg_pool2_bwd(gd * div, 1.0 / float(div), dxp2)  # g · ¼ = (g · 4) / 4 exactly
        np.testing.assert_array_equal(out2, out)
        np.testing.assert_array_equal(dxp2, dxp)


def _strided_reference(x, k, s, ho, wo):
    out = np.zeros(x.shape[:2] + (ho, wo), x.dtype)
    for i in range(k):
        for j in range(k):
            out += x[:, :, i:i + s * (ho - 1) + 1:s, j:j + s * (wo - 1) + 1:s]
    return out / x.dtype.type(k * k)


@pytest.mark.parametrize("kernel,stride", [(2, None), (3, 2), (10, None), (5, 1)])
def test_the_op_equals_the_strided_add_formula_bit_for_bit(kernel, stride):
    spec = registry.get("avg_pool2d")

    class Ctx:
        def save(self, *arrays) -> None:
            self.saved = arrays

    x = np.random.default_rng(1).standard_normal((3, 4, 11, 10)).astype(np.float32)
    params = {"kernel": kernel, "stride": stride, "padding": 0, "count_include_pad": True}
    y = spec.forward(Ctx(), params, x)
    s = stride or kernel
    np.testing.assert_array_equal(y, _strided_reference(x, kernel, s, *y.shape[2:]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [(8, 6), (7, 9)])  # odd: the last row / column in no window
def test_the_2x2_max_pool_equals_the_general_kernels(dtype, size):
    spec = registry.get("max_pool2d")

    class Ctx:
        def save(self, *arrays) -> None:
            self.saved = arrays

    rng = np.random.default_rng(2)
    x = rng.integers(-3, 3, (2, 3) + size).astype(dtype)  # many ties: the first maximum wins
    x[0, 0, 0, :2] = -np.inf
    x[0, 1, :2, :2] = -np.inf  # a window of -inf only
    ctx = Ctx()
    y = spec.forward(ctx, {"kernel": 2, "stride": None, "padding": 0}, x)
    assert ctx.saved[0].dtype == np.uint8  # the 2×2 kernels' positions
    ho, wo = size[0] // 2, size[1] // 2
    ref_out, ref_arg = P.max_pool_fwd_ref(x, 2, 2, 2, ho, wo)
    np.testing.assert_array_equal(y, ref_out)
    g = rng.standard_normal(y.shape).astype(dtype)
    (gx,) = spec.backward(ctx, {"kernel": 2, "stride": None, "padding": 0}, g)
    np.testing.assert_array_equal(gx, P.max_pool_bwd_ref(g, ref_arg, *size))


def _max_pool2_reference(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(out, pos) of the 2×2 stride-2 max pool, window by window in Python: the first
    maximum in row-major order, NaN never winning (an all-NaN window gives -inf at 0)."""
    n, c, h, w = x.shape
    out = np.empty((n, c, h // 2, w // 2), x.dtype)
    pos = np.empty(out.shape, np.uint8)
    for idx in np.ndindex(out.shape):
        b, ch, y, j = idx
        best, at = -np.inf, 0
        for q, v in enumerate(x[b, ch, 2 * y:2 * y + 2, 2 * j:2 * j + 2].ravel()):
            if v > best:
                best, at = v, q
        out[idx], pos[idx] = best, at
    return out, pos


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(3, 2, 7, 9),  # 3×4 windows a plane: the row-by-row loop
                                   (2, 3, 12, 11),  # 6×5 = 30: the deinterleaved pass
                                   (1, 1, 40, 6)])  # one column of 20×3 windows
def test_max_pool2_picks_the_first_maximum_and_never_nan(dtype, shape):
    rng = np.random.default_rng(sum(shape))
    x = rng.integers(-3, 4, shape).astype(dtype)  # small integers: ties in most windows
    x[0, 0, 0, :2] = np.nan  # a window with two NaNs
    x[0, 0, 1, :2] = np.nan  # … now all four
    x[-1, -1, 2:4, 2:4] = -np.inf  # a window of -inf
    x[-1, 0, 2, 3] = np.nan  # a NaN beside numbers
    assert 3 * 4 < P.MIN_PLANE_DEINTERLEAVED <= 6 * 5  # the shapes take both loops
    out = np.empty(shape[:2] + (shape[2] // 2, shape[3] // 2), dtype)
    pos = np.empty(out.shape, np.uint8)
    P.max_pool2_fwd(x, out, pos)
    want, want_pos = _max_pool2_reference(x)
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(pos, want_pos)
    assert out[0, 0, 0, 0] == -np.inf and pos[0, 0, 0, 0] == 0
    out2, pos2 = np.empty_like(out), np.empty_like(pos)
    P.max_pool2_fwd_parallel(x, out2, pos2, np.array([0, 1, shape[0]], np.int64))
    np.testing.assert_array_equal(out2, want)
    np.testing.assert_array_equal(pos2, want_pos)
