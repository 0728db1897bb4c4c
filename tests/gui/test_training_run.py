"""Training from the editor: live plots and the run list, pause / step / resume with a hot
learning-rate edit, the structural lock, a NaN graph, a killed worker, CSV / PNG export."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from guihelp import canonical
from trainhelp import nan_graph, wait_done, wait_state

from engine import api

pytestmark = pytest.mark.gui


def test_train_spiral_updates_plots_run_list_and_inspection(make_window, qtbot, tmp_path):
    win = make_window("spiral_mlp")
    ui = win.training
    assert len(ui.dock_widget.plots.curve_data("loss")[0]) == 0
    run = ui.train(steps=300)
    assert run is not None and ui.session.active
    wait_done(qtbot, win, run)
    assert run.status == "finished", ui.errors
    qtbot.waitUntil(lambda: len(ui.dock_widget.plots.curve_data("loss")[0]) == 300)
    xs, losses = ui.dock_widget.plots.curve_data("loss")
    assert list(xs[:3]) == [1, 2, 3]
    assert losses[0] > losses[-1]
    assert np.mean(run.train["loss"].view()[-30:]) < 0.5
    # the run list: graph hash, hyper-parameters, final metrics, folder
    item = ui.dock_widget.runs.items[run.id]
    assert item.text(2) == api.graph_hash(api.embed_layer_definitions(win.controller.model.doc))
    assert "adam" in item.text(3) and "lr 0.01" in item.text(3)
    assert "accuracy" in item.text(4) and run.final["accuracy"] > 0.8
    assert item.text(5) == run.folder
    hover = ui.dock_widget.plots.hovers["loss"].show_at(150.0)
    assert "train: " in hover and "@ 150" in hover
    # inspection after the run: tooltips carry the statistics of the last batch
    qtbot.waitUntil(lambda: bool(ui.inspection.last_inspection
                                 and ui.inspection.last_inspection["edges"]))
    stats = {(s["src"], s["sport"], s["dst"], s["dport"]): s
             for s in ui.inspection.last_inspection["edges"]}
    key = ("fc1", "y", "act1", "x")
    assert stats[key]["shape"] == [64, 64]
    tip = win.scene.edges[key].toolTip()
    assert f"mean {stats[key]['mean']:.4g}" in tip and "grad norm" in tip
    ui.actions["heat"].trigger()
    assert set(ui.inspection.overlay.items) == {k for k, s in stats.items() if s["grad_norm"]}
    halos = ui.inspection.overlay.items
    colors = {halos[k].pen().color().name() for k in halos}
    assert len(colors) > 1
    # export
    assert ui.export_csv(str(tmp_path / "run.csv")) == len(run.records)
    with open(tmp_path / "run.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    train_rows = [r for r in rows if r["kind"] == "train"]
    assert len(train_rows) == 300
    assert float(train_rows[-1]["loss"]) == pytest.approx(run.train["loss"].view()[-1])
    assert ui.export_png(str(tmp_path / "plots.png"))
    assert (tmp_path / "plots.png").stat().st_size > 1000


def test_pause_step_resume_hot_lr_and_structural_lock(make_window, qtbot):
    win = make_window("spiral_mlp")
    ui = win.training
    before = canonical(win.controller.model.snapshot())
    run = ui.train(steps=1_000_000)
    wait_state(qtbot, win, "running")
    ui.actions["pause"].trigger()
    wait_state(qtbot, win, "paused")
    qtbot.wait(300)
    n = run.step
    ui.actions["step"].trigger()
    qtbot.waitUntil(lambda: run.step == n + 1)
    qtbot.wait(400)
    assert run.step == n + 1  # exactly one batch
    # hot-edit the learning rate from the dock: it sets the optimizer node's param (the
    # document is the only path to the worker); recorded, applied from the next step
    field = ui.dock_widget.controls.hot.fields["lr"]
    field.setText("2.5e-3")
    field.editingFinished.emit()
    assert win.controller.model.node("optimizer")["params"]["lr"] == 0.0025
    ui.actions["step"].trigger()
    qtbot.waitUntil(lambda: run.step == n + 2)
    assert run.hparam_changes and run.hparam_changes[-1]["lr"] == pytest.approx(0.0025)
    assert run.train["lr"].view()[-1] == pytest.approx(0.0025)
    assert run.train["lr"].view()[-2] == pytest.approx(0.01)
    # structural edits are refused; the optimizer's lr in the inspector is a hot edit
    assert win.controller.add_node("relu", (0, 0)) is not None  # the id it would have had
    assert len(win.controller.model.doc["nodes"]) == len(before["nodes"])
    assert not win.actions_by_name["undo"].isEnabled()
    win.scene.select_nodes(["fc1"])
    assert not any(w.isEnabled() for w in win.inspector.widgets.values())
    win.scene.select_nodes(["optimizer"])
    assert win.inspector.widgets["lr"].isEnabled()
    assert not win.inspector.widgets["algorithm"].isEnabled()
    win.controller.set_param("optimizer", "lr", 0.004)
    ui.actions["step"].trigger()
    qtbot.waitUntil(lambda: run.step == n + 3)
    assert run.train["lr"].view()[-1] == pytest.approx(0.004)
    ui.actions["resume"].trigger()
    wait_state(qtbot, win, "running")
    qtbot.waitUntil(lambda: run.step > n + 20)
    ui.actions["stop"].trigger()
    wait_done(qtbot, win, run)
    assert run.status == "stopped"
    after = canonical(win.controller.model.snapshot())
    assert after["nodes"] != before["nodes"]  # only the lr edit
    next(n for n in after["nodes"] if n["id"] == "optimizer")["params"]["lr"] = 0.01
    assert after == before
    assert win.controller.add_node("relu", (0, 0)) in {n["id"] for n in
                                                         win.controller.model.doc["nodes"]}


def test_nan_graph_reports_the_node_and_keeps_the_document(make_window, qtbot, dialogs):
    win = make_window("spiral_mlp")
    win.controller.replace_document(nan_graph(win.controller.model.doc))
    assert win.controller.validation["ok"]
    before = win.controller.model.snapshot()
    run = win.training.train(steps=50)
    wait_done(qtbot, win, run)
    qtbot.waitUntil(lambda: bool(dialogs.errors))
    title, text = dialogs.errors[-1]
    assert title == "Training failed" and "bad_log" in text and "NaN" in text
    assert run.status == "failed"
    assert win.scene.selected_node_ids() == ["bad_log"]
    assert win.scene.nodes["bad_log"].errors
    assert win.controller.model.snapshot() == before
    assert win.controller.add_node("relu", (0, 0)) is not None
    assert len(win.controller.model.doc["nodes"]) == len(before["nodes"]) + 1


def test_killed_worker_shows_error_and_a_new_run_works(make_window, qtbot, dialogs):
    win = make_window("spiral_mlp")
    ui = win.training
    before = win.controller.model.snapshot()
    run = ui.train(steps=1_000_000)
    wait_state(qtbot, win, "running")
    qtbot.waitUntil(lambda: run.step > 10)
    pid = ui.session.pid
    ui.session.kill_worker()
    wait_done(qtbot, win, run)
    qtbot.waitUntil(lambda: bool(dialogs.errors))
    title, text = dialogs.errors[-1]
    assert title == "Engine worker crashed" and "stopped unexpectedly" in text
    assert run.status == "crashed"
    assert win.controller.model.snapshot() == before
    assert win.actions_by_name["train"].isEnabled()
    again = ui.train(steps=40)
    wait_done(qtbot, win, again)
    assert again.status == "finished" and again.step == 40
    assert ui.session.pid != pid
