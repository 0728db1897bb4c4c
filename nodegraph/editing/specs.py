"""Node-type specs for the editor, from ``engine.api.catalog()`` (plain data, Qt-free).

Resolves a node's ports (variadic inputs expand to ``name[i]``), the key parameters shown on
the node, readable new ids, and the node geometry shared by the scene and the auto-layout.
"""

from __future__ import annotations

import re

from engine import api

NODE_WIDTH = 200.0
HEADER_H = 26.0
ROW_H = 18.0
FOOTER_H = 20.0
SUMMARY_LINES = 3

ID_PREFIX = {
    "Linear": "fc", "Conv2d": "conv", "relu": "act", "gelu": "act", "tanh": "act",
    "sigmoid": "act", "silu": "act", "leaky_relu": "act", "Dropout": "drop",
    "LayerNorm": "ln", "BatchNorm1d": "bn", "BatchNorm2d": "bn", "Embedding": "embed",
    "PositionalEmbedding": "pos_embed", "TransformerBlock": "block",
    "MultiHeadSelfAttention": "attn", "MaxPool2d": "pool", "AvgPool2d": "pool",
    "classification_2d": "data", "shapes_images": "data", "digits": "data",
    "regression_1d": "data", "table_file": "data", "image_folder": "data",
    "optimizer": "optimizer",
}
VARIADIC_RE = re.compile(r"^(.*)\[(\d+)\]$")


class Catalog:
    """The op catalog indexed by name, plus the document's own layer definitions."""

    def __init__(self, data: dict | None = None) -> None:
        self.reload(data)

    def reload(self, data: dict | None = None) -> None:
        self.data = data if data is not None else api.catalog()
        self.categories: list[str] = list(self.data["categories"])
        self.ops: dict[str, dict] = {op["name"]: op for op in self.data["ops"]}

    def builtin_layer(self, name: str) -> bool:
        op = self.ops.get(name)
        return bool(op and op.get("is_layer") and not op.get("user"))

    def spec(self, type_name: str, doc: dict | None = None) -> dict | None:
        """The catalog entry of *type_name*, or one made from the document's layer."""
        layers = (doc or {}).get("layers", {})
        if type_name in self.ops:
            return self.ops[type_name]
        if type_name in layers and isinstance(layers[type_name], dict):
            try:
                return api.layer_entry(type_name, layers[type_name], user=False)
            except Exception:  # a malformed local layer: show it without ports
                return None
        return None

    def hot_params(self, type_name: str, doc: dict | None = None) -> list[str]:
        """The params of *type_name* a live run may change (see :func:`hot_params`)."""
        return hot_params(self.spec(type_name, doc))

    def layer_definition(self, type_name: str, doc: dict) -> dict | None:
        layers = doc.get("layers", {})
        if type_name in layers:
            return layers[type_name]
        op = self.ops.get(type_name)
        return op.get("definition") if op and op.get("is_layer") else None


def hot_params(spec: dict | None) -> list[str]:
    """Names of the params a live run may change: declared once, on the op spec (``Param.hot``,
    carried by ``engine.api.catalog()``); the edit lock, training dock and run list read it."""
    return [p["name"] for p in (spec or {}).get("params", []) if p.get("hot")]


def split_port(port: str) -> tuple[str, int | None]:
    m = VARIADIC_RE.match(port)
    return (m.group(1), int(m.group(2))) if m else (port, None)


def input_ports(spec: dict | None, node_id: str, edges: list[dict]) -> list[dict]:
    """Input ports to draw: variadic ports show every wired index plus one free slot."""
    if spec is None:
        return [{"name": e["dst"]["port"], "dtype": "any", "optional": False}
                for e in edges if e["dst"]["node"] == node_id]
    out = []
    for port in spec["inputs"]:
        if not port.get("variadic"):
            out.append({"name": port["name"], "dtype": port["dtype"],
                        "optional": port.get("optional", False)})
            continue
        used = [split_port(e["dst"]["port"])[1] for e in edges
                if e["dst"]["node"] == node_id and split_port(e["dst"]["port"])[0] == port["name"]]
        count = max([i for i in used if i is not None], default=-1) + 2
        out.extend({"name": f"{port['name']}[{i}]", "dtype": port["dtype"], "optional": True}
                   for i in range(count))
    return out


