"""A GEMM on Numba's threads: the rows of ``out = x @ y`` in one block per thread, each block
one :func:`engine.kernels.blas.gemm` (one thread inside each worker). Used by a
fully-connected layer inside a CNN step whose ops own both cores, where BLAS itself runs on
one thread (:class:`engine.ops.two_cores.own_threads`).

*x* and *out* are C-contiguous; *y* is C- or F-contiguous (a weight or its transpose), so
every block's product is one BLAS call on contiguous operands without a copy."""

from __future__ import annotations

from numba import njit, prange

from engine.kernels.blas import gemm


@njit(cache=True, nogil=True)
def rows_part(x, y, out, lo, hi):
    # out[lo:hi] = x[lo:hi] @ y; x: (M, K) C, y: (K, N) C or F, out: (M, N) C
    gemm(x[lo:hi], y, out[lo:hi])


@njit(cache=True, nogil=True, parallel=True)
def rows_parallel(x, y, out, bounds):
    for t in prange(bounds.shape[0] - 1):
        rows_part(x, y, out, bounds[t], bounds[t + 1])
