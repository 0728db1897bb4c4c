"""On a seq2seq graph the sampling dock is an input → output panel: decode a date with the
shipped weights, each output token tinted by its probability, and the cross-attention map
per decoder block and head (rows = output tokens, columns = input characters)."""

from __future__ import annotations

import numpy as np
import pytest
from guihelp import save_screenshot
from PySide6.QtCore import Qt

from engine import api
from engine.graphs import builders as templates
from nodegraph.training.sampling import prob_color

pytestmark = pytest.mark.gui

TEXT = "3rd of March, 1987"


def _dates_window(make_window):
    win = make_window("seq2seq_dates")
    panel = win.training.sampling
    assert panel.weights_path is not None  # the shipped weights
    return win, panel


def test_seq2seq_graph_turns_the_sampling_dock_into_input_output(make_window, qtbot):
    win, panel = _dates_window(make_window)
    s2s = panel.seq2seq
    assert not s2s.isHidden() and panel.lm_part.isHidden()
    s2s.input.setText(TEXT)
    qtbot.keyClick(s2s.input, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not s2s.busy, timeout=30_000)
    assert s2s.output.generated_text() == "1987-03-03<end>", s2s.status.text()
    assert s2s.output.toPlainText() == "1987-03-03<end>"
    # each token tinted by its probability; the tooltip names the alternatives
    first = min(s2s.output.tokens)
    cursor = s2s.output.textCursor()
    cursor.setPosition(first + 1)
    p = s2s.output.tokens[first][1]
    assert cursor.charFormat().background().color() == prob_color(p)
    assert "alternatives" in s2s.output.describe(first)
    # beam search gives the same output; a bad character is a status line, not a crash
    s2s.beam.setValue(3)
    assert s2s.decode()
    qtbot.waitUntil(lambda: not s2s.busy, timeout=30_000)
    assert s2s.output.generated_text() == "1987-03-03<end>"
    s2s.temperature.setValue(1.0)
    assert not s2s.decode() and "temperature to 0" in s2s.status.text()
    s2s.beam.setValue(1)
    assert s2s.decode()
    qtbot.waitUntil(lambda: not s2s.busy, timeout=30_000)
    assert "sampled at T 1" in s2s.status.text()
    assert s2s.result["output"] == api.decode_pairs(
        win.controller.model.doc, api.load_weights_file(panel.weights_path), TEXT,
        temperature=1.0, seed=panel.seed.value())["output"]
    s2s.input.setText("☃ March")
    assert s2s.decode()
    qtbot.waitUntil(lambda: not s2s.busy, timeout=30_000)
    assert "decoding failed" in s2s.status.text() and "does not know" in s2s.status.text()
    # back to a language model: the prompt panel returns
    win.controller.replace_document(templates.char_gpt(layers=1, heads=2, width=16, block=16))
    assert s2s.isHidden() and not panel.lm_part.isHidden()


def test_cross_attention_map_per_block_and_head(make_window, qtbot, tmp_path):
    win, panel = _dates_window(make_window)
    s2s = panel.seq2seq
    s2s.input.setText(TEXT)
    assert panel.generate()  # the dock's Generate path decodes too
    qtbot.waitUntil(lambda: not s2s.busy, timeout=30_000)
    view = s2s.attention
    assert [view.layer.itemText(i) for i in range(view.layer.count())] == ["dec1", "dec2"]
    assert view.head.count() == 4
    assert view.cols == list(TEXT) and view.rows[-1] == "<end>" and len(view.rows) == 11
    seen = []
    for layer in ("dec1", "dec2"):
        view.layer.setCurrentText(layer)
        for h in range(4):
            view.head.setCurrentIndex(h)
            m = view.current()
            assert m.shape == (11, len(TEXT)) and view.image is not None
            np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-9)
            np.testing.assert_allclose(view.image.image, m.T)
            seen.append(m)
    assert not np.allclose(seen[0], seen[1])  # a different head, a different map
    # the month digit looks at "March" in some head
    march = set(range(TEXT.index("March"), TEXT.index("March") + 5))
    assert any(int(np.argmax(m[6])) in march for m in seen)
    view.layer.setCurrentText("dec1")
    view.head.setCurrentIndex(2)
    win.training.docks[1].raise_()
    qtbot.wait(100)
    panel.resize(1100, 460)
    save_screenshot(panel, "seq2seq-dates", tmp_path)
    assert api.is_seq2seq(win.controller.model.doc)


def test_live_predictions_show_decoded_pairs_wrong_ones_marked(make_window, qtbot, tmp_path):
    from trainhelp import wait_state

    win, panel = _dates_window(make_window)
    tab = win.training.inspect_widget.predictions
    run = win.training.train(steps=100, paused=True, weights=panel.weights_path)
    assert run is not None
    wait_state(qtbot, win, "paused")
    assert win.training.inspection.request_predictions(force=True)
    qtbot.waitUntil(lambda: (tab.data or {}).get("task") == "seq2seq", timeout=60_000)
    text = tab.info.text()
    assert len(tab.data["pairs"]) == 8 and tab.data["exact_match"] == 1.0
    assert text.count("✓") == 8 and "✗" not in text and "100% exact" in text
    win.training.session.stop()
    wait_state(qtbot, win, "idle")
    wrong = {**tab.data, "exact_match": 0.5,
             "pairs": [{"source": "3 Mar 87", "target": "1987-03-03", "output": "1987-03-08",
                        "correct": False},
                       {"source": "4 Mar 87", "target": "1987-03-04", "output": "1987-03-04",
                        "correct": True}]}
    tab.show_predictions(wrong)
    text = tab.info.text()
    assert text.count("✗") == 1 and "expected 1987-03-03" in text and text.count("✓") == 1
    win.training.inspect_widget.setCurrentWidget(tab)
    qtbot.wait(50)
    assert tab.scroll.isHidden()
    save_screenshot(win.training.inspect_widget, "seq2seq-predictions", tmp_path)


def test_a_finished_seq2seq_run_hands_its_weights_to_the_panel(make_window, qtbot):
    from trainhelp import wait_done

    win, panel = _dates_window(make_window)
    shipped = panel.weights_path
    run = win.training.train(steps=2, weights=shipped)
    wait_done(qtbot, win, run)
    assert run.weights and panel.weights_path == run.weights != shipped
    assert panel.seq2seq.decode()
    qtbot.waitUntil(lambda: not panel.seq2seq.busy, timeout=30_000)
    assert panel.seq2seq.result["tokens"]
