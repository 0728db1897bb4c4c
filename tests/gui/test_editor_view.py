"""Fit shows the whole graph (no zoom floor that leaves a wide preset off-screen), and
Auto-layout keeps the graph in view, wrapping a long chain to suit the canvas (issue 14 §3)."""

from __future__ import annotations

import itertools

import pytest
from guihelp import preset_names

from nodegraph.editing import layout
from nodegraph.editing.model import GraphModel

pytestmark = pytest.mark.gui


def _visible(win):
    return win.view.mapToScene(win.view.viewport().rect()).boundingRect()


def _all_in_view(win) -> bool:
    seen = _visible(win).adjusted(-1, -1, 1, 1)
    return all(seen.contains(item.sceneBoundingRect()) for item in win.scene.nodes.values())


@pytest.mark.parametrize("name", preset_names())
def test_fit_shows_the_whole_graph(make_window, name):
    win = make_window(name)
    win.view.fit()
    assert _all_in_view(win), name
    assert win.view.zoom() <= 1.0


def _chain(n: int) -> dict:
    nodes = [{"id": f"act{k}", "type": "relu", "params": {}, "ui": {"pos": [0, 0]}}
             for k in range(n)]
    edges = [{"src": {"node": f"act{k}", "port": "out"},
              "dst": {"node": f"act{k + 1}", "port": "x"}} for k in range(n - 1)]
    return {"format": "wiregrad-graph", "version": 1, "meta": {"name": "chain"},
            "nodes": nodes, "edges": edges}


def test_a_long_chain_wraps_to_the_canvas_shape(catalog):
    model = GraphModel(_chain(30))
    pos = layout.positions(model, catalog, aspect=1.6)
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    width, height = max(xs) - min(xs) + 200, max(ys) - min(ys) + 60
    assert 0.8 < width / height < 3.2, (width, height)
    one_line = layout.positions(model, catalog, aspect=100.0)
    assert len({p[1] for p in one_line.values()}) == 1  # a wide canvas keeps one line
    # bands keep the chain's order: left to right, then the next band below
    order = sorted(pos, key=lambda nid: (pos[nid][1] // 100, pos[nid][0]))
    assert order == [f"act{k}" for k in range(30)]


def test_auto_layout_keeps_a_long_chain_in_view_and_readable(make_window):
    win = make_window()
    win.controller.replace_document(_chain(30))
    win.actions_by_name["layout"].trigger()
    assert _all_in_view(win)
    assert win.view.zoom() > 0.3  # one line of 30 nodes would need about 0.1
    rects = [i.sceneBoundingRect() for i in win.scene.nodes.values()]
    assert not any(a.intersects(b) for a, b in itertools.combinations(rects, 2))
    win.controller.stack.undo()
    assert win.controller.stack.index() == 0


@pytest.mark.parametrize("name", ["shapes_cnn", "char_gpt"])
def test_auto_layout_of_a_preset_stays_in_view(make_window, name):
    win = make_window(name)
    win.actions_by_name["layout"].trigger()
    assert _all_in_view(win)
    assert win.view.zoom() > 0.25
