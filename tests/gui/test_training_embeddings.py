"""The embedding PCA has one point per vocabulary entry; seeded sampling in the panel equals
`wiregrad sample`; the screenshot of the shipped char-GPT's token embedding."""

from __future__ import annotations

import subprocess
import sys

import pytest
from guihelp import save_screenshot
from PySide6.QtCore import Qt
from trainhelp import wait_done, wait_state

from engine import api
from engine.graphs import builders as templates

pytestmark = pytest.mark.gui


def test_embedding_pca_has_one_point_per_vocabulary_entry(make_window, qtbot):
    win = make_window()
    win.controller.replace_document(templates.char_gpt(layers=1, heads=2, width=16, block=16))
    ui = win.training
    run = ui.train(steps=3)
    wait_done(qtbot, win, run)
    assert run.status == "finished", ui.errors
    win.scene.select_nodes(["wte"])
    node = ui.inspect_widget.node
    qtbot.waitUntil(lambda: bool(node.detail) and "pca" in node.detail, timeout=30_000)
    vocab = api.dataset_summary(win.controller.model.doc, "text")["vocab_size"]
    assert vocab == 83
    xs, ys = node.pca_item.getData()
    assert len(xs) == len(ys) == vocab == len(node.detail["pca"]["labels"])


def test_seeded_sampling_equals_the_command_line(make_window, qtbot):
    win = make_window("char_gpt")
    panel = win.training.sampling
    assert panel.weights_path and panel.weights_path.endswith("char_gpt.safetensors")
    prompt, n, seed, temperature, top_k, top_p = "ROMEO:", 60, 3, 0.9, 20, 0.95
    panel.prompt.setText(prompt)
    panel.length.setValue(n)
    panel.seed.setValue(seed)
    panel.temperature.setValue(temperature)
    panel.top_k.setValue(top_k)
    panel.top_p.setValue(top_p)
    cli = subprocess.run([sys.executable, "-m", "engine.cli", "sample", "char_gpt", "--prompt",
                          prompt, "-n", str(n), "--seed", str(seed), "--temperature",
                          str(temperature), "--top-k", str(top_k), "--top-p", str(top_p),
                          "--no-echo"], capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    assert panel.generate()
    qtbot.waitUntil(lambda: not panel.busy, timeout=60_000)
    text = panel.output.generated_text()
    assert len(text) == n
    assert cli.stdout == text + "\n"


def test_screenshot_embeddings_of_the_shipped_char_gpt(make_window, qtbot, tmp_path):
    win = make_window("char_gpt", size=(1600, 1000))
    ui = win.training
    weights = ui.sampling.weights_path
    run = ui.train(steps=1, paused=True, weights=weights)
    wait_state(qtbot, win, "paused")
    win.scene.select_nodes(["wte"])
    node = ui.inspect_widget.node
    qtbot.waitUntil(lambda: bool(node.detail) and "pca" in node.detail, timeout=60_000)
    assert run.step == 0  # the shipped weights, untouched
    ui.docks[2].raise_()
    ui.inspect_widget.setCurrentWidget(node)
    win.resizeDocks([ui.docks[2]], [700], Qt.Orientation.Horizontal)
    win.diagnostics_dock.hide()
    win.resizeDocks([ui.docks[0]], [360], Qt.Orientation.Vertical)
    win.view.fit()
    qtbot.wait(300)
    save_screenshot(win, "embeddings-char_gpt", tmp_path)
    ui.actions["stop"].trigger()
    wait_state(qtbot, win, "idle")
