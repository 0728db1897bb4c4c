"""Numba's kernel-cache writes under a lock shared by processes (engine.kernels.precompile).

Numba writes each cache index and data file atomically (a temporary file, then a rename), but
adding an entry reads the index, picks a data file name and writes both back: two processes
saving kernels of one function at once could lose an entry or give two signatures one data
file. :func:`lock_cache_saves` makes that sequence hold an ``fcntl`` lock in the cache folder.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from typing import Any

LOCK_PATIENCE = 0.2  # seconds the helped process waits for the cache lock (see _acquire)
_patience: float | None = LOCK_PATIENCE  # None in the helper: it waits for the lock


def wait_for_lock() -> None:
    """Make this process (the helper) wait for the lock as long as it takes."""
    global _patience
    _patience = None


def lock_cache_saves() -> None:
    """Make Numba's cache-index update (read index, add key, write index and data) atomic
    across processes with an ``fcntl`` lock in the cache folder: two processes saving kernels
    of one function at once could otherwise lose an entry or share a data file name."""
    from numba.core import caching

    cls = caching.IndexDataCacheFile
    if getattr(cls.save, "_wiregrad_locked", False):
        return
    original = cls.save

    def save(self, key, data):
        with _locked(os.path.join(self._cache_path, ".wiregrad-save.lock")):
            return original(self, key, data)

    save._wiregrad_locked = True  # type: ignore[attr-defined]
    cls.save = save  # type: ignore[method-assign]


@contextlib.contextmanager
def _locked(path: str) -> Iterator[None]:
    """Hold the lock file *path* (see :func:`_acquire`) while the block runs."""
    try:
        import fcntl  # POSIX only

        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except (ImportError, OSError):
        yield  # no lock possible: Numba's own (atomic-rename) writes still apply
        return
    try:
        _acquire(fd, fcntl)
        yield
    finally:
        os.close(fd)


def _acquire(fd: int, fcntl: Any) -> None:
    """Lock *fd*: the helper waits as long as it takes; the process it helps waits at most
    :data:`LOCK_PATIENCE` seconds (a starved, lower-priority helper holding the lock must not
    stall it) and then saves unlocked, as Numba alone would."""
    if _patience is None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return
    deadline = time.monotonic() + _patience
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError:
            if time.monotonic() >= deadline:
                return
            time.sleep(0.002)
