"""The versioned graph document: load (with limits), migrate, check structure, save.

A document is plain JSON-able data::

    {"format": "wiregrad-graph", "format_version": 2, "min_reader_version": 2,
     "meta": {"name": ..., "description": ...},
     "nodes": [{"id": "fc1", "type": "linear", "params": {...},
                "ui": {"pos": [x, y], "title": ..., "collapsed": false}}],
     "edges": [{"src": {"node": "x", "port": "out"}, "dst": {"node": "fc1", "port": "x"}}],
     "layers": {type name: layer definition}, "training": {...},
     "weights": {"path": "...", "sha256": "..."}, "extra": {...}}

Nothing in a document is executed or imported. Every structural error is a
:class:`~engine.base.errors.DocumentError` naming the field (``nodes[3].id``) or node.
Saving is deterministic (sorted keys, shortest float repr), so presets diff cleanly.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.base.errors import DocumentError
from engine.base.paths import path_problem

FORMAT = "wiregrad-graph"
FORMAT_VERSION = 2
MIN_READER_VERSION = 2

MAX_BYTES = 32 * 1024 * 1024
MAX_NODES = 20_000
MAX_EDGES = 100_000
MAX_DEPTH = 48
MAX_LAYER_DEFS = 1_000

ID_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$")
PORT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}(\[(0|[1-9][0-9]{0,5})\])?$")
TOP_KEYS = (
    "format",
    "format_version",
    "min_reader_version",
    "meta",
    "nodes",
    "edges",
    "layers",
    "training",
    "weights",
    "extra",
)
TRAINING_DEFAULTS = {
    "steps": 1000,
    "eval_every": 100,
    "eval_batches": 4,
    "checkpoint_every": 0,
    "seed": 0,
    "dtype": "float32",
}


# ------------------------------------------------------------------ parsing


def _reject_constant(name: str) -> Any:
    raise DocumentError(f"{name} is not allowed in a graph document (numbers must be finite)")


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise DocumentError(f"number {text[:40]} is out of range (numbers must be finite)")
    return value


_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_text(text: str) -> None:
    found = None if text.isascii() else _SURROGATE.search(text)
    if found is not None:
        at = found.start()
        raise DocumentError(f"the text {text[max(0, at - 20):at]!r}… holds a lone surrogate "
                            f"(\\u{ord(text[at]):04x}), which is not a character: it cannot be "
                            "saved as UTF-8")


def _check_depth(value: Any) -> None:
    """Iteratively reject nesting deeper than MAX_DEPTH (no recursion) and strings holding
    lone surrogates (``"\\ud800"`` parses, but such text can never be saved again)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise DocumentError(f"the document is nested deeper than {MAX_DEPTH} levels")
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, dict):
            for key in item:
                _check_text(key)
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)


