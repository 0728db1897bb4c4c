"""Gradient buffers an op lends to the executor's backward pass.

An op whose inputs are views of one value (attention's q, k and v, three ``index`` picks of
one permuted qkv projection) may return their gradients as views of one fresh buffer laid out
like that value, each at its input's place. The ``index`` backward would scatter each into a
zero-filled sum of the permuted value; it finds the gradient already where the copy would put
it, so the executor adopts the buffer as that sum instead (no zeros, no copies) and zeroes
whatever no gradient covered before the sum is read (:mod:`engine.core.run`).

Only a buffer made by :func:`lend` is adopted: the executor must own the memory it completes
with zeros, and no other array may share it. A buffer is adopted at most once, and only by
the thread that lent it (a split batch's parts run their backward passes at once).
"""

from __future__ import annotations

import functools
import threading
import weakref

import numpy as np

_local = threading.local()


def _lent() -> dict[int, weakref.ref]:
    lent = getattr(_local, "lent", None)
    if lent is None:
        lent = _local.lent = {}
    return lent


def lend(shape: tuple, dtype) -> np.ndarray:
    """An uninitialised C-contiguous array for an op's input gradients (see the module doc);
    forgotten when it is collected without having been adopted."""
    buf = np.empty(shape, dtype)
    lent = _lent()
    key = id(buf)

    def forget(_ref: weakref.ref) -> None:  # collected unadopted: its id may be reused
        lent.pop(key, None)

    lent[key] = weakref.ref(buf, forget)
    return buf


def adopt(buf: np.ndarray) -> bool:
    """Whether *buf* was lent by this thread and not adopted yet; it is adopted from now on."""
    lent = getattr(_local, "lent", None)
    if not lent:
        return False
    ref = lent.pop(id(buf), None)
    return ref is not None and ref() is buf


def address(a: np.ndarray) -> int:
    """The address of *a*'s first element."""
    return a.__array_interface__["data"][0]


def view_like(buf: np.ndarray, like: np.ndarray) -> np.ndarray:
    """The view of *buf* at *like*'s place in *like*'s base (same offset and strides): *buf*
    has the base's shape, dtype and C layout."""
    base = like.base
    assert isinstance(base, np.ndarray), "view_like needs a view"
    offset = address(like) - address(base)
    return np.ndarray(like.shape, buf.dtype, buffer=buf, offset=offset, strides=like.strides)


def disjoint_elements(view: np.ndarray) -> bool:
    """Whether no two elements of *view* share memory, by a sufficient test: along its axes
    in order of stride, each stride steps past everything the smaller ones reach. A broadcast
    view (stride 0 along an axis longer than 1) fails it, as do exotic interleavings."""
    return _disjoint(view.shape, view.strides, view.itemsize)


@functools.lru_cache(maxsize=1024)
def _disjoint(shape: tuple, strides: tuple, itemsize: int) -> bool:
    """:func:`disjoint_elements` of a layout (a few per model: every attention backward asks)."""
    reach = itemsize  # bytes spanned by the axes taken so far, from one element
    for stride, size in sorted((abs(s), n) for s, n in zip(strides, shape) if n > 1):
        if stride < reach:
            return False
        reach += stride * (size - 1)
    return True


def common_base(*views: np.ndarray) -> np.ndarray | None:
    """The C-contiguous array all *views* are disjoint views of, when they share one, else
    None. Views that overlap, one another (one array passed as both q and k) or themselves
    (k broadcast from one head to all of q's: multi-query attention), would have their
    gradients written over each other."""
    base = views[0].base
    if base is None or not isinstance(base, np.ndarray) or not base.flags.c_contiguous:
        return None
    if any(v.base is not base or v.dtype != base.dtype or not disjoint_elements(v)
           for v in views):
        return None
    for i, a in enumerate(views):
        for b in views[i + 1:]:
            try:
                # numpy's stubs allow only -1 / 0; a positive bound is documented
                if np.shares_memory(a, b, max_work=10_000):  # type: ignore[arg-type]
                    return None
            except np.exceptions.TooHardError:
                return None
    return base
