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


def test_inspection_and_predictions_run_on_one_blas_thread(monkeypatch, tmp_path):
    """Beside the training steps, on one BLAS thread: with two, char-GPT's inspection took
    ~1.1 s on a busy 2-core host (one thread: ~0.2 s) and cut the editor's run to 0.2 steps/s."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from engine import worker
    from engine.graphs import presets
    from engine.insight import predictions

    def blas_threads() -> int:
        return max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")

    seen: list[tuple[str, int]] = []
    monkeypatch.setattr(worker, "inspect_trainer", lambda *a, **k: seen.append(
        ("inspect", blas_threads())) or {"step": 0, "edges": [], "detail": None})
    monkeypatch.setattr(predictions, "live_predictions", lambda *a, **k: seen.append(
        ("predictions", blas_threads())) or {"step": 0})
    sent: list[dict] = []

    class Conn:
        def send(self, msg: dict) -> None:
            sent.append(msg)

    w = worker.Worker(Conn())
    doc, path = presets.load("spiral_mlp")
    w.cmd_train({"doc": doc, "base_dir": str(path.parent), "run_dir": str(tmp_path),
                 "steps": 2})
    with threadpool_limits(2, user_api="blas"):
        assert blas_threads() == 2
        w.cmd_inspect({"node": None})
        w.cmd_predictions({})
        assert blas_threads() == 2  # restored for the training steps
    assert seen == [("inspect", 1), ("predictions", 1)]
    assert [m["kind"] for m in sent] == ["started", "inspection", "predictions"]


def test_stop_without_a_run_is_silent():
    """The pool sends 'stop' to every worker it takes back; one that only warmed kernels while
    the user edited must not leave an error for the next window to show."""
    from engine import worker
    from engine.graphs import presets

    sent: list[dict] = []

    class Conn:
        def send(self, msg: dict) -> None:
            sent.append(msg)

    w = worker.Worker(Conn())
    doc, path = presets.load("spiral_mlp")
    w.handle({"cmd": "warm", "doc": doc, "base_dir": str(path.parent), "key": "k"})
    w.handle({"cmd": "stop"})
    assert [m["kind"] for m in sent] == ["warmed"] and sent[0]["ok"], sent
