"""Screenshots of the main window with each preset, and auto-layout without overlaps."""

from __future__ import annotations

import itertools

import pytest
from guihelp import preset_names, save_screenshot

pytestmark = pytest.mark.gui


@pytest.mark.parametrize("name", preset_names())
def test_main_window_screenshot(make_window, name, tmp_path):
    win = make_window(name)
    win.view.fit()
    path = save_screenshot(win, f"editor-{name}", tmp_path)
    assert win.grab().width() >= 1000 and path.stat().st_size > 10_000


def _rects(win):
    nodes = {k: i.sceneBoundingRect().adjusted(2, 10, -10, -2)  # the body, not the badge
             for k, i in win.scene.nodes.items()}
    labels = {k: e.label_rect() for k, e in win.scene.edges.items() if e.label}
    return nodes, labels


@pytest.mark.parametrize("name", preset_names())
def test_auto_layout_leaves_no_overlaps(make_window, name, tmp_path):
    win = make_window(name)
    win.controller.auto_layout()
    nodes, labels = _rects(win)
    for (a, ra), (b, rb) in itertools.combinations(nodes.items(), 2):
        assert not ra.intersects(rb), f"nodes {a} and {b} overlap"
    for (a, ra), (b, rb) in itertools.combinations(labels.items(), 2):
        assert not ra.intersects(rb), f"labels of {a} and {b} overlap"
    for (a, ra), (b, rb) in itertools.product(labels.items(), nodes.items()):
        assert not ra.intersects(rb), f"label of {a} overlaps node {b}"
    win.view.fit()
    save_screenshot(win, f"editor-{name}-auto-layout", tmp_path)
    win.controller.stack.undo()
    assert win.controller.stack.index() == 0
