"""Model bundles (``.wgz``): one zip file holding a document, its weights and metadata.

Members are exactly ``graph.json``, ``weights.safetensors`` and ``meta.json``. Opening a
bundle checks member names (no paths, no traversal), sizes and compression ratios (no zip
bombs) before extracting into the cache folder, so every command opens it like a document.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
import zlib
from pathlib import Path

from engine.base import paths
from engine.base.errors import WiregradError
from engine.base.io import atomic_write_bytes
from engine.core import document

MEMBERS = ("graph.json", "weights.safetensors", "meta.json")
MAX_MEMBER_BYTES = 2 * 1024**3
MAX_RATIO = 200  # uncompressed / compressed


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
    atomic_write_bytes(out, buffer.getvalue())
    return out


def _contig(a):
    import numpy as np

    return np.ascontiguousarray(a) if a.ndim else a.copy()


def unpack(path: str | Path) -> Path:
    """Check and extract a bundle; returns the path of its ``graph.json``."""
    path = Path(path)
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise WiregradError(f"{path} is not a Wiregrad bundle (zip): {exc}") from None
    with zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        for info in infos:
            if info.filename not in MEMBERS:
                raise WiregradError(f"{path}: unexpected member '{info.filename}' (a bundle "
                                    f"holds only {', '.join(MEMBERS)})")
            if info.file_size > MAX_MEMBER_BYTES:
                raise WiregradError(f"{path}: member '{info.filename}' is too large")
            if info.compress_size and info.file_size / info.compress_size > MAX_RATIO:
                raise WiregradError(f"{path}: member '{info.filename}' is compressed "
                                    f"suspiciously well (zip bomb?)")
        if len(set(names)) != len(names) or "graph.json" not in names:
            raise WiregradError(f"{path}: a bundle needs exactly one graph.json")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:20]
        folder = paths.ensure(paths.cache_dir() / "bundles" / digest)
        for name in names:
            try:
                data = zf.read(name)  # reads at most the declared (checked) size
            except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
                raise WiregradError(f"{path}: member '{name}' is damaged: {exc}") from None
            if len(data) > MAX_MEMBER_BYTES:
                raise WiregradError(f"{path}: member '{name}' is too large")
            atomic_write_bytes(folder / name, data)
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
    return folder / "graph.json"
