"""Feedback the editor gives (issue 14 §3): disabled actions look disabled, op and param help
read as text (no raw reStructuredText), temperature 0 is called greedy."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from engine.base.io import save_weights
from engine.graphs import builders as templates
from engine.sample.sampler import Sampler
from nodegraph.editing.doctext import doc_html, doc_text

pytestmark = pytest.mark.gui


def _brightest(widget) -> float:
    """The brightest pixel of *widget* rendered (its text): 0 … 255."""
    image = widget.grab().toImage()
    pixels = np.array([[image.pixelColor(x, y).lightness() for x in range(image.width())]
                       for y in range(0, image.height(), 2)])
    return float(pixels.max())


def test_disabled_buttons_look_disabled(make_window):
    win = make_window("spiral_mlp")
    controls = win.training.dock_widget.controls
    assert not controls.checkpoint_button.isEnabled()  # no run yet
    assert controls.resume_button.isEnabled()
    dim, lit = _brightest(controls.checkpoint_button), _brightest(controls.resume_button)
    assert lit > 200 and dim < 150, (lit, dim)
    pause = controls.buttons["pause"]  # a disabled action's tool button
    assert not pause.isEnabled() and _brightest(pause) < 150


def test_op_and_param_docs_read_as_text():
    raw = """Toy data.

    Generated from the seed: ``n_samples`` points, see :class:`~engine.Foo` and the `gru` op;
    this line was wrapped by its author at a column beyond sixty characters and
    continues here."""
    text = doc_text(raw)
    assert "``" not in text and ":class:" not in text and "`" not in text
    assert "n_samples points, see engine.Foo and the gru op;" in text
    assert "characters and continues here." in text  # wrapped lines joined
    rich = doc_html(raw)
    assert "<code>n_samples</code>" in rich and "``" not in rich and rich.count("<p>") == 2


def test_the_inspector_shows_op_docs_without_markup(make_window):
    from PySide6.QtWidgets import QLabel

    win = make_window("spiral_mlp")
    data = next(n["id"] for n in win.controller.model.doc["nodes"]
                if n["type"] == "classification_2d")
    win.inspector.show_node(data)
    label = win.inspector.findChild(QLabel, "doc")
    assert label is not None and "``" not in label.text()
    assert "<code>n_samples</code>" in label.text()
    assert all("``" not in w.toolTip() for w in win.inspector.widgets.values())


def test_temperature_zero_says_greedy(make_window, qtbot, tmp_path):
    doc = templates.char_gpt(layers=1, heads=2, width=16, block=16)
    win = make_window()
    win.controller.replace_document(doc)
    panel = win.training.sampling
    sampler = Sampler(doc, None)
    path = tmp_path / "tiny.safetensors"
    save_weights(path, {**sampler.weights, **sampler.state})
    panel.set_weights(str(path), "tiny")
    panel.temperature.setValue(0.0)
    assert "greedy" in panel.temperature.text()
    panel.length.setValue(12)
    assert panel.generate()
    qtbot.waitUntil(lambda: not panel.busy and len(panel.output.tokens) == 12, timeout=90_000)
    assert "greedily" in panel.status.text() and "100" not in panel.status.text()
    first = min(panel.output.tokens)
    tip = panel.output.describe(first)
    assert "greedy" in tip and "p = 100.0%" not in tip  # the model's probability, not 1
    cursor = panel.output.textCursor()
    cursor.setPosition(first + 1)
    assert cursor.charFormat().background().style() == Qt.BrushStyle.NoBrush  # no p tint
