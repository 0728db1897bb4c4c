"""Process-wide heap policy: a training process keeps the memory a step freed for the next step.

A training step allocates the same large arrays every time (activations, im2col columns,
gradients) and frees them when its tape goes. With glibc's default settings the arrays
above its dynamic mmap threshold are mapped and unmapped each step, and the memory freed at
the top of the heap is handed back to the kernel, so the next step page-faults it in again,
page by zeroed page. On the hand-written ``cnn_issue24`` model (bench) that was ~2,250 minor
faults and 5–6 ms of kernel time per step (``wiregrad train``: 11.5–12.9 ms a step; with
this policy 7.1–8.3 ms, 0 faults). Measured with ``getrusage`` around 200 steps.

:func:`keep_freed_memory` raises glibc's mmap threshold to its maximum (32 MiB: larger arrays
are still mapped) and its trim threshold so that freed memory stays in the process. The
wiregrad processes call it at their start (the CLI, the editor's worker); the peak a step
needs is held until :func:`release_freed_memory` (the worker calls it after a run). It does
nothing off glibc, when ``WIREGRAD_KEEP_FREED_MEMORY=0``, or when the user set glibc's own
``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` or a ``glibc.malloc.*`` tunable (their
choice is kept).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import platform

ENV = "WIREGRAD_KEEP_FREED_MEMORY"
_GLIBC_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 2**20  # glibc's largest (HEAP_MAX_SIZE / 2 on 64-bit)
TRIM_THRESHOLD = 2**31 - 1  # mallopt takes an int: trim only past 2 GiB free at the top

_state = {"kept": False}


@functools.cache
def _libc():
    """glibc's handle (its ``mallopt`` and ``malloc_trim`` typed), or None elsewhere (musl,
    macOS, Windows)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    if not (hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim")):
        return None
    libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
    return libc


def _users_malloc_settings() -> bool:
    """Whether the environment sets glibc's malloc thresholds (its own variables, or
    ``glibc.malloc.*`` in ``GLIBC_TUNABLES``; other tunables leave the policy on)."""
    return any(k in os.environ for k in _GLIBC_ENV) or \
        "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", "")


def keep_freed_memory() -> bool:
    """Keep freed memory in the process (see the module docstring); True when the policy is
    on after the call."""
    if _state["kept"]:
        return True
    if os.environ.get(ENV, "1").strip() == "0" or _users_malloc_settings():
        return False
    libc = _libc()
    if libc is None:
        return False
    ok = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    ok = libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok
    _state["kept"] = ok
    return ok


def release_freed_memory() -> None:
    """Hand the freed memory the process holds back to the system (glibc's ``malloc_trim``);
    the policy stays on for the next run."""
    libc = _libc()
    if libc is not None and _state["kept"]:
        libc.malloc_trim(0)


def is_kept() -> bool:
    """Whether :func:`keep_freed_memory` turned the policy on in this process."""
    return _state["kept"]
