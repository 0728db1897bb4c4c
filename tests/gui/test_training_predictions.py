"""The Predictions tab (decision boundary, regression curve, image grid + confusion matrix),
Run ▸ Predict on File, the data node's summary in the inspector, and the screenshots."""

from __future__ import annotations

import numpy as np
import pytest
from guihelp import save_screenshot
from PySide6.QtCore import Qt
from trainhelp import wait_done, wait_state

from engine import api

pytestmark = pytest.mark.gui


def _predictions_tab(win):
    ui = win.training
    ui.docks[2].raise_()
    ui.inspect_widget.setCurrentWidget(ui.inspect_widget.predictions)
    return ui.inspect_widget.predictions


def _wait_step(qtbot, panel, step: int, timeout: int = 90_000) -> dict:
    qtbot.waitUntil(lambda: bool(panel.data) and panel.data["step"] == step, timeout=timeout)
    return panel.data


def test_decision_boundary_changes_with_training_and_predict_on_files(make_window, qtbot,
                                                                      tmp_path):
    win = make_window("spiral_mlp")
    ui = win.training
    panel = _predictions_tab(win)
    run = ui.train(steps=300, paused=True)
    first = _wait_step(qtbot, panel, 0)
    assert first["task"] == "boundary" and panel.image.shape == (120, 120, 3)
    before = panel.image.copy()
    assert len(panel._items["ok"].data) + len(panel._items["bad"].data) == 150  # val points
    ui.actions["resume"].trigger()
    wait_done(qtbot, win, run)
    last = _wait_step(qtbot, panel, 300)
    assert not np.array_equal(before, panel.image)
    assert last["accuracy"] > first["accuracy"] + 0.2
    assert "step 300" in panel._items["plot"].titleLabel.text
    # Predict on a CSV file with the run's weights (the worker writes them on request)
    rows = np.array([[0.1, 0.2], [-0.5, 0.3], [0.7, -0.6]], np.float32)
    csv_path = tmp_path / "points.csv"
    csv_path.write_text("x,y\n" + "\n".join(f"{a},{b}" for a, b in rows) + "\n")
    ui.inspection.predict_file(str(csv_path))
    qtbot.waitUntil(lambda: panel.file_result is not None, timeout=30_000)
    result = panel.file_result
    assert result["kind"] == "table", result
    weights = result["weights"]
    assert weights.startswith(run.folder)
    logits = api.run_model(win.controller.model.snapshot(), weights,
                           {"spirals.points": rows})["fc2"]
    assert panel.table.rowCount() == 3
    assert [int(panel.table.item(i, 1).text()) for i in range(3)] == list(logits.argmax(1))
    # a .npy file with a label column
    npy = tmp_path / "points.npy"
    np.save(npy, np.c_[rows, [0, 1, 2]].astype(np.float32))
    ui.inspection.predict_file(str(npy))
    qtbot.waitUntil(lambda: panel.file_result is not None and
                    panel.file_result.get("file") == str(npy), timeout=30_000)
    assert panel.table.rowCount() == 3 and panel.table.columnCount() == 4
    assert [float(panel.table.item(i, 3).text()) for i in range(3)] == [0.0, 1.0, 2.0]
    # a file that does not fit the model: a clear message, no crash
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2,3,4\n5,6,7,8\n")
    ui.inspection.predict_file(str(bad))
    qtbot.waitUntil(lambda: panel.file_result is not None
                    and panel.file_result.get("kind") == "error", timeout=30_000)
    assert "2 feature(s)" in panel.file_status.text()


def test_regression_curve_has_every_validation_point_and_moves(make_window, qtbot):
    win = make_window("sine_regression")
    ui = win.training
    panel = _predictions_tab(win)
    n_val = api.dataset_summary(win.controller.model.doc, "sine")["val"]
    run = ui.train(steps=200, paused=True)
    _wait_step(qtbot, panel, 0)
    xs, ys = panel.curve.getData()
    assert len(xs) == n_val == 200 and len(panel.truth.getData()[0]) == n_val
    y0 = np.array(ys, copy=True)
    ui.actions["resume"].trigger()
    wait_done(qtbot, win, run)
    data = _wait_step(qtbot, panel, 200)
    xs, ys = panel.curve.getData()
    assert len(xs) == n_val
    assert np.max(np.abs(ys - y0)) > 0.1
    assert data["mse"] < 0.2


