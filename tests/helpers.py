"""Small builders for documents in tests."""

from __future__ import annotations

import copy

from engine import document
from engine.presets import presets_dir


def e(src: str, dst: str) -> dict:
    """``"node:port"`` → ``"node:port"`` edge."""
    (sn, sp), (dn, dp) = src.split(":"), dst.split(":")
    return {"src": {"node": sn, "port": sp}, "dst": {"node": dn, "port": dp}}


def n(node_id: str, type_name: str, **params) -> dict:
    return {"id": node_id, "type": type_name, "params": params}


def doc_of(nodes: list[dict], edges: list[dict], **extra) -> dict:
    doc = document.new_document("test")
    doc["nodes"] = copy.deepcopy(nodes)
    doc["edges"] = copy.deepcopy(edges)
    doc.update(extra)
    return document.from_dict(doc)


def spiral() -> dict:
    return document.load(presets_dir() / "spiral_mlp.json")