def output_ports(spec: dict | None, node_id: str, edges: list[dict]) -> list[dict]:
    if spec is None:
        names = sorted({e["src"]["port"] for e in edges if e["src"]["node"] == node_id})
        return [{"name": n, "dtype": "any"} for n in names]
    return [{"name": p["name"], "dtype": p.get("dtype", "float")} for p in spec["outputs"]]


def port_dtype(spec: dict | None, port: str, output: bool) -> str:
    if spec is None:
        return "any"
    name = split_port(port)[0]
    for p in spec["outputs" if output else "inputs"]:
        if p["name"] == name:
            return p.get("dtype", "float")
    return "any"


def format_value(value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "×".join(str(v) for v in value) if value else "[]"
    text = str(value)
    if isinstance(value, str) and (len(text) > 24 or not text.isprintable()):
        text = repr(text[:20])[1:-1] + "…"
    return text


def summary_lines(spec: dict | None, params: dict) -> list[str]:
    """Up to three ``name = value`` lines: set params first, then leading defaults."""
    if spec is None:
        return [f"{k} = {format_value(v)}" for k, v in list(params.items())[:SUMMARY_LINES]]
    names = [p["name"] for p in spec["params"]]
    chosen = [n for n in names if n in params]
    if len(chosen) < SUMMARY_LINES and not chosen:
        chosen += [p["name"] for p in spec["params"]
                   if p["name"] not in chosen and p.get("default") is not None][:2]
    defaults = {p["name"]: p.get("default") for p in spec["params"]}
    lines = [f"{n} = {format_value(params.get(n, defaults.get(n)))}" for n in chosen]
    if len(lines) > SUMMARY_LINES:
        lines = lines[: SUMMARY_LINES - 1] + [f"… {len(lines) - SUMMARY_LINES + 1} more"]
    return lines


def node_size(n_inputs: int, n_outputs: int, n_summary: int) -> tuple[float, float]:
    rows = max(n_inputs, n_outputs, 1)
    return NODE_WIDTH, HEADER_H + rows * ROW_H + n_summary * ROW_H + FOOTER_H + 6


def node_geometry(catalog: Catalog, doc: dict, node: dict, edges: list[dict]):
    spec = catalog.spec(node["type"], doc)
    ins = input_ports(spec, node["id"], edges)
    outs = output_ports(spec, node["id"], edges)
    lines = summary_lines(spec, node.get("params", {}))
    return spec, ins, outs, lines, node_size(len(ins), len(outs), len(lines))


def slug(type_name: str) -> str:
    base = ID_PREFIX.get(type_name)
    if base is None:
        base = re.sub(r"(?<!^)(?=[A-Z])", "_", type_name).lower()
        base = re.sub(r"[^a-z0-9_]", "_", base).strip("_") or "node"
        if not base[0].isalpha():
            base = "n_" + base
    return base[:56]


def new_id(type_name: str, taken: set[str], category: str | None = None) -> str:
    """A readable unused id: ``fc1``, ``act2``; ``loss`` / ``optimizer`` bare when free."""
    base = slug(type_name)
    if category in ("loss", "optimizer") and category not in taken:
        return category
    if category == "metric" and base not in taken:
        return base
    i = 1
    while f"{base}{i}" in taken:
        i += 1
    return f"{base}{i}"


def fresh_id(wanted: str, taken: set[str]) -> str:
    """*wanted* if free, else *wanted* with a number appended (``fc1`` → ``fc1_2``)."""
    if wanted not in taken:
        return wanted
    stem = re.sub(r"_\d+$", "", wanted)[:56]
    i = 2
    while f"{stem}_{i}" in taken:
        i += 1
    return f"{stem}_{i}"