def parse(text: str | bytes, source: str = "<document>") -> dict:
    """Parse JSON text into a raw dict, enforcing size, depth and finiteness limits."""
    if isinstance(text, bytes):
        if len(text) > MAX_BYTES:
            raise DocumentError(f"{source} is larger than {MAX_BYTES // 2**20} MiB")
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DocumentError(f"{source} is not UTF-8 text ({exc.reason})") from None
    if len(text) > MAX_BYTES:
        raise DocumentError(f"{source} is larger than {MAX_BYTES // 2**20} MiB")
    try:
        raw = json.loads(text, parse_constant=_reject_constant, parse_float=_parse_float)
    except DocumentError as exc:
        raise DocumentError(f"{source}: {exc.message}") from None
    except RecursionError:
        raise DocumentError(f"{source}: the document is nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise DocumentError(
            f"{source} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except ValueError as exc:  # e.g. integers with too many digits
        raise DocumentError(f"{source}: {exc}") from None
    _check_depth(raw)
    if not isinstance(raw, dict):
        raise DocumentError(f"{source}: a graph document must be a JSON object")
    return raw


# ------------------------------------------------------------------ migrations


def _migrate_v1_to_v2(doc: dict) -> dict:
    """v1 (prototype): ``links`` as ``[src, src_port, dst, dst_port]`` and ``pos`` per node.

    v2 stores edges as objects, moves editor data into ``ui`` and adds ``min_reader_version``.
    """
    nodes = []
    for node in doc.get("nodes", []):
        if not isinstance(node, dict):
            nodes.append(node)
            continue
        new = {k: v for k, v in node.items() if k != "pos"}
        if "pos" in node:
            new["ui"] = {"pos": node["pos"]}
        nodes.append(new)
    edges = []
    for i, link in enumerate(doc.get("links", [])):
        if not (isinstance(link, list) and len(link) == 4):
            raise DocumentError("expected [src, src_port, dst, dst_port]", field=f"links[{i}]")
        src, src_port, dst, dst_port = link
        edges.append({"src": {"node": src, "port": src_port},
                      "dst": {"node": dst, "port": dst_port}})
    out = {k: v for k, v in doc.items() if k not in ("links", "nodes")}
    out.update(format_version=2, min_reader_version=2, nodes=nodes, edges=edges)
    return out


# format_version n -> pure function migrating a version-n document to version n+1.
MIGRATIONS: dict[int, Callable[[dict], dict]] = {1: _migrate_v1_to_v2}


def migrate(doc: dict) -> dict:
    """Bring *doc* up to :data:`FORMAT_VERSION`; refuse documents too new for this reader."""
    version = doc.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise DocumentError("expected a positive integer", field="format_version")
    min_reader = doc.get("min_reader_version", version)
    if isinstance(min_reader, int) and not isinstance(min_reader, bool):
        if min_reader > FORMAT_VERSION:
            raise DocumentError(
                f"this document needs Wiregrad format reader {min_reader} or newer; this "
                f"Wiregrad reads up to version {FORMAT_VERSION}. Update Wiregrad to open it.",
                field="min_reader_version",
            )
    while version < FORMAT_VERSION:
        doc = MIGRATIONS[version](doc)
        version = doc["format_version"]
    return doc


# ------------------------------------------------------------------ structure


def _expect(cond: bool, message: str, field: str, node: str | None = None) -> None:
    if not cond:
        raise DocumentError(message, field=field, node=node)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_endpoint(end: Any, field: str) -> None:
    _expect(isinstance(end, dict), "expected an object {node, port}", field)
    _expect(isinstance(end.get("node"), str), "expected a node id (string)", f"{field}.node")
    _expect(
        isinstance(end.get("port"), str) and bool(PORT_RE.fullmatch(end["port"])),
        "expected a port name such as 'x' or 'inputs[0]'",
        f"{field}.port",
    )


def check_graph_body(body: dict, where: str) -> None:
    """Check ``nodes`` and ``edges`` of a graph or layer definition (ids, references)."""
    nodes = body.get("nodes", [])
    edges = body.get("edges", [])
    _expect(isinstance(nodes, list), "expected a list of nodes", f"{where}nodes")
    _expect(isinstance(edges, list), "expected a list of edges", f"{where}edges")
    _expect(len(nodes) <= MAX_NODES, f"more than {MAX_NODES} nodes", f"{where}nodes")
    _expect(len(edges) <= MAX_EDGES, f"more than {MAX_EDGES} edges", f"{where}edges")
    seen: set[str] = set()
    for i, node in enumerate(nodes):
        f = f"{where}nodes[{i}]"
        _expect(isinstance(node, dict), "expected a node object", f)
        nid = node.get("id")
        _expect(
            isinstance(nid, str) and bool(ID_RE.fullmatch(nid)),
            "expected an id of letters, digits, '_' or '-' starting with a letter (max 64)",
            f"{f}.id",
        )
        _expect(nid not in seen, f"duplicate node id '{nid}'", f"{f}.id", node=nid)
        seen.add(nid)
        _expect(isinstance(node.get("type"), str) and node["type"] != "", "expected a type name",
                f"{f}.type", node=nid)
        _expect(isinstance(node.get("params", {}), dict), "expected an object", f"{f}.params",
                node=nid)
        _expect(isinstance(node.get("trainable", True), bool),
                "expected true or false (false freezes the node's parameters)",
                f"{f}.trainable", node=nid)
        bypass = node.get("bypass", {})
        _expect(isinstance(bypass, dict) and all(isinstance(v, str) for v in bypass.values()),
                "expected an object {output port: input port}", f"{f}.bypass", node=nid)
        ui = node.get("ui", {})
        _expect(isinstance(ui, dict), "expected an object", f"{f}.ui", node=nid)
        pos = ui.get("pos", [0, 0])
        _expect(
            isinstance(pos, list) and len(pos) == 2
            and all(isinstance(p, (int, float)) and not isinstance(p, bool) for p in pos),
            "expected [x, y]",
            f"{f}.ui.pos",
            node=nid,
        )
    for i, edge in enumerate(edges):
        f = f"{where}edges[{i}]"
        _expect(isinstance(edge, dict), "expected an edge object {src, dst}", f)
        _check_endpoint(edge.get("src"), f"{f}.src")
        _check_endpoint(edge.get("dst"), f"{f}.dst")


def _check_layer_def(name: str, layer: Any) -> None:
    where = f"layers.{name}."
    _expect(isinstance(layer, dict), "expected a layer definition object", f"layers.{name}")
    _expect(bool(ID_RE.fullmatch(name)), "expected a layer type name of letters/digits/_", "layers")
    _expect(isinstance(layer.get("doc", ""), str), "expected a string", where + "doc")
    for key in ("inputs", "outputs", "params"):
        _expect(isinstance(layer.get(key, []), list), "expected a list", where + key)
    for i, port in enumerate(layer.get("inputs", [])):
        _expect(isinstance(port, dict) and isinstance(port.get("name"), str)
                and isinstance(port.get("dtype", "float"), str)
                and isinstance(port.get("doc", ""), str),
                "expected {name, dtype} (strings)", f"{where}inputs[{i}]")
        _expect(bool(PORT_RE.fullmatch(port["name"])), "expected a port name of letters, digits "
                "and '_'", f"{where}inputs[{i}].name")
    for i, port in enumerate(layer.get("outputs", [])):
        ok = isinstance(port, dict) and all(isinstance(port.get(k), str) for k in ("name", "node",
                                                                                     "port"))
        _expect(ok, "expected {name, node, port}", f"{where}outputs[{i}]")
        _expect(bool(PORT_RE.fullmatch(port["name"])), "expected a port name of letters, digits "
                "and '_'", f"{where}outputs[{i}].name")
    for i, param in enumerate(layer.get("params", [])):
        _check_layer_param(param, f"{where}params[{i}]")
    check_graph_body(layer, where)


LAYER_PARAM_KINDS = ("int", "float", "bool", "choice", "string", "shape", "target_shape",
                     "ints", "strings")
LAYER_PARAM_KEYS = ("name", "kind", "default", "min", "max", "choices", "doc", "optional",
                    "hot")
_PLAIN = (str, int, float, bool, type(None))


def _check_layer_param(param: Any, field: str) -> None:
    """Every field of one param a layer definition declares, by type."""
    _expect(isinstance(param, dict), "expected {name, kind, default}", field)
    for key in param:
        _expect(key in LAYER_PARAM_KEYS, f"unknown key '{key}' (expected one of: "
                + ", ".join(LAYER_PARAM_KEYS) + ")", f"{field}.{key}")
    _expect(isinstance(param.get("name"), str) and bool(PORT_RE.fullmatch(param["name"]))
            and "[" not in param["name"], "expected a param name of letters, digits and '_'",
            f"{field}.name")
    _expect(param.get("kind") in LAYER_PARAM_KINDS,
            "expected a kind: " + ", ".join(LAYER_PARAM_KINDS), f"{field}.kind")
    for key in ("min", "max"):
        value = param.get(key)
        _expect(value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)
                                  and abs(value) <= 1e300),
                "expected a finite number or null", f"{field}.{key}")
    choices = param.get("choices", [])
    _expect(isinstance(choices, list) and len(choices) <= 1000
            and all(isinstance(c, _PLAIN) for c in choices),
            "expected a list of strings or numbers", f"{field}.choices")
    _expect(isinstance(param.get("doc", ""), str), "expected a string", f"{field}.doc")
    for key in ("optional", "hot"):
        _expect(isinstance(param.get(key, False), bool), "expected true or false",
                f"{field}.{key}")
    default = param.get("default")
    _expect(isinstance(default, _PLAIN) or (isinstance(default, list) and all(
        isinstance(d, _PLAIN) for d in default)),
        "expected a plain value (number, string, bool or a list of them)", f"{field}.default")


