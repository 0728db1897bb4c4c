"""The Predictions tab is readable at the default dock size (issue 14 §3): image thumbnails
and the confusion matrix keep a usable size and the tab scrolls instead of squashing them;
nothing is cut off at the sides."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gui


def _images_data(n: int = 12, k: int = 4) -> dict:
    rng = np.random.default_rng(0)
    confusion = rng.integers(0, 30, (k, k))
    return {"task": "images", "class_names": ["circle", "square", "triangle", "cross"],
            "n_classes": k, "images": rng.random((n, 16, 16)),
            "grid_pred": rng.integers(0, k, n).tolist(),
            "grid_true": rng.integers(0, k, n).tolist(), "grid_prob": rng.random(n).tolist(),
            "confusion": confusion.tolist(), "step": 100, "evaluated": int(confusion.sum()),
            "accuracy": 0.7}


def _size(item) -> tuple[float, float]:
    rect = item.sceneBoundingRect()
    return rect.width(), rect.height()


def test_images_and_confusion_keep_a_readable_size_in_the_default_dock(make_window, qtbot):
    win = make_window("shapes_cnn")
    ui = win.training
    ui.docks[2].raise_()
    panel = ui.inspect_widget.predictions
    ui.inspect_widget.setCurrentWidget(panel)
    qtbot.wait(50)
    assert panel.scroll.viewport().height() < 400  # the dock is small by default
    panel.show_predictions(_images_data())
    qtbot.wait(50)
    for view in (v.getViewBox() for v, _ in panel._items["views"]):
        w, h = _size(view)
        assert w >= 60 and h >= 60, (w, h)
    w, h = _size(panel._items["conf"].getViewBox())
    assert w >= 150 and h >= 150, (w, h)
    assert panel.canvas.width() <= panel.scroll.viewport().width()
    layout_w = panel.canvas.ci.boundingRect().width()
    assert layout_w <= panel.canvas.width() + 1  # nothing laid out past the right edge
    assert panel.scroll.verticalScrollBar().maximum() > 0  # it scrolls instead
    assert not panel.results.isVisible()  # the file table appears once a file is predicted
