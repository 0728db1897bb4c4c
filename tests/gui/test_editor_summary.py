"""The per-layer summary in the editor (issue 14 §4): type, output shapes, parameters and
FLOPs of every node with totals, as ``wiregrad validate`` prints them, kept live."""

from __future__ import annotations

import pytest

from engine import api

pytestmark = pytest.mark.gui


def _rows(win) -> list[list[str]]:
    tree = win.summary
    return [[tree.topLevelItem(i).text(c) for c in range(tree.columnCount())]
            for i in range(tree.topLevelItemCount())]


def test_the_summary_lists_every_node_with_totals(make_window):
    win = make_window("shapes_cnn")
    result = api.validate(win.controller.model.doc)
    rows = _rows(win)
    assert [r[0] for r in rows[:-1]] == [n["id"] for n in result["nodes"]]
    conv1 = next(r for r in rows if r[0] == "conv1")
    assert conv1[1] == "Conv2d" and conv1[2] == "y: B×8×16×16"
    info = next(n for n in result["nodes"] if n["id"] == "conv1")
    assert conv1[3] == f"{info['param_count']:,}" and conv1[4] == f"{info['flops']:,}"
    assert rows[-1][0] == "total" and rows[-1][3] == f"{result['total_params']:,}"
    assert rows[-1][4] == f"{result['total_flops']:,}"
    assert win.summary_dock.toggleViewAction() in win.menuBar().actions()[2].menu().actions()


def test_the_summary_follows_edits_and_focuses_a_clicked_node(make_window):
    win = make_window("spiral_mlp")
    win.controller.set_param("fc1", "out_features", 32)
    fc1 = next(r for r in _rows(win) if r[0] == "fc1")
    assert fc1[2] == "y: B×32" and fc1[3] == "96"
    item = next(win.summary.topLevelItem(i) for i in range(win.summary.topLevelItemCount())
                if win.summary.topLevelItem(i).text(0) == "act1")
    win.summary.itemClicked.emit(item, 0)
    assert win.scene.selected_node_ids() == ["act1"]
