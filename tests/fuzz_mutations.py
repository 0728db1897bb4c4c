"""JSON-level mutations of real documents for fuzzing (issue 15): types, values, unicode,
sizes, nesting and layer self-reference, applied at random places of a preset.

:func:`run_document` pushes one mutated document through everything the editor and the CLI
do with a document that loads (validate, save, hash) and reports how it ended.
"""

from __future__ import annotations

import copy
import json
import random
import time
from typing import Any

from engine import api
from engine.base.errors import WiregradError
from engine.core import document
from engine.graphs import presets

HOSTILE_TEXT = ["", " ", "\x00", "\ud800", "a\udfffb", "é", "名前", "\u202e", "\n", "../../x",
                "/etc/passwd", "$in", "$width*$x", "$nope", "inputs[0]", "x" * 300,
                '"""; open("PWNED", "w")', "%(prog)s", "\\", "out", "x", "y", "B", "relu",
                "Linear", "NaN", "1e400"]
NUMBERS = [0, -1, 1, 2, 3, 2**31, 2**63, -(2**63), 10**12, 10**30, 0.5, -0.0, 1e-300, 1e300,
           1.0, 0.999999]


def presets_raw() -> dict[str, dict]:
    """Every preset as plain JSON data."""
    out = {}
    for info in presets.list_presets():
        doc, _ = presets.load(info["name"])
        out[info["name"]] = json.loads(document.dumps(doc))
    return out


def random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice(NUMBERS)
    if kind == 3:
        return rng.uniform(-1e6, 1e6)
    if kind in (4, 5):
        return rng.choice(HOSTILE_TEXT)
    if kind == 6:
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if kind == 7:
        return {rng.choice(HOSTILE_TEXT): random_value(rng, depth + 1)
                for _ in range(rng.randrange(3))}
    deep: Any = 1
    for _ in range(rng.randrange(1, 60)):
        deep = [deep] if rng.random() < 0.5 else {"k": deep}
    return deep


def _containers(value: Any, path: tuple = ()) -> list[tuple[tuple, Any]]:
    """Every (path, container) inside *value*."""
    out = []
    stack = [(path, value)]
    while stack:
        p, v = stack.pop()
        if isinstance(v, dict):
            out.append((p, v))
            stack.extend((p + (k,), x) for k, x in v.items())
        elif isinstance(v, list):
            out.append((p, v))
            stack.extend((p + (i,), x) for i, x in enumerate(v))
    return out


def _self_reference(doc: dict, rng: random.Random) -> None:
    layers = doc.get("layers")
    if not isinstance(layers, dict) or not layers:
        return
    name = rng.choice(sorted(layers))
    inner = layers[name].get("nodes") if isinstance(layers[name], dict) else None
    inner = [n for n in inner if isinstance(n, dict)] if isinstance(inner, list) else []
    if inner:
        target = rng.choice(sorted(layers))  # itself, or another layer (cycles, nesting)
        rng.choice(inner)["type"] = target if rng.random() < 0.7 else name


def _resize(doc: dict, rng: random.Random) -> None:
    nodes = doc.get("nodes")
    nodes = [n for n in nodes if isinstance(n, dict)] if isinstance(nodes, list) else []
    if nodes:
        params = rng.choice(nodes).setdefault("params", {})
        if not isinstance(params, dict):
            return
        key = rng.choice(sorted(params, key=str) or ["out_features"])
        params[key] = rng.choice([10**6, 10**9, 2**31 - 1, 4096, 0, -5, [10**6, 10**6]])


def mutate(doc: dict, rng: random.Random, count: int | None = None) -> dict:
    """A copy of *doc* with 1–6 random mutations."""
    doc = copy.deepcopy(doc)
    for _ in range(count or rng.randrange(1, 7)):
        choice = rng.random()
        if choice < 0.08:
            _self_reference(doc, rng)
            continue
        if choice < 0.14:
            _resize(doc, rng)
            continue
        places = _containers(doc)
        semantic = [pc for pc in places if "params" in pc[0] or "training" in pc[0]]
        path, container = rng.choice(semantic if semantic and rng.random() < 0.6 else places)
        if isinstance(container, dict):
            if not container or rng.random() < 0.15:
                container[rng.choice(HOSTILE_TEXT)] = random_value(rng)
            else:
                key = rng.choice(sorted(container, key=str))
                roll = rng.random()
                if roll < 0.2:
                    del container[key]
                elif roll < 0.3 and isinstance(container[key], str):
                    container[key] = container[key] + rng.choice(HOSTILE_TEXT)
                else:
                    container[key] = random_value(rng)
        elif container:
            i = rng.randrange(len(container))
            roll = rng.random()
            if roll < 0.25:
                container.pop(i)
            elif roll < 0.45:
                container.append(copy.deepcopy(container[i]))
            else:
                container[i] = random_value(rng)
        else:
            container.append(random_value(rng))
    return doc


def run_document(raw: dict) -> tuple[str, float]:
    """Load, validate, save and hash one document: ("refused" | "invalid" | "ok", seconds).

    A non-project exception propagates: that is a bug the fuzzing found.
    """
    start = time.perf_counter()
    try:
        text = json.dumps(raw)  # \\ud800 stays an escape, as in a file someone wrote
    except (ValueError, RecursionError):
        return "refused", time.perf_counter() - start
    try:
        doc = document.loads(text)
    except WiregradError:
        return "refused", time.perf_counter() - start
    result = api.validate(doc)
    document.dumps(doc).encode("utf-8")  # what save and autosave write
    api.graph_hash(doc)
    return ("ok" if result["ok"] else "invalid"), time.perf_counter() - start


def train_document(raw: dict) -> str:
    """For a mutated document that validates: build a trainer, take one step and evaluate one
    batch. Returns how it ended; a non-project exception propagates."""
    from engine.train.trainer import Trainer

    try:
        doc = document.loads(json.dumps(raw))
    except (WiregradError, ValueError, RecursionError):
        return "refused"
    if not api.validate(doc)["ok"]:
        return "invalid"
    try:
        trainer = Trainer(doc, steps=2)
        trainer.train_step()
        trainer.evaluate(max_batches=1)
    except WiregradError:
        return "refused at training"
    return "trained"
