"""Kernel warm-up while editing: the open graph is sent to the engine worker before Train is
pressed (debounced after edits), and Train pressed during the warm-up simply proceeds."""

from __future__ import annotations

import pytest
from trainhelp import wait_done

from nodegraph.training.warmup import document_key

pytestmark = pytest.mark.gui


def test_open_graph_is_warmed_and_train_proceeds_meanwhile(make_window, qtbot):
    win = make_window("spiral_mlp")
    ui, warmer = win.training, win.training.warmer
    assert not warmer.enabled and ui.session.handle is None  # tests' windows start cold
    asked: list[str] = []
    answers: list[dict] = []
    warmer.requested.connect(asked.append)
    ui.session.warmed.connect(answers.append)
    win.start_warm_up()
    key = document_key(ui.host.snapshot())
    assert asked == [key] and warmer.pending == key
    assert ui.session.handle is not None and ui.session.state == "idle"
    assert not warmer.request()  # the same document is not sent twice
    run = ui.train(steps=20)  # pressed while the worker is still warming
    assert run is not None
    wait_done(qtbot, win, run)
    assert run.status == "finished", ui.errors
    assert run.step == 20 and not ui.errors
    assert [a["key"] for a in answers] == [key] and answers[0]["ok"], answers
    assert warmer.pending is None and key in warmer.warmed
    assert not warmer.request()  # already warm


def test_an_edit_is_warmed_after_the_debounce_and_never_during_a_run(make_window, qtbot):
    win = make_window("spiral_mlp")
    ui, warmer = win.training, win.training.warmer
    asked: list[str] = []
    warmer.requested.connect(asked.append)
    win.start_warm_up()
    qtbot.waitUntil(lambda: warmer.pending is None, timeout=90_000)
    first = asked[-1]
    win.controller.set_param("optimizer", "algorithm", "sgd")  # other kernels; revalidated
    assert warmer.timer.isActive() and asked == [first]  # waits for the user to pause
    qtbot.waitUntil(lambda: len(asked) == 2, timeout=10_000)
    assert asked[1] == document_key(ui.host.snapshot()) != first
    qtbot.waitUntil(lambda: warmer.pending is None, timeout=90_000)
    assert asked[1] in warmer.warmed
    run = ui.train(steps=5)
    assert not warmer.request()  # a live run is never interrupted by a warm-up
    wait_done(qtbot, win, run)
    assert run.status == "finished", ui.errors
