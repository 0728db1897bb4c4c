"""Run history persists (issue 14 §4): each editor run's folder records the document's path
and graph hash (run.json) and its records (metrics.jsonl); reopening the document lists its
earlier runs with their curves, marked when the graph has changed since; two runs overlay;
a stopped run resumes from its checkpoint in its own folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from trainhelp import wait_done, wait_state

from engine import api

pytestmark = pytest.mark.gui


def _stopped_run(win, qtbot, steps: int = 3):
    run = win.training.train(paused=True)
    wait_state(qtbot, win, "paused")
    for k in range(steps):
        win.training.session.step()
        qtbot.waitUntil(lambda k=k: run.step >= k + 1 and win.training.session.state
                        == "paused", timeout=60_000)
    win.training.session.stop()
    wait_done(qtbot, win, run)
    return run


def _optimizer(doc):
    return next(n for n in doc["nodes"] if n["type"] == "optimizer")


def test_runs_persist_reopen_overlay_resume_and_mark_a_changed_graph(make_window, qtbot,
                                                                      tmp_path):
    win = make_window("spiral_mlp")
    win.training.dock_widget.controls.settings.fields["steps"].setValue(12)
    graph = tmp_path / "g.json"
    assert win.files.save_to(graph) is not False
    first, second = _stopped_run(win, qtbot), _stopped_run(win, qtbot)
    assert first.status == second.status == "stopped" and second.step == 3

    info = json.loads((Path(second.folder) / "run.json").read_text())
    assert info["document"] == str(graph.resolve())
    assert info["graph_hash"] == api.graph_hash(win.training.host.snapshot())
    assert info["status"] == "stopped" and info["step"] == 3 and info["checkpoint"]
    lines = (Path(second.folder) / "metrics.jsonl").read_text().splitlines()
    assert [r["step"] for r in map(json.loads, lines) if r["kind"] == "train"] == [1, 2, 3]

    assert win.files.open_document(str(graph))  # reopened: the earlier runs come back
    ui, runs = win.training, win.training.dock_widget.runs
    assert [r.earlier for r in ui.runs] == [True, True] and not any(r.changed for r in ui.runs)
    old = ui.runs[1]
    assert old.status == "stopped" and old.step == 3 and old.graph_hash == second.graph_hash
    assert list(old.train["loss"].view()) == list(second.train["loss"].view())
    assert runs.selected_run() is old and ui.dock_widget.plots.run is old
    runs.items[ui.runs[0].id].setCheckState(0, runs.items[old.id].checkState(0).Checked)
    assert [r.id for r in ui.dock_widget.plots.overlays] == [ui.runs[0].id]
    ui.dock_widget.plots.refresh(force=True)
    ui.dock_widget.resize(1100, 420)
    ui.dock_widget.grab().save("/tmp/h10/run_history.png")

    ui.dock_widget.controls.resume_button.click()  # continues the selected run
    assert ui.current is old and len(ui.runs) == 2
    wait_done(qtbot, win, old)
    assert old.status == "finished" and old.step == 12
    steps = [r["step"] for r in map(json.loads, (Path(old.folder) / "metrics.jsonl")
                                    .read_text().splitlines()) if r["kind"] == "train"]
    assert steps == list(range(1, 13))
    # a training checkpoint loads into the graph by name (File ▸ Load Weights…)
    report = ui.load_weights(str(Path(old.folder) / "last.safetensors"), show=False)
    assert len(report["matched"]) == 4 and not report["missing"] and not report["mismatched"]

    opt = _optimizer(win.controller.model.doc)
    win.controller.set_param(opt["id"], "lr", 0.123, scope=None)
    assert [r.changed for r in ui.runs] == [True, True]  # marked as soon as the graph changes
    win.controller.stack.undo()
    assert [r.changed for r in ui.runs] == [False, False]
    win.controller.stack.redo()
    assert win.files.save_to(graph) is not False
    assert win.files.open_document(str(graph))
    assert [r.changed for r in ui.runs] == [True, True]
    assert "graph changed" in runs.items[ui.runs[1].id].text(1)
    assert ui.runs[1].step == 12


def test_an_unsaved_graph_lists_no_earlier_runs(make_window, tmp_path):
    win = make_window(None)
    assert win.training.runs == []
    assert win.training.log.earlier(1, win.training.host.snapshot()) == []
