"""What the editor draws and asks the worker for while a run is live (issue 20: the editor
trains as fast as the CLI): the plots redraw together at most every ``PLOT_S`` and only on
screen; the periodic inspection and the predictions are asked for only as often as something
on screen shows them. No worker runs here: the session's requests are recorded."""

from __future__ import annotations

import time

import pytest

from nodegraph.training import inspection as inspection_mod
from nodegraph.training.inspection import TOOLTIP_S, inspection_due
from nodegraph.training.plots import PLOT_S, TrainingPlots, nice_range
from nodegraph.training.runs import RunData
from nodegraph.training.visible import on_screen

pytestmark = pytest.mark.gui


def test_nice_range_covers_the_data_and_moves_only_at_step_boundaries():
    assert nice_range(1.13, 4.2) == (1.0, 5.0)
    assert nice_range(1.02, 4.4) == (1.0, 5.0)  # the loss falls a little: the same range
    assert nice_range(0.93, 4.4) == (0.0, 5.0)
    lo, hi = nice_range(0.912, 0.985)  # accuracy
    assert lo <= 0.912 and hi >= 0.985 and hi - lo <= 0.2
    lo, hi = nice_range(3.0, 3.0)  # one point: a range around it, never empty
    assert lo < 3.0 < hi


def test_inspection_is_due_on_screen_or_for_the_tooltips_every_few_seconds():
    assert inspection_due(100.0, None, on_screen=False)
    assert not inspection_due(100.0, 99.0, on_screen=False)
    assert inspection_due(100.0, 100.0 - TOOLTIP_S, on_screen=False)
    assert inspection_due(100.0, 99.9, on_screen=True)


def _records(first: int, n: int) -> list[dict]:
    return [{"kind": "train", "step": s, "wall": s * 0.01, "loss": 2.0 / s, "lr": 1e-3,
             "grad_norm": 1.0, "examples_per_s": 100.0} for s in range(first, first + n)]


def test_live_plots_redraw_together_at_most_every_plot_s_and_only_on_screen(qtbot):
    plots = TrainingPlots()
    qtbot.addWidget(plots)
    plots.resize(900, 300)
    plots.show()
    qtbot.waitExposed(plots)
    run = RunData(1, "run 1")
    plots.show_run(run)  # forced: draws now
    t = time.monotonic() + 10.0
    run.add(_records(1, 10))
    assert plots.refresh(now=t)  # every plot at once
    assert plots.up_to_date and len(plots.curve_data("grad_norm")[0]) == 10
    run.add(_records(11, 10))
    assert not plots.refresh(now=t + PLOT_S / 2)  # too soon: kept for later
    assert not plots.up_to_date and len(plots.curve_data("loss")[0]) == 10
    assert plots.refresh(now=t + PLOT_S * 1.01)
    assert len(plots.curve_data("loss")[0]) == 20 and len(plots.curve_data("speed")[0]) == 20
    assert not plots.refresh(now=t + 100.0)  # nothing new: nothing drawn
    plots.hide()
    run.add(_records(21, 5))
    assert not plots.refresh(now=t + 200.0) and not plots.up_to_date  # hidden: pending
    plots.show()  # back on screen: what arrived meanwhile is drawn at once
    assert plots.up_to_date and len(plots.curve_data("loss")[0]) == 25
    _, ys = plots.curve_data("loss")
    lo, hi = plots.loss.vb.viewRange()[1]
    assert lo <= ys.min() and hi >= ys.max()  # the y-range covers the curve


class _Requests:
    """Stands in for the session's inspect / predictions requests."""

    def __init__(self, monkeypatch, session) -> None:
        self.inspect: list = []
        self.predictions = 0
        monkeypatch.setattr(session, "inspect", lambda node=None: self.inspect.append(node)
                            or True)
        monkeypatch.setattr(session, "predictions", self._predict)
        monkeypatch.setattr(session, "has_trainer", True)

    def _predict(self) -> bool:
        self.predictions += 1
        return True


