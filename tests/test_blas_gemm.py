"""engine.kernels.blas.gemm (the kernels' GEMM on scipy-openblas64) against float64 numpy, on
every operand layout it accepts: C-contiguous, transposed, row/column blocks of either,
strided views, degenerate sizes, accumulation; what BLAS cannot take is refused; and its
library stays on one thread."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from engine.kernels import blas


@njit(cache=False)
def _from_a_kernel(a, b, out):  # called from compiled code, as the kernels do
    blas.gemm(a, b, out, True)


def _views(rng, rows, cols, dtype):
    """(name, view) pairs of shape (rows, cols) in several layouts."""
    base = rng.standard_normal((rows + 3, cols + 5)).astype(dtype)
    t = rng.standard_normal((cols + 4, rows + 2)).astype(dtype)
    s = rng.standard_normal((2 * rows, 3 * cols)).astype(dtype)
    return [("C", np.ascontiguousarray(base[:rows, :cols])),
            ("block", base[2:2 + rows, 3:3 + cols]),
            ("T", np.ascontiguousarray(t[:cols, :rows]).T),
            ("T-block", t[1:1 + cols, 2:2 + rows].T),
            ("strided", np.ascontiguousarray(s[::2, ::3]))]  # copied, as a kernel would


@pytest.mark.parametrize("m,k,n", [(16, 147, 576), (5, 7, 3), (1, 9, 4), (6, 1, 5), (3, 8, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_matches_numpy_on_every_layout(dtype, m, k, n):
    # every layout pair in float64; float32 (the same code, another symbol) on C and T
    rng = np.random.default_rng(m * 100 + k + n)
    tol = dict(rtol=2e-4, atol=2e-4 * np.sqrt(k)) if dtype == np.float32 else \
        dict(rtol=1e-12, atol=1e-12 * k)
    wanted = ("C", "T") if dtype == np.float32 else ("C", "block", "T", "T-block", "strided")
    for an, a in _views(rng, m, k, dtype):
        for bn, b in _views(rng, k, n, dtype):
            if an not in wanted or bn not in wanted:
                continue
            want = a.astype(np.float64) @ b.astype(np.float64)
            big = np.full((m + 2, n + 3), 7.0, dtype)
            out = big[1:1 + m, 2:2 + n]  # a block of a larger output
            blas.gemm(a, b, out)
            np.testing.assert_allclose(out, want, **tol, err_msg=f"{an} @ {bn}")
            assert (big[0] == 7).all() and (big[:, :2] == 7).all() and (big[:, 2 + n:] == 7).all()
            blas.gemm(a, b, out, True)
            np.testing.assert_allclose(out, 2 * want, **tol, err_msg=f"{an} @ {bn} (+=)")


def test_gemm_called_from_compiled_code_accumulates():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((4, 6)), rng.standard_normal((5, 6)).T
    out = np.ones((4, 5))
    _from_a_kernel(a, b, out)
    np.testing.assert_allclose(out, 1 + a @ b, rtol=1e-12)


def test_gemm_with_an_empty_contraction_writes_zeros_or_keeps_the_sum():
    a, b = np.ones((3, 0), np.float32), np.ones((0, 4), np.float32)
    out = np.full((3, 4), 5.0, np.float32)
    blas.gemm(a, b, out, True)
    assert (out == 5).all()
    blas.gemm(a, b, out)
    assert (out == 0).all()


def test_the_library_is_pinned_to_one_thread_again_after_a_process_wide_limit():
    from threadpoolctl import ThreadpoolController, threadpool_limits

    from engine.kernels import parallel

    def ours():
        return [lib for lib in ThreadpoolController().select(user_api="blas").lib_controllers
                if "scipy_openblas64" in lib.filepath.replace("\\", "/").split("/")[-3]]

    (lib,) = ours()
    with threadpool_limits(limits=2):
        assert lib.get_num_threads() == 2  # (the limit reached it: the check can fail)
        parallel.pin_blas()
        assert lib.get_num_threads() == 1
    assert lib.get_num_threads() == 1


def test_operands_blas_cannot_take_are_refused_not_misread():
    """A broadcast row (stride 0), negative strides, no unit stride, an output without
    unit-stride rows, mismatched shapes: a clear ValueError, never a wrong product."""
    rng = np.random.default_rng(11)
    a = rng.standard_normal((4, 6))
    b = rng.standard_normal((6, 5))
    out = np.zeros((4, 5))
    bad = [(np.broadcast_to(a[0], (4, 6)), b, out),  # stride 0
           (a, b[::-1], out),  # negative stride
           (rng.standard_normal((8, 18))[::2, ::3], b, out),  # no unit stride
           (a, b, np.zeros((5, 4)).T), (a, b, np.zeros((8, 10))[::2, ::2]),  # outputs
           (a, b[:5], out), (a, b, np.zeros((4, 4)))]  # shapes
    for x, y, o in bad:
        before = o.copy()
        with pytest.raises(ValueError, match="gemm"):
            blas.gemm(x, y, o)
        np.testing.assert_array_equal(o, before)
