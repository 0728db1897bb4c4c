"""Undo returns the exact prior document and redo the exact later one — for every command
and for random command sequences (hypothesis)."""

from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import api

pytestmark = pytest.mark.gui


@pytest.fixture
def controller(qapp, catalog):
    from nodegraph.controller import Controller

    doc, _ = api.open_graph("spiral_mlp")
    return Controller(doc, catalog)


def check_step(ctl, action) -> None:
    before = copy.deepcopy(ctl.model.doc)
    count = ctl.stack.count()
    action()
    assert ctl.stack.count() == count + 1, "the action pushed no command"
    after = copy.deepcopy(ctl.model.doc)
    ctl.stack.undo()
    assert ctl.model.doc == before
    ctl.stack.redo()
    assert ctl.model.doc == after


def test_every_command_undoes_exactly(controller):
    from nodegraph.controller import new_drag_id

    c = controller
    check_step(c, lambda: c.add_node("gelu", (10, 20)))
    assert c.model.has_node("act2")
    check_step(c, lambda: c.set_param("fc1", "out_features", 32))
    check_step(c, lambda: c.set_param("fc1", "out_features", 64))
    check_step(c, lambda: c.set_title("fc1", "first layer"))
    check_step(c, lambda: c.move({"fc1": (5, 5), "act1": (300, 40)}, new_drag_id()))
    check_step(c, lambda: c.disconnect({"src": {"node": "fc1", "port": "y"},
                                        "dst": {"node": "act1", "port": "x"}}))
    check_step(c, lambda: c.connect("fc1", "y", "act2", "x"))
    check_step(c, lambda: c.connect("act2", "out", "act1", "x"))
    check_step(c, lambda: c.connect("fc1", "y", "act1", "x"))  # replaces the old wire
    check_step(c, lambda: c.remove(["act1"]))
    check_step(c, lambda: c.group(["fc1", "act2"]))
    check_step(c, lambda: c.ungroup("group1"))
    check_step(c, lambda: c.paste({"nodes": [c.model.node("fc2")], "edges": [], "layers": {}}))
    check_step(c, c.auto_layout)
    check_step(c, lambda: c.add_frame((0, 0, 300, 200), "note"))
    check_step(c, lambda: c.set_frame("frame1", title="renamed"))
    check_step(c, lambda: c.remove([], [], ["frame1"]))


def test_continuous_moves_merge_into_one_step(controller):
    from nodegraph.controller import new_drag_id

    c = controller
    before = copy.deepcopy(c.model.doc)
    drag = new_drag_id()
    for k in range(1, 20):
        c.move({"fc1": (300 + k * 10, k * 5)}, drag)
    assert c.stack.count() == 1
    assert c.model.pos("fc1") == (490.0, 95.0)
    c.stack.undo()
    assert c.model.doc == before


TYPES = ["relu", "Linear", "add", "concat", "gelu", "mse", "accuracy"]
action = st.one_of(
    st.tuples(st.just("add"), st.sampled_from(TYPES), st.integers(-500, 500)),
    st.tuples(st.just("remove"), st.integers(0, 50)),
    st.tuples(st.just("connect"), st.integers(0, 50), st.integers(0, 50), st.integers(0, 9)),
    st.tuples(st.just("param"), st.integers(0, 50), st.integers(1, 64)),
    st.tuples(st.just("move"), st.integers(0, 50), st.integers(-300, 300)),
    st.tuples(st.just("group"), st.integers(0, 50), st.integers(1, 3)),
    st.tuples(st.just("ungroup"), st.integers(0, 50)),
    st.tuples(st.just("paste"), st.integers(0, 50)),
    st.tuples(st.just("layout")),
    st.tuples(st.just("frame"), st.integers(0, 400)),
)


def perform(c, act) -> None:
    from nodegraph.controller import new_drag_id
    from nodegraph.editing.grouping import fragment
    from nodegraph.editing.specs import input_ports, output_ports

    ids = [n["id"] for n in c.model.nodes()]
    pick = (lambda k: ids[k % len(ids)]) if ids else None
    kind = act[0]
    if kind == "add":
        c.add_node(act[1], (act[2], -act[2]))
    elif kind == "layout":
        c.auto_layout()
    elif kind == "frame":
        c.add_frame((act[1], 0, 200, 100))
    elif not ids:
        return
    elif kind == "remove":
        c.remove([pick(act[1])])
    elif kind == "connect":
        src, dst = pick(act[1]), pick(act[2])
        edges = c.model.edges()
        outs = output_ports(c.catalog.spec(c.model.node(src)["type"], c.model.doc), src, edges)
        ins = input_ports(c.catalog.spec(c.model.node(dst)["type"], c.model.doc), dst, edges)
        if outs and ins:
            c.connect(src, outs[act[3] % len(outs)]["name"], dst, ins[act[3] % len(ins)]["name"])
    elif kind == "param":
        node = c.model.node(pick(act[1]))
        spec = c.catalog.spec(node["type"], c.model.doc)
        ints = [p["name"] for p in (spec or {}).get("params", []) if p["kind"] == "int"
                and (p.get("min") is None or p["min"] <= act[2])]
        if ints:
            c.set_param(node["id"], ints[0], act[2])
    elif kind == "move":
        c.move({pick(act[1]): (act[2], act[2] / 2)}, new_drag_id())
    elif kind == "group":
        c.group([pick(act[1] + k) for k in range(act[2])])
    elif kind == "ungroup":
        node = c.model.node(pick(act[1]))
        if node["type"] in c.model.doc["layers"] and not c.catalog.builtin_layer(node["type"]):
            c.ungroup(node["id"])
    elif kind == "paste":
        c.paste(fragment(c.model, c.catalog, None, [pick(act[1])]))


@settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(actions=st.lists(action, min_size=1, max_size=12))
def test_random_sequences_undo_and_redo_exactly(controller, actions):
    c = controller
    c.stack.clear()
    start = copy.deepcopy(c.model.doc)
    states = [copy.deepcopy(c.model.doc)]
    for act in actions:
        count = c.stack.count()
        perform(c, act)
        if c.stack.count() > count:
            states.append(copy.deepcopy(c.model.doc))
        else:
            assert c.model.doc == states[-1], f"{act} changed the document without a command"
    for expected in reversed(states[:-1]):
        c.stack.undo()
        assert c.model.doc == expected
    assert c.model.doc == start
    for expected in states[1:]:
        c.stack.redo()
        assert c.model.doc == expected
    while c.stack.canUndo():  # leave the shared document as it was for the next example
        c.stack.undo()
