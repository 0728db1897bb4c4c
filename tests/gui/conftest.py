"""Editor test helpers: windows without modal dialogs, and ways to drive the canvas."""

from __future__ import annotations

import gc

import pytest


class Dialogs:
    """Records every dialog the editor would show and answers it."""

    def __init__(self) -> None:
        self.errors: list[tuple[str, str]] = []
        self.unsaved = "discard"
        self.recover = "later"
        self.save_path: str | None = None
        self.asked: list[str] = []


@pytest.fixture
def dialogs(monkeypatch) -> Dialogs:
    from nodegraph import dialogs as dlg

    answers = Dialogs()
    monkeypatch.setattr(dlg, "error", lambda p, t, text: answers.errors.append((t, text)))
    monkeypatch.setattr(dlg, "ask_unsaved",
                        lambda p, n: answers.asked.append("unsaved") or answers.unsaved)
    monkeypatch.setattr(dlg, "ask_recover",
                        lambda p, d: answers.asked.append("recover") or answers.recover)
    monkeypatch.setattr(dlg, "save_path", lambda p, s="": answers.save_path)
    monkeypatch.setattr(dlg, "open_path", lambda p, f="": None)
    return answers


@pytest.fixture(autouse=True)
def delete_closed_widgets(qapp):
    """Collect garbage only in the GUI thread, as the editor does (``app.py``); after each
    test actually delete what pytest-qt closed with ``deleteLater`` (no event loop runs
    between tests) and collect the window's cycles here, never in a later test's thread."""
    gc.disable()
    yield
    from PySide6.QtCore import QEvent
    from PySide6.QtWidgets import QApplication

    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    gc.collect()
    gc.enable()


@pytest.fixture(scope="session")
def catalog_data():
    from engine import api

    return api.catalog(include_user_layers=False)


@pytest.fixture
def catalog(catalog_data):
    """A fresh Catalog per test (saving a layer reloads it) over the session's op data."""
    from nodegraph.editing.specs import Catalog

    return Catalog(catalog_data)


@pytest.fixture
def make_window(qtbot, qapp, dialogs, catalog):
    from nodegraph import theme
    from nodegraph.mainwindow import MainWindow

    theme.apply(qapp)

    def make(graph: str | None = None, size=(1440, 900)) -> MainWindow:
        from nodegraph.files import load_graph

        doc, path, template = load_graph(graph) if graph else (None, None, False)
        win = MainWindow(doc, path, template, warm_up=False, autosave=False, catalog=catalog)
        qtbot.addWidget(win)
        win.resize(*size)
        win.show()
        qtbot.waitExposed(win)
        win.view.fit()
        return win

    return make
