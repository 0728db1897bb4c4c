"""Sums over contiguous arrays inside kernels, in float64, as independent vector lanes.

A loop ``acc += a[q]`` compiled without fast-math flags is one dependent chain of adds (LLVM
may not reorder float adds), one add latency per element: the bias gradient of the
``cnn_issue24`` bench model's first convolution (64×16×24² values) took 0.23 of its 0.41 ms
backward that way (two threads). Allowing the adds to be reassociated lets LLVM keep several
partial sums in vector lanes; only the summation order changes.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def total(a):  # a: a C-contiguous array of any rank → Σ a in float64
    flat = a.reshape(a.size)
    acc = 0.0
    for q in range(flat.size):
        acc += flat[q]
    return acc


def total_ref(a: np.ndarray) -> float:
    """Numpy twin of :func:`total`."""
    return float(np.sum(a, dtype=np.float64))
