"""The two helpers every document template uses: a node with its canvas position, and a
finished, checked document from nodes, ``"node:port"`` edge pairs and a training block."""

from __future__ import annotations

from engine.core import document
from engine.layers.builtin import edge
from engine.layers.definitions import embed_layer_definitions


def node(node_id, type_name, pos, title=None, **params):
    ui = {"pos": list(pos)}
    if title:
        ui["title"] = title
    return {"id": node_id, "type": type_name, "params": params, "ui": ui}


def finish(name, description, nodes, edges, training) -> dict:
    doc = document.new_document(name, description)
    doc["nodes"], doc["edges"], doc["training"] = nodes, [edge(*e) for e in edges], training
    doc = embed_layer_definitions(doc)
    return document.loads(document.dumps(doc))
