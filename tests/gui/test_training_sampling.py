"""The sampling dock streams text from a tiny GPT (same characters as the engine's sampler with
the same arguments), tints and explains each character, shows attention per head; the
screenshots of training the spiral and sampling the char-GPT."""

from __future__ import annotations

import numpy as np
import pytest
from guihelp import save_screenshot
from trainhelp import wait_state

from engine import api
from engine.base.io import save_weights
from engine.graphs import builders as templates
from engine.sample.sampler import Sampler
from nodegraph.training.sampling import NO_WEIGHTS

pytestmark = pytest.mark.gui


def _init_weights_file(doc: dict, path) -> str:
    sampler = Sampler(doc, None)  # freshly initialised weights
    save_weights(path, {**sampler.weights, **sampler.state})
    return str(path)


def _window_on(make_window, doc):
    win = make_window()
    win.controller.replace_document(doc)
    return win


def test_sampling_panel_streams_text_with_probabilities(make_window, qtbot, tmp_path):
    doc = templates.char_gpt(layers=1, heads=2, width=16, block=16)
    win = _window_on(make_window, doc)
    panel = win.training.sampling
    assert panel.source.text() == NO_WEIGHTS
    assert not panel.generate() and panel.status.text() == NO_WEIGHTS
    path = _init_weights_file(doc, tmp_path / "tiny.safetensors")
    panel.set_weights(path, "tiny (random init)")
    panel.prompt.setText("ROMEO:")
    panel.length.setValue(40)
    panel.seed.setValue(7)
    panel.temperature.setValue(0.9)
    panel.top_k.setValue(20)
    seen: list[int] = []
    panel.output.document().contentsChanged.connect(lambda: seen.append(len(panel.output.tokens)))
    assert panel.generate()
    qtbot.waitUntil(lambda: not panel.busy and len(panel.output.tokens) == 40,
                    timeout=90_000)
    qtbot.waitUntil(lambda: bool(win.training.inspect_widget.attention.maps), timeout=30_000)
    assert len(set(seen)) > 10  # characters arrived one by one
    expected = "".join(Sampler(doc, api.load_weights_file(path)).generate(
        "ROMEO:", 40, temperature=0.9, top_k=20, seed=7))
    assert panel.output.generated_text() == expected
    assert panel.output.toPlainText() == "ROMEO:" + expected
    first = min(panel.output.tokens)
    tip = panel.output.describe(first)
    char, p, alts = panel.output.tokens[first]
    assert 0 < p <= 1 and len(alts) == 5 and "alternatives" in tip
    probs = [q for _, q in alts]
    assert probs == sorted(probs, reverse=True) and p <= probs[0] + 1e-12
    maps = win.training.inspect_widget.attention.maps
    assert list(maps) == ["block1.attn"]
    heads = maps["block1.attn"]
    assert heads.shape == (2, 6, 6)
    np.testing.assert_allclose(heads.sum(axis=-1), 1.0, rtol=1e-5)
    assert np.all(np.triu(heads, k=1) == 0)  # causal


def test_panel_stays_busy_until_the_last_queued_character_is_shown(make_window, qtbot, tmp_path):
    """The worker can finish while its last characters still wait in the event loop."""
    doc = templates.char_gpt(layers=1, heads=2, width=16, block=16)
    win = _window_on(make_window, doc)
    panel = win.training.sampling
    panel.set_weights(_init_weights_file(doc, tmp_path / "tiny.safetensors"), "tiny")
    panel.length.setValue(25)
    done: list[int] = []
    panel.generation_done.connect(lambda: done.append(len(panel.output.tokens)))
    assert panel.generate()
    assert panel.thread.wait(60_000)  # thread over; no queued signal delivered yet
    assert not panel.thread.isRunning()
    assert panel.busy and len(panel.output.tokens) < 25
    assert not panel.generate()  # a second run cannot start over the first one's tail
    qtbot.waitUntil(lambda: not panel.busy, timeout=30_000)
    assert done == [25] and len(panel.output.generated_text()) == 25


def test_screenshot_training_the_spiral(make_window, qtbot, tmp_path):
    win = make_window("spiral_mlp")
    ui = win.training
    run = ui.train(steps=3000)
    qtbot.waitUntil(lambda: run.step >= 900, timeout=90_000)
    ui.actions["pause"].trigger()
    wait_state(qtbot, win, "paused")
    win.scene.select_nodes(["fc1"])
    qtbot.waitUntil(lambda: bool(ui.inspect_widget.node.detail), timeout=20_000)
    ui.actions["heat"].trigger()
    ui.docks[2].raise_()
    ui.dock_widget.runs.setCurrentItem(None)
    ui.refresh()
    win.view.fit()
    qtbot.wait(200)
    assert len(ui.dock_widget.plots.curve_data("loss")[0]) >= 900
    assert ui.inspection.overlay.items
    save_screenshot(win, "training-spiral", tmp_path)
    ui.actions["stop"].trigger()
    wait_state(qtbot, win, "idle")


def test_screenshot_sampling_the_char_gpt(make_window, qtbot, tmp_path):
    win = make_window("char_gpt")
    panel = win.training.sampling
    shipped = api.document_weights_path(win.controller.model.doc,
                                        next(p["path"] for p in api.list_presets()
                                             if p["name"] == "char_gpt"))
    if shipped is None:  # the trained weights are not there yet: sample from a fresh init
        assert panel.source.text() == NO_WEIGHTS
        panel.set_weights(_init_weights_file(win.controller.model.doc,
                                             tmp_path / "init.safetensors"),
                          "random init (no trained weights yet)")
    else:
        assert str(shipped) == panel.weights_path
    win.training.docks[1].raise_()
    panel.prompt.setText("ROMEO:\nWhat light")
    panel.length.setValue(160)
    assert panel.generate()
    qtbot.waitUntil(lambda: not panel.busy, timeout=120_000)
    qtbot.waitUntil(lambda: bool(win.training.inspect_widget.attention.maps), timeout=30_000)
    assert len(panel.output.tokens) == 160
    win.training.docks[2].raise_()
    win.view.fit()
    qtbot.wait(200)
    save_screenshot(win, "sampling-char_gpt", tmp_path)
