"""The application closes the warm spare training worker when it quits (issue 13 §4:
``session.shutdown_pool`` is called, not dead code)."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QObject, Signal

pytestmark = pytest.mark.gui


class FakeHandle:
    def __init__(self) -> None:
        self.closed = False

    def alive(self) -> bool:
        return not self.closed

    def close(self, timeout: float = 0.0) -> None:
        self.closed = True


class FakeApp(QObject):
    aboutToQuit = Signal()  # noqa: N815 (Qt's name)


def test_quitting_closes_the_idle_worker_pool(qapp, monkeypatch):
    from nodegraph import app as editor_app
    from nodegraph.training import session

    spare = FakeHandle()
    monkeypatch.setattr(session, "_idle_workers", [spare])
    fake = FakeApp()
    editor_app.close_workers_on_quit(fake)
    assert not spare.closed
    fake.aboutToQuit.emit()
    assert spare.closed and session._idle_workers == []
