"""``run_editor``: the Qt application behind ``wiregrad`` and ``wiregrad GRAPH``."""

from __future__ import annotations

import sys

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from engine import api
from engine.api import document, errors
from nodegraph import dialogs, theme
from nodegraph.files import load_graph
from nodegraph.mainwindow import MainWindow

DEFAULT_PRESETS = ("char_gpt", "spiral_mlp")


def default_graph() -> str | None:
    names = {p["name"] for p in api.list_presets()}
    return next((n for n in DEFAULT_PRESETS if n in names), None)


def make_window(graph: str | None, warm_up: bool = False) -> tuple[MainWindow, str | None]:
    """A window on *graph* (path or preset), the default preset, or an empty graph.
    Returns the window and an error message when *graph* could not be opened."""
    error = None
    doc, path, template = document.new_document(), None, False
    target = graph or default_graph()
    if target is not None:
        try:
            doc, path, template = load_graph(target)
        except (errors.WiregradError, OSError, ValueError) as exc:
            error = str(exc)
    win = MainWindow(doc, path, template, warm_up=warm_up)
    return win, error


def collect_garbage_in_the_gui_thread(app) -> None:
    """Python's cycle collector only on a timer in the GUI thread (pyqtgraph's
    ``GarbageCollector``). A closed window's widgets become cyclic garbage; collected by
    whatever thread happens to allocate — e.g. a sampling thread — Qt objects would be
    destroyed off the GUI thread and crash the editor."""
    from pyqtgraph.util.garbage_collector import GarbageCollector

    if getattr(app, "_wiregrad_gc", None) is None:
        app._wiregrad_gc = GarbageCollector(interval=1.0)


def close_workers_on_quit(app) -> None:
    """The warm spare training worker (``session.release_worker``) is closed when the
    application quits, not left to the interpreter's exit."""
    from nodegraph.training.session import shutdown_pool

    app.aboutToQuit.connect(shutdown_pool)


def run_editor(graph: str | None) -> int:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Wiregrad")
    theme.apply(app)
    collect_garbage_in_the_gui_thread(app)
    close_workers_on_quit(app)
    win, error = make_window(graph, warm_up=True)
    win.show()
    QTimer.singleShot(0, win.view.fit)
    if error:
        QTimer.singleShot(0, lambda: dialogs.error(win, "Cannot open graph", error))
    QTimer.singleShot(50, win.files.offer_recovery)
    return app.exec()
