"""The worker's record traffic (issue 20: the editor trains as fast as the CLI): records go to
the editor in batches at most every ``FLUSH_S`` (each batch wakes the GUI, which takes CPU from
a batch part), while commands are still read every ``COMMAND_S`` (pause / step / stop answer as
quickly as before)."""

from __future__ import annotations

import itertools

from engine import worker


class _Conn:
    """Records what the worker sends; never has a command waiting."""

    def __init__(self) -> None:
        self.sent: list[dict] = []

    def send(self, msg: dict) -> None:
        self.sent.append(msg)

    def poll(self, timeout: float = 0.0) -> bool:
        return False


def _fake_clock(monkeypatch, tick: float) -> None:
    """perf_counter advances *tick* seconds per call: each training record takes one tick."""
    counter = itertools.count()
    monkeypatch.setattr(worker.time, "perf_counter", lambda: next(counter) * tick)


def _records():
    for step in itertools.count(1):
        yield {"kind": "train", "step": step}


def test_records_are_batched_for_flush_s_but_commands_read_every_command_s(monkeypatch):
    assert worker.FLUSH_S > worker.COMMAND_S
    _fake_clock(monkeypatch, 0.01)
    conn = _Conn()
    w = worker.Worker(conn)
    w.gen = _records()
    commands_read = 0
    for _ in range(20):  # 20 loop turns of COMMAND_S each: 2 s of training
        w.commands(0)
        commands_read += 1
        w.advance()
    batches = [m for m in conn.sent if m["kind"] == "records"]
    steps = [r["step"] for b in batches for r in b["records"]]
    assert steps == list(range(1, len(steps) + 1))  # nothing lost or reordered
    # every loop turn read the commands, but only every other one sent records
    assert commands_read == 20 and 8 <= len(batches) <= 11


def test_a_single_step_is_sent_at_once(monkeypatch):
    _fake_clock(monkeypatch, 0.001)
    conn = _Conn()
    w = worker.Worker(conn)
    w.gen = _records()
    w.advance(single=True)
    assert [m["kind"] for m in conn.sent] == ["records"]
    assert [r["step"] for r in conn.sent[0]["records"]] == [1]