def test_image_grid_and_confusion_matrix(make_window, qtbot):
    win = make_window("shapes_cnn")
    ui = win.training
    panel = _predictions_tab(win)
    run = ui.train(steps=40)
    wait_done(qtbot, win, run)
    data = _wait_step(qtbot, panel, 40)
    assert data["task"] == "images"
    assert panel.confusion.shape == (4, 4)
    assert panel.confusion.sum() == data["evaluated"] == 400
    names = data["class_names"]
    assert names == ["circle", "square", "triangle", "cross"]
    assert len(panel.grid_titles) == 24
    for title, p, (_img, label) in zip(panel.grid_titles, data["grid_pred"],
                                       panel._items["views"]):
        assert title.startswith(names[int(p)] + " ")
        assert label.text.startswith(title)


def test_language_model_continues_a_text_file(make_window, qtbot, tmp_path):
    win = make_window("char_gpt")
    panel = win.training.inspect_widget.predictions
    text = tmp_path / "prompt.txt"
    text.write_text("ROMEO:\nWhat light")
    win.training.inspection.predict_file(str(text))
    qtbot.waitUntil(lambda: panel.file_result is not None, timeout=60_000)
    result = panel.file_result
    assert result["kind"] == "text" and len(result["continuation"]) == 200
    assert result["weights"].endswith("char_gpt.safetensors")
    assert panel.text.toPlainText() == "ROMEO:\nWhat light" + result["continuation"]


def test_data_node_summary_in_the_inspector(make_window, qtbot):
    win = make_window("spiral_mlp")
    win.scene.select_nodes(["spirals"])
    qtbot.waitUntil(lambda: win.inspector.data_label is not None
                    and "examples" in win.inspector.data_label.text(), timeout=20_000)
    text = win.inspector.data_label.text()
    assert "1,500 examples" in text and "validation 150" in text and "3 classes" in text
    win.controller.replace_document(api.open_graph("char_gpt")[0])
    win.scene.select_nodes(["text"])
    qtbot.waitUntil(lambda: win.inspector.data_label is not None
                    and "characters" in win.inspector.data_label.text(), timeout=20_000)
    text = win.inspector.data_label.text()
    summary = api.dataset_summary(win.controller.model.doc, "text")
    assert summary["vocab_size"] == 83
    assert f"{summary['characters']:,} characters" in text and "vocabulary 83" in text
    # unavailable data: the reason as text, never a dialog
    win.scene.select_nodes(["text"])
    win.controller.set_param("text", "source", "file")
    qtbot.waitUntil(lambda: win.inspector.data_label is not None
                    and "choose a UTF-8 text file" in win.inspector.data_label.text(),
                    timeout=20_000)


def test_screenshot_decision_boundary_while_training(make_window, qtbot, tmp_path):
    win = make_window("spiral_mlp", size=(1600, 1000))
    ui = win.training
    panel = _predictions_tab(win)
    run = ui.train(steps=3000)
    qtbot.waitUntil(lambda: run.step >= 1200, timeout=90_000)
    ui.actions["pause"].trigger()
    wait_state(qtbot, win, "paused")
    _wait_step(qtbot, panel, run.step)
    ui.dock_widget.runs.setCurrentItem(None)
    win.resizeDocks([ui.docks[2]], [620], Qt.Orientation.Horizontal)
    win.diagnostics_dock.hide()
    win.resizeDocks([ui.docks[0]], [360], Qt.Orientation.Vertical)
    ui.refresh()
    win.view.fit()
    qtbot.wait(300)
    save_screenshot(win, "predictions-spiral", tmp_path)
    ui.actions["stop"].trigger()
    wait_state(qtbot, win, "idle")
