"""Whether a widget is on screen, for the training UI's live views: a dock tabified behind
another (the Debugger behind the Inspector, as the editor opens) stays ``isVisible()`` in
Qt 6 while nothing of it is shown, so what it would show need not be computed or drawn."""

from __future__ import annotations

from PySide6.QtWidgets import QWidget


def on_screen(widget: QWidget) -> bool:
    """True when some of *widget* can be seen: shown, and not behind another dock's tab."""
    return widget.isVisible() and not widget.visibleRegion().isEmpty()
