"""The user layer library: one JSON document per user-defined layer under the data folder.

A library entry is a layer definition (the format of a document's ``layers`` block) wrapped
as ``{"format": "wiregrad-layer", "format_version": 1, "name": ..., "definition": {...}}``.
Graphs that use a library layer embed its definition, so they stay self-contained.
"""

from __future__ import annotations

import json
from pathlib import Path

from engine.base import paths
from engine.base.errors import DocumentError
from engine.base.io import atomic_write_text
from engine.core import document

FORMAT = "wiregrad-layer"


def _path(name: str) -> Path:
    if not isinstance(name, str) or not document.ID_RE.fullmatch(name):
        raise DocumentError("a layer name uses letters, digits, '_' or '-' and starts with a "
                            "letter", field="name")
    return paths.layer_library_dir() / f"{name}.json"


def check_definition(name: str, definition: dict) -> dict:
    """Validate a layer definition by embedding it in an empty document."""
    doc = document.new_document(name)
    doc["layers"] = {name: definition}
    return document.from_dict(doc)["layers"][name]


def save_layer(name: str, definition: dict) -> Path:
    """Write (or replace) the library entry *name* atomically."""
    from engine.core import registry

    if registry.has(name):
        raise DocumentError(f"'{name}' is a built-in node type; choose another name",
                            field="name")
    definition = check_definition(name, definition)
    path = _path(name)
    paths.ensure(path.parent)
    body = {"format": FORMAT, "format_version": 1, "name": name, "definition": definition}
    atomic_write_text(path, document.dumps(body))
    return path


def load_layer(path: Path) -> tuple[str, dict]:
    raw = document.parse(path.read_bytes(), str(path))
    if raw.get("format") != FORMAT or not isinstance(raw.get("name"), str):
        raise DocumentError(f"{path} is not a Wiregrad layer file")
    definition = raw.get("definition")
    if not isinstance(definition, dict):
        raise DocumentError(f"{path} has no layer definition")
    return raw["name"], check_definition(raw["name"], definition)


def list_layers() -> dict[str, dict]:
    """Every readable library layer by name (unreadable files are skipped, not deleted)."""
    folder = paths.layer_library_dir()
    out: dict[str, dict] = {}
    if not folder.is_dir():
        return out
    for path in sorted(folder.glob("*.json")):
        try:
            name, definition = load_layer(path)
        except (DocumentError, OSError, json.JSONDecodeError):
            continue
        out[name] = definition
    return out


def delete_layer(name: str) -> None:
    _path(name).unlink(missing_ok=True)
