"""Kernel warm-up (``engine.api.warm_up``) in a background thread with progress signals."""

from __future__ import annotations

from PySide6.QtCore import QThread, Signal

from engine import api


class WarmUp(QThread):
    progress = Signal(int, int)
    done = Signal(str)

    def __init__(self, doc: dict | None, parent=None) -> None:
        super().__init__(parent)
        self.doc = doc

    def run(self) -> None:
        try:
            count = api.warm_up(self.doc, lambda d, t: self.progress.emit(int(d), int(t)))
        except Exception as exc:  # noqa: BLE001 (a warm-up failure must not stop the editor)
            self.done.emit(f"kernel warm-up failed: {exc}")
            return
        self.done.emit(f"{count} kernels ready")