def test_periodic_inspection_and_predictions_follow_what_is_on_screen(make_window, qtbot,
                                                                      monkeypatch):
    win = make_window("spiral_mlp")
    ui = win.training
    asked = _Requests(monkeypatch, ui.session)
    clock = {"now": 500.0}
    monkeypatch.setattr(inspection_mod.time, "monotonic", lambda: clock["now"])
    insp = ui.inspection
    # as the editor opens: the Debugger dock behind the Inspector, no halos, nothing selected
    assert not on_screen(ui.inspect_widget)
    insp.tick()
    assert len(asked.inspect) == 1 and asked.predictions == 0  # the wires' tooltips
    for _ in range(3):
        clock["now"] += 1.5
        insp.tick()
    assert len(asked.inspect) == 1 and asked.predictions == 0
    clock["now"] += TOOLTIP_S
    insp.tick()
    assert len(asked.inspect) == 2
    # the gradient halos on the canvas: every tick
    insp.set_heat(True)
    for _ in range(2):
        clock["now"] += 1.5
        insp.tick()
    assert len(asked.inspect) == 4
    insp.set_heat(False)
    # the Debugger raised, its Node tab showing a selected node: every tick
    ui.docks[2].raise_()
    ui.inspect_widget.setCurrentWidget(ui.inspect_widget.node)
    qtbot.waitUntil(lambda: on_screen(ui.inspect_widget.node))
    win.scene.nodes["fc1"].setSelected(True)
    before = len(asked.inspect)
    clock["now"] += 1.5
    insp.tick()
    assert len(asked.inspect) == before + 1 and asked.inspect[-1] == "fc1"
    assert asked.predictions == 0
    # the Predictions tab on screen: predictions every tick, no inspection beyond the
    # tooltips' (the Node tab is hidden now)
    ui.inspect_widget.setCurrentWidget(ui.inspect_widget.predictions)
    qtbot.waitUntil(lambda: on_screen(ui.inspect_widget.predictions))
    shown = asked.predictions  # switching to the tab asks once
    assert shown >= 1
    before = len(asked.inspect)
    clock["now"] += 1.5
    insp.tick()
    assert asked.predictions == shown + 1 and len(asked.inspect) == before
    # the Inspector raised over the Debugger again: no predictions
    win.inspector_dock.raise_()
    qtbot.waitUntil(lambda: not on_screen(ui.inspect_widget.predictions))
    clock["now"] += 1.5
    insp.tick()
    assert asked.predictions == shown + 1


def test_plots_behind_another_dock_draw_when_their_dock_is_raised(make_window, qtbot):
    win = make_window("spiral_mlp")
    ui = win.training
    run = RunData(1, "run 1")
    ui.runs.append(run)
    ui.current = run
    ui.dock_widget.plots.show_run(run)
    ui.docks[1].raise_()  # Sampling over Training
    plots = ui.dock_widget.plots
    qtbot.waitUntil(lambda: not on_screen(plots))
    run.add(_records(1, 30))
    ui.refresh()
    assert not plots.up_to_date and len(plots.curve_data("loss")[0]) == 0  # not drawn
    ui.docks[0].raise_()
    qtbot.waitUntil(lambda: plots.up_to_date)
    assert len(plots.curve_data("loss")[0]) == 30


def test_records_reach_the_training_ui_without_a_copy_per_record(qtbot):
    from nodegraph.training.session import TrainingSession

    session = TrainingSession()
    got: list = []
    session.records.connect(got.append)
    batch = _records(1, 50)
    session.records.emit(batch)  # as a Signal(list), PySide rebuilt every record (QVariant)
    assert got[0] is batch


def test_the_tokens_dock_behind_another_tab_asks_for_no_weights_at_evaluations(
        make_window, qtbot, monkeypatch):
    """At a live run's evaluation point the embedding explorer asks the worker to write its
    weights and projects them (a PCA on the GUI thread: ~170 ms on char_gpt, the event loop's
    longest block while training) only when the Tokens tab is on screen; behind the Inspector
    (as the editor opens) it is marked stale and brought up to date when raised."""
    win = make_window("char_gpt")
    route = win.explorer
    asked: list = []
    monkeypatch.setattr(win.training.session, "save_weights",
                        lambda request=None: asked.append(request) or True)
    assert not on_screen(route.widget)  # tabified behind the Inspector
    route.stale = False
    route.on_records([{"kind": "eval", "step": 250, "val_loss": 1.0}])
    assert asked == [] and route.stale
    refreshed: list = []
    monkeypatch.setattr(route, "refresh", lambda: refreshed.append(True) or True)
    route.dock.raise_()
    qtbot.waitUntil(lambda: on_screen(route.widget))
    qtbot.waitUntil(lambda: bool(refreshed))  # raised: what it missed is shown
    route.on_records([{"kind": "eval", "step": 500, "val_loss": 0.9}])
    assert asked == ["explorer"]
