"""The editor's end of the engine worker: a QObject that sends commands and turns the
worker's plain-data messages into signals, without ever blocking the event loop.

The pipe is drained (for at most a few milliseconds at a time) when it has something to read:
a QSocketNotifier on its descriptor wakes the event loop only then, where the platform allows
(a POSIX socket pair); a QTimer every :data:`SLOW_PUMP_MS` notices a worker that died. Elsewhere
the timer drains it every :data:`PUMP_MS`. Polling at 30 ms woke the GUI 33 times a second
while the worker sends 5 batches of records, each wake-up taking CPU from the worker's batch
parts. Warm workers are kept in a small process-wide pool, so the next run (in this window or
another) skips the start-up and the kernel compilation.
"""

from __future__ import annotations

import contextlib
import os

from PySide6.QtCore import QObject, QSocketNotifier, QTimer, Signal

from engine import api

PUMP_MS = 30  # without a notifier
SLOW_PUMP_MS = 1000  # with one: only to notice a worker that died
_idle_workers: list = []


def acquire_worker():
    """A live idle worker from the pool, or a new one."""
    while _idle_workers:
        handle = _idle_workers.pop()
        if handle.alive():
            return handle
    return api.start_worker()


def release_worker(handle) -> None:
    """Keep *handle* warm for the next session (one spare at most)."""
    if handle is None or not handle.alive():
        return
    if _idle_workers:
        handle.close(timeout=0.5)
    else:
        handle.send("stop")  # a run left behind must not keep computing
        _idle_workers.append(handle)


def shutdown_pool() -> None:
    while _idle_workers:
        _idle_workers.pop().close(timeout=1.0)


