"""Every folder Wiregrad writes to, from platformdirs under one overridable root.

Set ``WIREGRAD_HOME`` to put config, data, state (autosave) and cache (the Numba cache
included) under one folder; the test suite does this with a temporary folder.
"""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "wiregrad"
HOME_ENV = "WIREGRAD_HOME"


def _root_or_none() -> Path | None:
    value = os.environ.get(HOME_ENV)
    return Path(value).expanduser() if value else None


def _dir(kind: str) -> Path:
    root = _root_or_none()
    if root is not None:
        return root / kind
    import platformdirs

    finder = {
        "config": platformdirs.user_config_dir,
        "data": platformdirs.user_data_dir,
        "state": platformdirs.user_state_dir,
        "cache": platformdirs.user_cache_dir,
    }[kind]
    return Path(finder(APP_NAME, appauthor=False))


def config_dir() -> Path:
    """Settings (recent files, window layout)."""
    return _dir("config")


def data_dir() -> Path:
    """User data: the layer library, runs and checkpoints."""
    return _dir("data")


def state_dir() -> Path:
    """Volatile state: autosave snapshots."""
    return _dir("state")


def cache_dir() -> Path:
    """Rebuildable caches."""
    return _dir("cache")


def numba_cache_dir() -> Path:
    """Where Numba keeps compiled kernels (``NUMBA_CACHE_DIR``)."""
    return cache_dir() / "numba"


def layer_library_dir() -> Path:
    """One document per user-defined layer."""
    return data_dir() / "layers"


def autosave_dir() -> Path:
    """Autosave snapshots of unsaved documents."""
    return state_dir() / "autosave"


def runs_dir() -> Path:
    """Training runs (metrics, checkpoints) started from the editor."""
    return data_dir() / "runs"


def ensure(path: Path) -> Path:
    """Create *path* (and parents) if needed and return it."""
    path.mkdir(parents=True, exist_ok=True)
    return path
