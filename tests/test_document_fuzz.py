"""Loader and compiler fuzzing: any input gives a document or the project's own error type —
never KeyError / TypeError / RecursionError — in bounded time."""

from __future__ import annotations

import copy
import json
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.base.errors import WiregradError
from engine.core import document
from engine.core.compile import compile_graph
from tests.helpers import spiral

SETTINGS = dict(deadline=None, max_examples=150,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12),
    st.sampled_from(["B", "$width", "$x*2", "out", "x", "inputs[0]", "linear", "relu"]),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=5),
                               st.dictionaries(st.text(max_size=8), children, max_size=5)),
    max_leaves=40,
)


def _load_and_compile(raw) -> None:
    start = time.perf_counter()
    try:
        doc = document.loads(json.dumps(raw))
    except WiregradError:
        return
    program = compile_graph(doc)
    assert isinstance(program.diagnostics, list)
    assert time.perf_counter() - start < 10


@settings(**SETTINGS)
@given(json_values)
def test_arbitrary_json(raw):
    _load_and_compile(raw)


@settings(**SETTINGS)
@given(st.dictionaries(st.sampled_from(list(document.TOP_KEYS)), json_values, max_size=6))
def test_arbitrary_top_level_objects(raw):
    raw = {"format": "wiregrad-graph", "format_version": 2, **raw}
    raw["format"] = "wiregrad-graph"
    _load_and_compile(raw)


BASE = json.loads(document.dumps(spiral()))
NODE_IDS = [nd["id"] for nd in BASE["nodes"]] + ["ghost", "$in"]
PORTS = ["out", "x", "y", "a", "b", "logits", "labels", "inputs[0]", "zz"]


@st.composite
def mutated(draw):
    doc = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["drop", "dup", "retarget", "param", "type", "nest",
                                     "huge", "layer"]))
        edges, nodes = doc["edges"], doc["nodes"]
        if kind == "drop" and edges:
            edges.pop(draw(st.integers(0, len(edges) - 1)))
        elif kind == "dup" and edges:
            edges.append(copy.deepcopy(edges[draw(st.integers(0, len(edges) - 1))]))
        elif kind == "retarget" and edges:
            edge = edges[draw(st.integers(0, len(edges) - 1))]
            end = edge[draw(st.sampled_from(["src", "dst"]))]
            end["node"] = draw(st.sampled_from(NODE_IDS))
            end["port"] = draw(st.sampled_from(PORTS))
        elif kind == "param":
            node = nodes[draw(st.integers(0, len(nodes) - 1))]
            key = draw(st.sampled_from(["shape", "in_features", "out_features", "dtype",
                                        "high", "axis", "bogus"]))
            node.setdefault("params", {})[key] = draw(json_values)
        elif kind == "type":
            node = nodes[draw(st.integers(0, len(nodes) - 1))]
            node["type"] = draw(st.sampled_from(["Linear", "relu", "matmul", "input", "sum",
                                                 "cross_entropy", "nope", "parameter"]))
        elif kind == "nest":
            deep: object = 1
            for _ in range(draw(st.integers(1, 80))):
                deep = [deep]
            doc["extra"]["deep"] = deep
        elif kind == "huge":
            node = nodes[draw(st.integers(0, len(nodes) - 1))]
            node.setdefault("params", {})["out_features"] = draw(
                st.sampled_from([10**12, 2**31, -1, 0, 10**30]))
        elif kind == "layer" and doc["layers"]:
            ldef = doc["layers"]["Linear"]
            target = draw(st.sampled_from(["nodes", "edges", "outputs", "params"]))
            if ldef[target]:
                ldef[target][draw(st.integers(0, len(ldef[target]) - 1))] = draw(json_values)
    return doc


@settings(**SETTINGS)
@given(mutated())
def test_mutated_documents(doc):
    _load_and_compile(doc)
