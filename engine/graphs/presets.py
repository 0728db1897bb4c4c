"""Presets: graph documents shipped in ``presets/`` (package data), found by name or path."""

from __future__ import annotations

from pathlib import Path

from engine.base import paths
from engine.base.errors import DocumentError
from engine.core import document

BUNDLE_SUFFIX = ".wgz"


def presets_dir() -> Path:
    """The folder holding preset documents (beside ``engine`` in source and installed trees)."""
    return Path(__file__).resolve().parents[2] / "presets"


def list_presets() -> list[dict]:
    """Name, title and description of every preset, sorted by name."""
    out = []
    for path in sorted(presets_dir().glob("*.json")):
        try:
            doc = document.load(path)
        except DocumentError:
            continue
        meta = doc.get("meta", {})
        out.append({"name": path.stem, "title": meta.get("name", path.stem),
                    "description": meta.get("description", ""), "path": str(path)})
    return out


def resolve(graph: str | Path) -> Path:
    """A document path from a file path, a ``.wgz`` bundle or a preset name (``spiral_mlp``)."""
    path = Path(graph)
    if paths.is_file(path):
        if path.suffix == BUNDLE_SUFFIX:
            from engine.graphs.bundle import unpack

            return unpack(path)
        return path
    if path.suffix == "" and "/" not in str(graph) and "\\" not in str(graph):
        candidate = presets_dir() / f"{graph}.json"
        if paths.is_file(candidate):
            return candidate
        names = ", ".join(p["name"] for p in list_presets()) or "none"
        raise DocumentError(f"'{graph}' is neither a file nor a preset (presets: {names})")
    raise DocumentError(f"no such file: {graph}")


def load(graph: str | Path) -> tuple[dict, Path]:
    """Load a document by path or preset name; returns (document, its path)."""
    path = resolve(graph)
    return document.load(path), path
