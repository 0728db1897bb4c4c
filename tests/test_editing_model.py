"""The editor's Qt-free model (``nodegraph.editing``): exact undo/redo for random edit sequences
driven directly on the model (no Qt, no QUndoStack), edges addressed by key, typed events."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import api
from nodegraph.editing import edits, grouping, layout
from nodegraph.editing import events as ev
from nodegraph.editing.model import GraphModel, ModelError, edge_key
from nodegraph.editing.specs import Catalog, input_ports, output_ports

REPO = Path(__file__).resolve().parent.parent


class History:
    """A minimal undo stack over the model: what QUndoStack does for the editor."""

    def __init__(self, model: GraphModel) -> None:
        self.model = model
        self.done: list[tuple[list, list]] = []
        self.undone: list[tuple[list, list]] = []

    def push(self, ops: list) -> bool:
        if not ops:
            return False
        self.done.append((ops, self.model.apply_all(ops)))
        self.undone.clear()
        return True

    def undo(self) -> None:
        ops, inverses = self.done.pop()
        self.model.apply_all(inverses)
        self.undone.append((ops, inverses))

    def redo(self) -> None:
        ops, _ = self.undone.pop()
        self.done.append((ops, self.model.apply_all(ops)))


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog(api.catalog(include_user_layers=False))


@pytest.fixture
def model() -> GraphModel:
    doc, _ = api.open_graph("spiral_mlp")
    return GraphModel(doc)


TYPES = ["relu", "Linear", "add", "concat", "gelu", "mse", "accuracy"]
ACTION = st.one_of(
    st.tuples(st.just("add"), st.sampled_from(TYPES), st.integers(-500, 500)),
    st.tuples(st.just("remove"), st.integers(0, 50)),
    st.tuples(st.just("disconnect"), st.integers(0, 50)),
    st.tuples(st.just("connect"), st.integers(0, 50), st.integers(0, 50), st.integers(0, 9)),
    st.tuples(st.just("param"), st.integers(0, 50), st.integers(1, 64)),
    st.tuples(st.just("move"), st.integers(0, 50), st.integers(-300, 300)),
    st.tuples(st.just("group"), st.integers(0, 50), st.integers(1, 3)),
    st.tuples(st.just("ungroup"), st.integers(0, 50)),
    st.tuples(st.just("paste"), st.integers(0, 50)),
    st.tuples(st.just("layout")),
    st.tuples(st.just("frame"), st.integers(0, 400)),
    st.tuples(st.just("training"), st.sampled_from(["steps", "seed", "eval_every"]),
              st.integers(0, 3)),
)


def _connect_ops(m: GraphModel, cat: Catalog, src: str, dst: str, k: int) -> list:
    edges = m.edges()
    outs = output_ports(cat.spec(m.node(src)["type"], m.doc), src, edges)
    ins = input_ports(cat.spec(m.node(dst)["type"], m.doc), dst, edges)
    if not (outs and ins):
        return []
    return edits.connect(m, cat, None, src, outs[k % len(outs)]["name"], dst,
                         ins[k % len(ins)]["name"])


def _param_ops(m: GraphModel, cat: Catalog, node_id: str, value: int) -> list:
    spec = cat.spec(m.node(node_id)["type"], m.doc) or {}
    ints = [p["name"] for p in spec.get("params", []) if p["kind"] == "int"
            and (p.get("min") is None or p["min"] <= value)]
    return edits.set_param(m, None, node_id, ints[0], value) if ints else []


def _ungroup_ops(m: GraphModel, cat: Catalog, node_id: str) -> list:
    node = m.node(node_id)
    if node["type"] in m.doc["layers"] and not cat.builtin_layer(node["type"]):
        return grouping.ungroup(m, cat, None, node_id)
    return []


def intent_ops(m: GraphModel, cat: Catalog, act: tuple) -> list:
    """The ops of one user intent, built by the same Qt-free builders the controller uses."""
    ids = [n["id"] for n in m.nodes()]
    kind = act[0]
    if kind == "add":
        return edits.add_node(m, cat, None, act[1], (act[2], -act[2]))[1]
    if kind == "layout":
        return layout.auto_layout(m, cat, None)
    if kind == "frame":
        return edits.add_frame(m, (act[1], 0, 200, 100))[1]
    if kind == "training":
        return edits.set_training(m, act[1], act[2])
    if not ids:
        return []
    pick = ids[act[1] % len(ids)]
    builders = {
        "remove": lambda: edits.remove(m, None, [pick]),
        "disconnect": lambda: edits.remove_edges(
            m, None, m.edges()[act[1] % len(m.edges()):][:1]) if m.edges() else [],
        "connect": lambda: _connect_ops(m, cat, pick, ids[act[2] % len(ids)], act[3]),
        "param": lambda: _param_ops(m, cat, pick, act[2]),
        "move": lambda: edits.move(m, None, {pick: (act[2], act[2] / 2)}),
        "group": lambda: grouping.group(
            m, cat, None, {ids[(act[1] + k) % len(ids)] for k in range(act[2])})[1],
        "ungroup": lambda: _ungroup_ops(m, cat, pick),
        "paste": lambda: grouping.paste(m, None, grouping.fragment(m, cat, None, [pick]))[1],
    }
    try:
        return builders[kind]()
    except edits.Refused:
        return []


@settings(deadline=None, max_examples=60,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(actions=st.lists(ACTION, min_size=1, max_size=14))
def test_random_sequences_undo_and_redo_exactly_on_the_model(model, catalog, actions):
    history = History(model)
    states = [copy.deepcopy(model.doc)]
    for act in actions:
        if history.push(intent_ops(model, catalog, act)):
            states.append(copy.deepcopy(model.doc))
        else:
            assert model.doc == states[-1], f"{act} changed the document without ops"
    for expected in reversed(states[:-1]):
        history.undo()
        assert model.doc == expected
    for expected in states[1:]:
        history.redo()
        assert model.doc == expected


def test_a_training_setting_on_a_document_without_the_block_undoes_exactly():
    model = GraphModel({"nodes": [], "edges": []})
    before = copy.deepcopy(model.doc)
    inverse = model.apply_all(edits.set_training(model, "steps", 10))
    assert model.doc["training"] == {"steps": 10}
    redo = model.apply_all(inverse)
    assert model.doc == before
    model.apply_all(redo)
    assert model.doc["training"] == {"steps": 10}


def test_edges_are_addressed_by_key_not_index(model):
    first = copy.deepcopy(model.edges()[0])
    key = edge_key(first)
    inverse = model.apply(("delete_edge", None, key))
    assert inverse[0] == "insert_edge" and inverse[2] == first
    assert not model.has_edge(key)
    with pytest.raises(ModelError, match="no wire"):
        model.apply(("delete_edge", None, key))
    model.apply(inverse)
    assert model.edges()[0] == first  # back in its place, named by the next wire's key
    with pytest.raises(ModelError, match="duplicate wire"):
        model.apply(("insert_edge", None, first, None))


def test_deleted_node_returns_to_its_place(model):
    ids = [n["id"] for n in model.nodes()]
    inverse = model.apply(("delete_node", None, ids[1]))
    assert inverse[3] == ids[2]  # reinserted before its old successor
    model.apply(inverse)
    assert [n["id"] for n in model.nodes()] == ids


def test_events_are_typed(model, catalog):
    seen: list = []
    model.subscribe(seen.append)
    node_id, ops = edits.add_node(model, catalog, None, "relu", (0, 0))
    model.apply_all(ops)
    model.apply_all(edits.set_param(model, None, "fc1", "out_features", 7))
    model.apply_all(edits.move(model, None, {"fc1": (1, 2)}))
    edge = model.edges()[0]
    model.apply_all(edits.remove_edges(model, None, [edge]))
    model.apply_all(edits.remove(model, None, [node_id]))
    assert seen == [ev.NodeAdded(None, node_id), ev.ParamChanged(None, "fc1", "out_features"),
                    ev.UiChanged(None, "fc1", "pos"), ev.EdgeRemoved(None, edge),
                    ev.NodeRemoved(None, node_id)]


def test_removing_a_node_and_its_selected_wire_deletes_the_wire_once(model):
    edge = next(e for e in model.edges() if e["dst"]["node"] == "act1")
    ops = edits.remove(model, None, ["act1"], [edge])
    deleted = [op[2] for op in ops if op[0] == "delete_edge"]
    assert len(deleted) == len(set(deleted)) and edge_key(edge) in deleted
    before = copy.deepcopy(model.doc)
    model.apply_all(model.apply_all(ops))
    assert model.doc == before


def test_the_model_and_its_edits_run_without_qt():
    code = (
        "import json, sys\n"
        "from engine import api\n"
        "from nodegraph.editing import autosave, edits, events, grouping, layout, model, specs\n"
        "doc, _ = api.open_graph('spiral_mlp')\n"
        "m = model.GraphModel(doc)\n"
        "cat = specs.Catalog(api.catalog(include_user_layers=False))\n"
        "undo = [m.apply_all(edits.remove(m, None, ['act1']))]\n"
        "undo.append(m.apply_all(layout.auto_layout(m, cat)))\n"
        "for inv in reversed(undo):\n"
        "    m.apply_all(inv)\n"
        "roots = {name.split('.')[0] for name in sys.modules}\n"
        "print(json.dumps([m.doc == doc, sorted(roots & {'PySide6', 'shiboken6', "
        "'pyqtgraph'})]))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    same, qt = json.loads(result.stdout.strip().splitlines()[-1])
    assert same is True
    assert qt == []
