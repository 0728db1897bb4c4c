"""The editor never carries one document's state into another (issue 14 §3): File ▸ Open and
New reset the plots, run list, debugger, predictions and sampling text; gradient-norm halos
follow edits (a deleted node's halos go, a moved node's halos move)."""

from __future__ import annotations

import pytest
from trainhelp import wait_done

pytestmark = pytest.mark.gui


def _fake_inspection(win) -> list[dict]:
    """Wire statistics as the worker sends them, one gradient norm per wire."""
    return [{"src": e["src"]["node"], "sport": e["src"]["port"], "dst": e["dst"]["node"],
             "dport": e["dst"]["port"], "shape": [4, 4], "mean": 0.0, "std": 1.0, "min": -1.0,
             "max": 1.0,
             "grad_norm": 10.0 ** (k % 5 - 2)}
            for k, e in enumerate(win.controller.model.edges())]


def test_halos_follow_deletes_and_moves(make_window):
    win = make_window("spiral_mlp")
    overlay = win.training.inspection.overlay
    overlay.update(_fake_inspection(win), 7)
    overlay.set_heat(True)
    touching = {k for k in overlay.items if "act1" in (k[0], k[2])}
    assert touching and len(overlay.items) == len(win.controller.model.edges())
    key = next(k for k in overlay.items if k[0] == "act1")
    win.controller.move({"act1": (900.0, 700.0)}, 1)
    assert overlay.items[key].path() == win.scene.edges[key].path
    win.controller.remove(["act1"])
    assert not touching & set(overlay.items)
    assert all(item.scene() is win.scene for item in overlay.items.values())
    halos_in_scene = [i for i in win.scene.items() if i in overlay.items.values()]
    assert len(halos_in_scene) == len(overlay.items)
    win.controller.stack.undo()  # the node and its wires are back: so are their halos
    assert touching <= set(overlay.items)


def test_open_and_new_reset_the_previous_documents_views(make_window, qtbot):
    win = make_window("spiral_mlp")
    ui = win.training
    run = ui.train(steps=20)
    wait_done(qtbot, win, run)
    qtbot.waitUntil(lambda: len(ui.dock_widget.plots.curve_data("loss")[0]) == 20)
    qtbot.waitUntil(lambda: ui.inspection.last_inspection is not None)
    ui.inspection.overlay.set_heat(True)
    ui.inspect_widget.node.show_detail(ui.inspection.last_inspection.get("detail") or {
        "node": "fc1", "weights": {}, "activations": {}}, 20)
    ui.inspection.request_predictions(force=True)
    qtbot.waitUntil(lambda: ui.inspect_widget.predictions.data is not None)
    ui.sampling.output.start("old sample text")
    assert ui.dock_widget.runs.topLevelItemCount() == 1

    assert win.files.open_document("shapes_cnn")
    assert len(ui.dock_widget.plots.curve_data("loss")[0]) == 0
    assert ui.dock_widget.plots.run is None
    assert ui.dock_widget.runs.topLevelItemCount() == 0 and ui.runs == []
    assert ui.current is None
    assert ui.inspection.last_inspection is None and not ui.inspection.overlay.items
    assert ui.inspect_widget.predictions.data is None
    assert ui.inspect_widget.predictions.task is None
    assert ui.inspect_widget.node.detail is None
    assert ui.sampling.output.toPlainText() == ""
    assert ui.dock_widget.controls.progress.text() == "idle"

    run = ui.train(steps=3)  # the new document's runs start from 1 again
    assert run.name == "run 1"
    wait_done(qtbot, win, run)
    ui.sampling.output.start("cnn text")
    win.files.new()
    assert ui.sampling.output.toPlainText() == ""
    assert ui.dock_widget.runs.topLevelItemCount() == 0
    assert len(ui.dock_widget.plots.curve_data("loss")[0]) == 0
