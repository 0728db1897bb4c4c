"""Every folder Wiregrad writes to, from platformdirs under one overridable root.

Set ``WIREGRAD_HOME`` to put config, data, state (autosave) and cache (the Numba cache
included) under one folder; the test suite does this with a temporary folder.
"""

from __future__ import annotations

import os
import re
import unicodedata
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


# ------------------------------------------------------------------ names and containment

_UNSAFE = re.compile(r"[^a-z0-9_-]+")
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)),
             *(f"lpt{i}" for i in range(10))}  # Windows device names


def safe_name(text: object, default: str = "run", limit: int = 40) -> str:
    """A plain folder name for *text* (e.g. a document's ``meta.name``): lowercase ASCII
    letters, digits, ``_`` and ``-``, starting with a letter or digit, at most *limit* long.

    Never empty, never ``.``/``..``, never a path: ``"../../x"`` becomes ``"x"``.
    """
    plain = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode()
    slug = _UNSAFE.sub("_", plain.lower().replace(" ", "_"))
    slug = slug.strip("_-")[:limit].strip("_-") or default
    return slug + "_" if slug in _RESERVED else slug


def contained(folder: str | Path, relative: str, field: str) -> Path:
    """*relative* resolved against *folder*, refused unless it stays inside *folder*.

    Checked after resolving (``..``, absolute paths, ``~`` and symbolic links pointing out
    all fail); NUL bytes and empty paths fail too. Raises a WiregradError naming *field*.
    """
    from engine.base.errors import WiregradError

    text = str(relative)
    problem = path_problem(text)
    if problem is None:
        base = Path(folder).resolve()
        target = (base / text).resolve()
        if not target.is_relative_to(base):
            problem = f"'{text[:80]}' resolves to {target}, outside {base}"
    if problem is not None:
        raise WiregradError(f"{problem}; a document may only refer to files in its own "
                            "folder", field=field)
    return target


def path_problem(text: str) -> str | None:
    """Why *text* cannot be a relative path inside a document's folder, or None."""
    if not text:
        return "the path is empty"
    if "\x00" in text:
        return "the path contains a NUL byte"
    if any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        return "the path contains an invalid character (a lone surrogate)"
    pure = text.replace("\\", "/")
    if pure.startswith(("/", "~")) or re.match(r"^[A-Za-z]:", pure):
        return f"'{text[:80]}' is an absolute path"
    if ".." in pure.split("/"):
        return f"'{text[:80]}' leaves its folder ('..')"
    return None


def is_file(path: str | Path) -> bool:
    """``Path.is_file`` that answers False for names the system cannot even look up (too
    long, NUL bytes, lone surrogates) instead of raising."""
    try:
        return Path(path).is_file()
    except (OSError, ValueError, UnicodeError):
        return False


def files_outside(doc: dict, doc_path: str | Path | None) -> list[str]:
    """Resolved paths of the data files *doc* reads from outside its own folder.

    Data files may live anywhere, but a document opened from elsewhere (a bundle, a file
    someone sent) that reads outside its folder should say so before it trains.
    """
    if doc_path is None:
        return []
    base = Path(doc_path).resolve().parent
    out: list[str] = []
    for node in doc.get("nodes", []):
        params = node.get("params") or {}
        path = params.get("path")
        if not isinstance(path, str) or not path:
            continue
        if node.get("type") == "text_corpus" and params.get("source", "shakespeare") != "file":
            continue
        try:
            target = (base / Path(path).expanduser()).resolve()
        except (OSError, ValueError, RuntimeError):
            continue  # the data node itself reports an unreadable path
        if not target.is_relative_to(base) and str(target) not in out:
            out.append(str(target))
    return out
