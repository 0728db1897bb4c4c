"""A closed editor window frees everything it made: no widget, menu or plot outlives it."""

from __future__ import annotations

import gc

import pytest
from PySide6.QtCore import QEvent
from PySide6.QtWidgets import QApplication

pytestmark = pytest.mark.gui


def _flush() -> None:
    for _ in range(2):
        QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        gc.collect()


def test_a_closed_window_leaves_no_widgets_behind(qapp, dialogs, catalog):
    from nodegraph.files import load_graph
    from nodegraph.mainwindow import MainWindow

    _flush()
    before = len(QApplication.allWidgets())
    doc, path, template = load_graph("spiral_mlp")
    win = MainWindow(doc, path, template, warm_up=False, autosave=False, catalog=catalog)
    win.show()
    qapp.processEvents()
    made = len(QApplication.allWidgets()) - before
    assert made > 100  # the window, its docks, menus and the training plots
    win.close()
    win.deleteLater()
    del win
    _flush()
    left = len(QApplication.allWidgets())
    assert left == before, f"{left - before} of {made} widgets outlived the window"


def test_the_editor_collects_cycles_on_a_gui_thread_timer(qapp, qtbot):
    """Automatic collection is off (it could run in a sampling thread and destroy Qt objects
    there); the editor's timer collects in the GUI thread instead."""
    import weakref

    from nodegraph.app import collect_garbage_in_the_gui_thread

    class Node:
        """One link of a reference cycle."""

    collect_garbage_in_the_gui_thread(qapp)
    try:
        assert not gc.isenabled() and qapp._wiregrad_gc.timer.isActive()
        nodes = [Node() for _ in range(5 * gc.get_threshold()[0])]
        for a, b in zip(nodes, nodes[1:] + nodes[:1]):
            a.next = b  # one big cycle, unreachable once `nodes` goes
        probe = weakref.ref(nodes[0])
        del nodes, a, b
        assert probe() is not None
        qtbot.waitUntil(lambda: probe() is None, timeout=5000)
    finally:
        qapp._wiregrad_gc.timer.stop()
        qapp._wiregrad_gc = None
