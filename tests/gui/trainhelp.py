"""Helpers for the training-UI tests: wait for the worker without sleeping blindly."""

from __future__ import annotations

import copy

WAIT_MS = 90_000  # a cold worker compiles its kernels first


def wait_state(qtbot, win, *states: str, timeout: int = WAIT_MS) -> None:
    qtbot.waitUntil(lambda: win.training.session.state in states, timeout=timeout)


def wait_done(qtbot, win, run, timeout: int = WAIT_MS) -> None:
    """Until the run ended (finished / stopped / failed / crashed) and the session is idle."""
    qtbot.waitUntil(lambda: win.training.session.state == "idle"
                    and run.status not in ("starting", "running", "paused"), timeout=timeout)


def nan_graph(doc: dict) -> dict:
    """The spiral MLP with a log between fc1 and the ReLU: fc1 has negative outputs → NaN."""
    doc = copy.deepcopy(doc)
    doc["nodes"].append({"id": "bad_log", "type": "log", "params": {},
                         "ui": {"pos": [430, 140]}})
    for e in doc["edges"]:
        if e["src"] == {"node": "fc1", "port": "y"} and e["dst"]["node"] == "act1":
            e["dst"] = {"node": "bad_log", "port": "x"}
    doc["edges"].append({"src": {"node": "bad_log", "port": "out"},
                         "dst": {"node": "act1", "port": "x"}})
    return doc
