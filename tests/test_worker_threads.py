"""The editor's worker computes on every core (at a lower priority) rather than keeping a core
idle for the GUI: on a 2-core machine it uses both BLAS threads, so its trainer may split the
batch like ``wiregrad train`` does."""

from __future__ import annotations

import os

import pytest

from engine.base import runtime


@pytest.mark.parametrize("cores,expected", [(1, 1), (2, 2), (8, 8), (None, 1)])
def test_the_worker_uses_every_core(monkeypatch, cores, expected):
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    assert runtime.default_threads() == expected


def test_the_worker_lowers_its_priority_instead(monkeypatch):
    from engine import worker

    calls = []
    monkeypatch.setattr(os, "nice", lambda n: calls.append(n))
    monkeypatch.setattr(worker, "limit_threads", lambda t: calls.append(("threads", t)))

    class _Stop(Exception):
        """Ends the worker's main loop where the test has seen what it needs."""

    def _loop(self):
        raise _Stop

    monkeypatch.setattr(worker.Worker, "loop", _loop)
    monkeypatch.setattr(worker.Worker, "__init__", lambda self, conn: None)
    for key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(key, "")
    with pytest.raises(_Stop):
        worker.main(None, threads=2)
    assert calls[0] > 0 and calls[1] == ("threads", 2)
    assert os.environ["OPENBLAS_NUM_THREADS"] == "2"