def check_structure(doc: dict) -> dict:
    """Validate the document's structure (not its semantics) and fill top-level defaults."""
    _expect(doc.get("format") == FORMAT, f"expected '{FORMAT}'", "format")
    for key in doc:
        _expect(key in TOP_KEYS, f"unknown top-level key '{key}' (put custom data in 'extra')",
                key)
    out = dict(doc)
    out.setdefault("meta", {})
    out.setdefault("nodes", [])
    out.setdefault("edges", [])
    out.setdefault("layers", {})
    out.setdefault("extra", {})
    out.setdefault("min_reader_version", MIN_READER_VERSION)
    _expect(isinstance(out["meta"], dict), "expected an object", "meta")
    for key in ("name", "description"):
        if key in out["meta"]:
            _expect(isinstance(out["meta"][key], str), "expected a string", f"meta.{key}")
    _expect(isinstance(out["extra"], dict), "expected an object", "extra")
    _expect(isinstance(out["layers"], dict), "expected an object of layer definitions", "layers")
    _expect(len(out["layers"]) <= MAX_LAYER_DEFS, "too many layer definitions", "layers")
    check_graph_body(out, "")
    for name, layer in out["layers"].items():
        _check_layer_def(name, layer)
    training = out.get("training")
    if training is not None:
        _expect(isinstance(training, dict), "expected an object", "training")
        for key, value in training.items():
            _expect(key in TRAINING_DEFAULTS, f"unknown training setting '{key}'",
                    f"training.{key}")
            if key == "dtype":
                _expect(value in ("float32", "float64"), "expected 'float32' or 'float64'",
                        "training.dtype")
            else:
                _expect(_is_int(value) and value >= 0, "expected a non-negative integer",
                        f"training.{key}")
    weights = out.get("weights")
    if weights is not None:
        _expect(isinstance(weights, dict) and isinstance(weights.get("path"), str),
                "expected {path, sha256}", "weights")
        problem = path_problem(weights["path"])
        _expect(problem is None, f"{problem}; the weights file must lie in the document's "
                "folder", "weights.path")
        _expect(isinstance(weights.get("sha256", ""), str), "expected a hex string",
                "weights.sha256")
    return out


