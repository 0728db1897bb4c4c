"""The editor reads the worker's pipe when it has something to say (issue 20: the editor trains
as fast as the CLI): a socket notifier wakes the event loop only for a message, instead of a
30 ms polling timer that woke it 33 times a second and took CPU from the worker's batch parts;
a slow timer still notices a worker that died."""

from __future__ import annotations

import os

import pytest

from nodegraph.training import session as session_mod
from nodegraph.training.session import TrainingSession

pytestmark = [pytest.mark.gui,
              pytest.mark.skipif(os.name != "posix", reason="a socket pair on POSIX only")]


def test_messages_arrive_through_the_notifier_and_a_dead_worker_is_noticed(qtbot):
    session = TrainingSession()
    seen: list[str] = []
    failed: list[dict] = []
    session.failed.connect(failed.append)
    dispatch = session._dispatch
    session._dispatch = lambda msg: seen.append(msg["kind"]) or dispatch(msg)
    handle = session._ensure_worker()
    try:
        assert session.notifier is not None and session.notifier.isEnabled()
        assert session.timer.interval() == session_mod.SLOW_PUMP_MS > session_mod.PUMP_MS
        session.timer.stop()  # only the notifier reads the pipe now
        handle.send("ping")
        qtbot.waitUntil(lambda: "pong" in seen, timeout=30_000)
        session.timer.start()
        handle.kill()
        qtbot.waitUntil(lambda: bool(failed), timeout=10_000)
        assert failed[0]["crashed"] and session.handle is None and session.notifier is None
    finally:
        session.shutdown()
        handle.kill()
