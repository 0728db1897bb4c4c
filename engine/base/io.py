"""Files on disk: atomic writes, safetensors weights, checksums.

Every write goes to a temporary file in the destination folder, is flushed and fsynced, and
then replaces the destination with :func:`os.replace`; the folder is fsynced afterwards. A
crash or a full disk leaves either the old file or the new one, never half of each.

Weights are only ever read as safetensors. Pickles and PyTorch ``.pt`` archives are refused
before any of their bytes are interpreted: loading them could run arbitrary code.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import secrets
import stat
from pathlib import Path

import numpy as np

from engine.base.errors import WiregradError

# safetensors itself refuses headers above 100 MB; refusing earlier gives a clearer message.
MAX_HEADER_BYTES = 100_000_000
CHECKPOINT_FORMAT = "wiregrad-checkpoint-1"  # metadata "format" of a training checkpoint
_CHUNK = 1 << 20


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace *path* with *data* atomically; on any error the old file is left untouched."""
    path = Path(path)
    folder = path.parent
    tmp, fd = _create_temp(folder, path.name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        _copy_mode(path, tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_folder(folder)


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> None:
    """:func:`atomic_write_bytes` for text; newlines are written exactly as given."""
    atomic_write_bytes(path, text.encode(encoding))


def save_weights(
    path: str | os.PathLike[str],
    tensors: dict[str, np.ndarray],
    metadata: dict[str, str] | None = None,
) -> None:
    """Write *tensors* (name -> array) and string *metadata* as one safetensors file."""
    from safetensors.numpy import save

    if metadata is not None:
        bad = [k for k, v in metadata.items() if not (isinstance(k, str) and isinstance(v, str))]
        if bad:
            raise WiregradError(
                f"{path}: weight metadata must map str to str; offending key(s): {bad!r}"
            )
    # safetensors reads raw memory: views (transposes, slices) must be made contiguous first
    # (not with np.ascontiguousarray, which turns 0-d arrays into 1-d ones).
    arrays = {name: _c_contiguous(array) for name, array in tensors.items()}
    try:
        data = save(arrays, metadata=metadata)
    except (ValueError, TypeError, KeyError) as exc:
        raise WiregradError(f"{path}: cannot store these weights as safetensors: {exc}") from exc
    atomic_write_bytes(path, data)


def load_weights(path: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read a safetensors file; return ``(tensors, metadata)``.

    Raises :class:`WiregradError` naming the file for anything that is not safetensors
    (pickles and ``.pt`` archives included); such files are never deserialised.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    _check_safetensors_header(path)
    try:
        with safe_open(str(path), framework="np") as f:
            tensors = {name: f.get_tensor(name) for name in f.keys()}
            metadata = dict(f.metadata() or {})
    except SafetensorError as exc:
        raise WiregradError(f"{path}: damaged safetensors file: {exc}") from exc
    return tensors, metadata


def model_weights(path: str | Path) -> dict[str, np.ndarray]:
    """Parameters and state from a weights file or a checkpoint, by full name."""
    tensors, meta = load_weights(path)
    if meta.get("format") != CHECKPOINT_FORMAT:
        return tensors
    out = {}
    for key, value in tensors.items():
        kind, _, name = key.partition("/")
        if kind in ("param", "state"):
            out[name] = value
    return out


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of the file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _c_contiguous(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    return array if array.flags.c_contiguous else array.copy(order="C")


def _check_safetensors_header(path: Path) -> None:
    """Refuse *path* unless it starts with a plausible safetensors header (a JSON object)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            prefix = fh.read(8)
            n = int.from_bytes(prefix, "little") if len(prefix) == 8 else -1
            header = fh.read(n) if 0 < n <= min(MAX_HEADER_BYTES, size - 8) else b""
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        why = getattr(exc, "strerror", None) or exc
        raise WiregradError(f"{path!s:.200}: cannot read weights file: {why}") from None
    if not header or len(header) != n:
        raise WiregradError(f"{path}: not a safetensors weights file{_hint(prefix)}")
    try:
        parsed = json.loads(header)
    except (UnicodeDecodeError, ValueError):
        parsed = None
    if not isinstance(parsed, dict):
        raise WiregradError(
            f"{path}: not a safetensors weights file (its header is not a JSON object)"
        )


def _hint(prefix: bytes) -> str:
    if prefix.startswith(b"PK\x03\x04"):
        kind = " (it is a zip archive, e.g. a PyTorch .pt checkpoint"
    elif prefix[:1] == b"\x80" and prefix[1:2] and prefix[1] <= 5:
        kind = " (it is a Python pickle"
    else:
        return " (bad header length)"
    return kind + "; Wiregrad never loads pickled data, convert it to safetensors)"


def _create_temp(folder: Path, name: str) -> tuple[Path, int]:
    """Create an exclusive temp file beside the target, with the usual umask-derived mode."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = folder / f".{name}.{secrets.token_hex(6)}.tmp"
        try:
            return tmp, os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue


def _copy_mode(target: Path, tmp: Path) -> None:
    """Keep the permissions of the file being replaced."""
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        return
    os.chmod(tmp, mode)


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable; a no-op where folders cannot be opened (Windows)."""
    if os.name == "nt":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)