# ------------------------------------------------------------------ public API


def from_dict(raw: Any, source: str = "<document>") -> dict:
    """Migrate and check a parsed document; returns a new normalised dict."""
    if not isinstance(raw, dict):
        raise DocumentError(f"{source}: a graph document must be a JSON object")
    try:
        return check_structure(migrate(raw))
    except DocumentError as exc:
        exc.message = f"{source}: {exc.message}" if source != "<document>" else exc.message
        exc.args = (exc.message,)
        raise


def loads(text: str | bytes, source: str = "<document>") -> dict:
    """Parse, migrate and check a document from JSON text."""
    return from_dict(parse(text, source), source)


def load(path: str | Path) -> dict:
    """Read a document file (bounded size) and return it checked and migrated."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise DocumentError(f"{path} is larger than {MAX_BYTES // 2**20} MiB")
        data = path.read_bytes()
    except OSError as exc:
        raise DocumentError(f"cannot read {path}: {exc.strerror or exc}") from None
    doc = loads(data, str(path))
    return doc


def dumps(doc: dict) -> str:
    """Deterministic JSON: sorted keys, 2-space indent, shortest float repr, final newline."""
    return json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def save(doc: dict, path: str | Path) -> None:
    """Write *doc* atomically (temp file, fsync, rename)."""
    from engine.base.io import atomic_write_text

    check_structure(doc)
    atomic_write_text(Path(path), dumps(doc))


def new_document(name: str = "untitled", description: str = "") -> dict:
    """An empty current-version document."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "min_reader_version": MIN_READER_VERSION,
        "meta": {"name": name, "description": description},
        "nodes": [],
        "edges": [],
        "layers": {},
        "extra": {},
    }


def training_settings(doc: dict) -> dict:
    """The document's ``training`` block with defaults filled in."""
    return {**TRAINING_DEFAULTS, **(doc.get("training") or {})}


def graph_hash(doc: dict) -> str:
    """sha256 of what determines the computation (nodes, edges, layers; not positions)."""
    nodes = [{k: v for k, v in n.items() if k != "ui"} for n in doc["nodes"]]
    body = {"nodes": nodes, "edges": doc["edges"], "layers": doc.get("layers", {})}
    return hashlib.sha256(dumps(body).encode()).hexdigest()[:16]
