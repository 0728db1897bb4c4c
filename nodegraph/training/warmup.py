"""Kernel warm-up while the user edits: the engine worker compiles the open graph's kernels
before Train is pressed, so the first step does not wait for Numba.

The editor knows the graph long before training starts. Once enabled (the app enables it; the
tests' windows leave it off), :class:`KernelWarmer` waits for the document to settle
(:data:`DEBOUNCE_MS` after the last validated change or a newly opened document), then sends
the worker a ``warm`` command with the document (``engine.worker.Worker.cmd_warm``: one
throwaway training step, so exactly the kernels, dtypes and layouts of the run). The work
happens in the worker process at its lowered priority, never in the GUI's; Train pressed
meanwhile simply queues behind that one step. A graph that cannot train yet is skipped
quietly, and the same document is not warmed twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer, Signal

DEBOUNCE_MS = 800


class KernelWarmer(QObject):
    """Debounced ``warm`` requests for the open document (off until :meth:`enable`)."""

    requested = Signal(str)  # the document's key, when a warm-up is sent
    done = Signal(str)  # a status line: "kernels ready in 1.2 s" or why nothing was warmed

    def __init__(self, controller, session, snapshot: Callable[[], dict],
                 base_dir: Callable[[], str | None], parent=None) -> None:
        super().__init__(parent)
        self.controller, self.session = controller, session
        self.snapshot, self.base_dir = snapshot, base_dir
        self.enabled = False
        self.pending: str | None = None  # key of the request the worker has not answered
        self.warmed: set[str] = set()  # keys of the documents warmed in this worker
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(DEBOUNCE_MS)
        self.timer.timeout.connect(self.request)
        controller.validated.connect(lambda _result: self.schedule())
        controller.document_replaced.connect(self.schedule)
        session.warmed.connect(self.on_warmed)
        session.failed.connect(lambda msg: msg.get("crashed") and self.worker_replaced())

    def enable(self, now: bool = True) -> None:
        """Start warming (at once when *now*, else after the debounce)."""
        self.enabled = True
        if now:
            self.request()
        else:
            self.schedule()

    def schedule(self) -> None:
        """The document changed: warm it once it has been still for DEBOUNCE_MS."""
        if self.enabled:
            self.timer.start()

    def request(self) -> bool:
        """Send the current document to the worker; False when skipped (a run is active, the
        document has validation errors, it is already warmed or being warmed)."""
        if not self.enabled or self.session.active:
            return False
        validation = self.controller.validation or {}
        if any(d.get("severity") == "error" for d in validation.get("diagnostics", [])):
            return False
        doc = self.snapshot()
        key = document_key(doc)
        if key in self.warmed or key == self.pending:
            return False
        if not self.session.warm(doc, self.base_dir(), key):
            return False
        self.pending = key
        self.requested.emit(key)
        return True

    def on_warmed(self, msg: dict) -> None:
        key = msg.get("key")
        if key == self.pending:
            self.pending = None
        if msg.get("ok") and key:
            self.warmed.add(key)
            self.done.emit(f"kernels ready in {float(msg.get('seconds', 0.0)):.1f} s")
        else:
            self.done.emit(f"kernel warm-up skipped: {msg.get('message', '')}")

    def worker_replaced(self) -> None:
        """A new worker process has none of the kernels in memory (the disk cache stays)."""
        self.warmed.clear()
        self.pending = None


def document_key(doc: dict) -> str:
    """A digest of the whole document (graph, parameters, training settings)."""
    return hashlib.sha1(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()
