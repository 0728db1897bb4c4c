"""Model bundles (``.wgz``): one zip file holding a document, its weights and metadata.

Members are exactly ``graph.json``, ``weights.safetensors`` and ``meta.json``. Opening a
bundle checks member names (no paths, no traversal), sizes and compression ratios (no zip
bombs) before extracting into the cache folder, so every command opens it like a document.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import shutil
import time
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path

from engine.base import paths
from engine.base.errors import WiregradError
from engine.base.io import atomic_write_bytes
from engine.core import document

MEMBERS = ("graph.json", "weights.safetensors", "meta.json")
MAX_MEMBER_BYTES = 2 * 1024**3
MAX_RATIO = 200  # uncompressed / compressed
COMPLETE = ".complete"  # marks an extraction that passed every check
STALE_SECONDS = 3600  # an extraction folder this old was left by a crash


def pack(doc: dict, weights: dict, out: str | Path, meta: dict | None = None) -> Path:
    """Write a bundle of *doc* and *weights* (name → array) to *out*."""
    from safetensors.numpy import save

    from engine.core.document import graph_hash

    blob = save({k: _contig(v) for k, v in weights.items()})
    doc = dict(doc)
    doc["weights"] = {"path": "weights.safetensors", "sha256": hashlib.sha256(blob).hexdigest()}
    info = {"format": "wiregrad-bundle-1", "name": doc.get("meta", {}).get("name", ""),
            "graph_hash": graph_hash(doc), **(meta or {})}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("graph.json", document.dumps(doc))
        zf.writestr("weights.safetensors", blob)
        zf.writestr("meta.json", json.dumps(info, indent=2, sort_keys=True) + "\n")
    out = Path(out)
    try:
        atomic_write_bytes(out, buffer.getvalue())
    except OSError as exc:
        raise WiregradError(f"cannot write {out}: {exc.strerror or exc}", field="out") from None
    return out


def _contig(a):
    import numpy as np

    return np.ascontiguousarray(a) if a.ndim else a.copy()


def unpack(path: str | Path) -> Path:
    """Check and extract a bundle; returns the path of its ``graph.json``.

    Members are extracted into a temporary folder, at most their declared sizes, then checked
    (document, weights checksum) and only then moved into place: a bundle that fails leaves
    nothing in the cache, and neither does a full disk.
    """
    path = Path(path)
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        raise WiregradError(f"{path} is not a Wiregrad bundle (zip): {exc}") from None
    root = _bundles_folder(path)
    with zf:
        names = _checked_members(path, zf.infolist())
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:20]
        tmp = root / f".{digest}.{secrets.token_hex(6)}.tmp"
        try:
            with _disk_errors(path):
                tmp.mkdir()
                for info in zf.infolist():
                    _extract(path, zf, info, tmp)
            _check_extracted(path, tmp, names)
            return _move_into_place(path, tmp, root / digest) / "graph.json"
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _bundles_folder(path: Path) -> Path:
    """The cache folder for extracted bundles, without stale extractions left by a crash."""
    with _disk_errors(path):
        root = paths.ensure(paths.cache_dir() / "bundles")
    now = time.time()
    for entry in root.iterdir():
        try:
            stale = entry.name.endswith(".tmp") and now - entry.stat().st_mtime > STALE_SECONDS
        except OSError:
            continue
        if stale:
            shutil.rmtree(entry, ignore_errors=True)
    return root


def _checked_members(path: Path, infos: list[zipfile.ZipInfo]) -> list[str]:
    names = [i.filename for i in infos]
    for info in infos:
        if info.filename not in MEMBERS:
            raise WiregradError(f"{path}: unexpected member '{info.filename}' (a bundle "
                                f"holds only {', '.join(MEMBERS)})")
        if info.flag_bits & 0x1:
            raise WiregradError(f"{path}: member '{info.filename}' is encrypted; Wiregrad "
                                "bundles are never encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise WiregradError(f"{path}: member '{info.filename}' uses compression method "
                                f"{info.compress_type}; bundles use stored or deflate only")
        if info.file_size > MAX_MEMBER_BYTES:
            raise WiregradError(f"{path}: member '{info.filename}' is too large")
        if info.compress_size and info.file_size / info.compress_size > MAX_RATIO:
            raise WiregradError(f"{path}: member '{info.filename}' is compressed "
                                f"suspiciously well (zip bomb?)")
    if len(set(names)) != len(names) or "graph.json" not in names:
        raise WiregradError(f"{path}: a bundle needs exactly one graph.json")
    return names


def _extract(path: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo, folder: Path) -> None:
    """Copy one member into *folder*, refusing more bytes than it declares."""
    written = 0
    try:
        with zf.open(info) as src, open(folder / info.filename, "wb") as dst:
            while chunk := src.read(1 << 20):
                written += len(chunk)
                if written > info.file_size:
                    raise WiregradError(f"{path}: member '{info.filename}' is longer than "
                                        "it declares")
                dst.write(chunk)
            dst.flush()
            os.fsync(dst.fileno())
    except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError) as exc:
        raise WiregradError(f"{path}: member '{info.filename}' is damaged: {exc}") from None
    if written != info.file_size:
        raise WiregradError(f"{path}: member '{info.filename}' is shorter than it declares")


def _check_extracted(path: Path, folder: Path, names: list[str]) -> None:
    doc = document.load(folder / "graph.json")
    ref = doc.get("weights")
    if ref:
        if (not isinstance(ref, dict) or ref.get("path") != "weights.safetensors"
                or "weights.safetensors" not in names):
            raise WiregradError(f"{path}: the document's weights must be the bundle's own "
                                f"weights.safetensors member", field="weights")
        if ref.get("sha256"):
            actual = hashlib.sha256((folder / ref["path"]).read_bytes()).hexdigest()
            if actual != ref["sha256"]:
                raise WiregradError(f"{path}: weights do not match their checksum")


def _move_into_place(path: Path, tmp: Path, final: Path) -> Path:
    """Replace *final* with the checked extraction *tmp* (same bytes when it exists)."""
    with _disk_errors(path):
        if (final / COMPLETE).is_file():  # checked by an earlier open: the same bytes
            return final
        (tmp / COMPLETE).write_bytes(b"")
        if final.exists():  # a partial extraction from an older Wiregrad
            shutil.rmtree(final, ignore_errors=True)
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / "graph.json").is_file():  # not another process's copy either
                raise
    return final


@contextmanager
def _disk_errors(path: Path):
    """A full disk or an unwritable cache becomes a clear error."""
    try:
        yield
    except OSError as exc:
        raise WiregradError(f"{path}: cannot extract the bundle into the cache folder: "
                            f"{exc.strerror or exc}") from None