class TrainingSession(QObject):
    """One window's training session. States: idle, starting, running, paused, stopping."""

    started = Signal(dict)
    records = Signal(object)  # a list of plain records; as ``list``, PySide converted each
    # record to a QVariantMap and back at every emit (0.26 ms per 50 records)
    state_changed = Signal(str)
    finished = Signal(dict)
    failed = Signal(dict)  # {"where", "message", "node", "traceback", "crashed"?}
    inspected = Signal(dict)
    saved = Signal(dict)
    gradchecked = Signal(dict)
    predicted = Signal(dict)
    warmed = Signal(dict)  # {"ok", "message", "seconds", "key"}

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.handle = None
        self.state = "idle"
        self.has_trainer = False  # the worker holds a (live or finished) run to inspect
        self._run_id = 0
        self.timer = QTimer(self)
        self.timer.setInterval(PUMP_MS)
        self.timer.timeout.connect(self.pump)
        self.notifier: QSocketNotifier | None = None
        self._notified = None  # the handle the notifier watches

    # ------------------------------------------------------------------ state

    @property
    def active(self) -> bool:
        return self.state in ("starting", "running", "paused", "stopping")

    @property
    def pid(self) -> int | None:
        return self.handle.pid if self.handle is not None else None

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.state_changed.emit(state)

    def _ensure_worker(self):
        if self.handle is None or not self.handle.alive():
            self.handle = acquire_worker()
        if self._notified is not self.handle:
            self._watch(self.handle)
        if not self.timer.isActive():
            self.timer.start()
        return self.handle

    def _watch(self, handle) -> None:
        """Pump when *handle*'s pipe is readable (a notifier), else every PUMP_MS."""
        self._unwatch()
        self._notified = handle
        fd = _socket_fd(handle.conn)
        if fd is None:
            self.timer.setInterval(PUMP_MS)
            return
        self.notifier = QSocketNotifier(fd, QSocketNotifier.Type.Read, self)
        self.notifier.activated.connect(self.pump)
        self.timer.setInterval(SLOW_PUMP_MS)

    def _unwatch(self) -> None:
        if self.notifier is not None:
            self.notifier.setEnabled(False)
            self.notifier.deleteLater()
            self.notifier = None
        self._notified = None

    # ------------------------------------------------------------------ commands

    def train(self, doc: dict, base_dir: str | None, run_dir: str, *, steps: int | None = None,
              seed: int | None = None, resume: str | None = None, weights: str | None = None,
              paused: bool = False) -> int:
        """Start a run; returns its id (records arrive through :attr:`records`)."""
        self._run_id += 1
        handle = self._ensure_worker()
        self.has_trainer = False
        self._set_state("starting")
        ok = handle.send("train", doc=doc, base_dir=base_dir, run_dir=run_dir, steps=steps,
                         seed=seed, resume=resume, weights=weights, paused=paused,
                         run_id=self._run_id)
        if not ok:
            self.pump()
        return self._run_id

    def _send(self, cmd: str, **fields) -> bool:
        if self.handle is None:
            return False
        return self.handle.send(cmd, **fields)

    def pause(self) -> None:
        if self.state == "running":
            self._send("pause")

    def resume(self) -> None:
        if self.state == "paused":
            self._send("resume")

    def step(self) -> None:
        if self.state in ("running", "paused"):
            self._send("step")

    def stop(self) -> None:
        if self.state in ("starting", "running", "paused"):
            self._set_state("stopping")
            self._send("stop")

    def set_node_params(self, nodes: dict[str, dict]) -> None:
        """Hot edits for the live run: ``{node id: {param: value}}`` (any node's hot params)."""
        if self.active and nodes:
            self._send("set_hparams", nodes=nodes)

    def save_checkpoint(self) -> bool:
        return self.has_trainer and self._send("save_checkpoint")

    def save_weights(self, request: str | None = None) -> bool:
        return self.has_trainer and self._send("save_weights", request=request)

    def save_bundle(self, path: str) -> bool:
        return self.has_trainer and self._send("save_bundle", path=path)

    def inspect(self, node: str | None = None) -> bool:
        return self.has_trainer and self._send("inspect", node=node)

    def predictions(self) -> bool:
        """Ask for the Predictions tab's data (current weights, validation split)."""
        return self.has_trainer and self._send("predictions")

    def warm(self, doc: dict, base_dir: str | None, key: str) -> bool:
        """Have the worker (started now if need be) compile *doc*'s kernels before Train is
        pressed; False (nothing sent) while a run is active."""
        if self.active:
            return False
        return self._ensure_worker().send("warm", doc=doc, base_dir=base_dir, key=key)

    def gradcheck(self, doc: dict, node: str | None, base_dir: str | None) -> None:
        self._ensure_worker().send("gradcheck", doc=doc, node=node, base_dir=base_dir)

    def kill_worker(self) -> None:
        """Kill the worker process (tests; a stuck worker)."""
        if self.handle is not None:
            self.handle.kill()

    def shutdown(self) -> None:
        self.timer.stop()
        self._unwatch()
        if self.handle is not None:
            release_worker(self.handle)
            self.handle = None
        self._set_state("idle")

    # ------------------------------------------------------------------ messages

    def pump(self) -> None:
        if self.handle is None:
            return
        batch: list[dict] = []
        messages = self.handle.poll()
        if getattr(self.handle, "eof", False) and self.notifier is not None:
            self.notifier.setEnabled(False)  # a closed pipe stays readable: the timer notices
        for msg in messages:
            if msg["kind"] == "records":
                batch.extend(msg["records"])
                continue
            if batch:
                self.records.emit(batch)
                batch = []
            self._dispatch(msg)
        if batch:
            self.records.emit(batch)

    def _dispatch(self, msg: dict) -> None:
        kind = msg["kind"]
        if kind == "started":
            self.has_trainer = True
            self._set_state("running")
            self.started.emit(msg)
        elif kind == "state":
            if self.state != "stopping":
                self._set_state(msg["state"])
        elif kind == "done":
            self._set_state("idle")
            self.finished.emit(msg)
        elif kind == "error":
            if msg.get("where") == "train" or self.state == "starting":
                self._set_state("idle")
            self.failed.emit(msg)
        elif kind == "crashed":
            self.handle = None
            self.has_trainer = False
            self.timer.stop()
            self._unwatch()
            self._set_state("idle")
            self.failed.emit({**msg, "where": "worker", "node": None, "crashed": True})
        elif kind == "inspection":
            self.inspected.emit(msg)
        elif kind == "saved":
            self.saved.emit(msg)
        elif kind == "gradcheck":
            self.gradchecked.emit(msg)
        elif kind == "predictions":
            self.predicted.emit(msg)
        elif kind == "warmed":
            self.warmed.emit(msg)


def _socket_fd(conn) -> int | None:
    """The descriptor of *conn* when it is a socket a QSocketNotifier can watch (a POSIX
    ``multiprocessing`` pipe: a socket pair); None elsewhere (Windows' named pipes)."""
    if os.name != "posix":
        return None
    with contextlib.suppress(OSError, ValueError, AttributeError):
        return conn.fileno()
    return None
