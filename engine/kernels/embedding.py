"""Embedding backward: scatter-add of output gradients into the table rows (numpy twin:
``np.add.at``, which is far slower)."""

from __future__ import annotations

import numpy as np
from numba import njit

from engine.kernels.cold import twin


@njit(cache=True, nogil=True)
def embedding_bwd(ids, g, gw):  # ids: (N,) int64; g: (N, D); gw: (V, D) zero-filled
    n, d = g.shape
    for i in range(n):
        row = ids[i]
        for e in range(d):
            gw[row, e] += g[i, e]


@njit(cache=True, nogil=True)
def ids_in_range(ids, num):  # → index of the first id outside [0, num), or -1
    for i in range(ids.shape[0]):
        if ids[i] < 0 or ids[i] >= num:
            return i
    return -1


def embedding_bwd_ref(ids: np.ndarray, g: np.ndarray, num: int) -> np.ndarray:
    gw = np.zeros((num, g.shape[1]), g.dtype)
    np.add.at(gw, ids, g)
    return gw


@twin(embedding_bwd)
def _embedding_bwd_cold(ids, g, gw):  # the kernel's arguments (engine.kernels.cold)
    np.add.at(gw, ids, g)
