"""Benchmark probe: process start → the main window on the char-GPT drawn once.

Run by ``wiregrad bench`` in a fresh process (``sys.argv[1]`` is the parent's start time);
prints one JSON line. Lives in nodegraph so the engine never imports Qt.
"""

from __future__ import annotations

import json
import os
import sys
import time


def main() -> None:
    from PySide6.QtWidgets import QApplication

    from nodegraph import theme
    from nodegraph.app import make_window

    app = QApplication(sys.argv[:1])
    theme.apply(app)
    win, _error = make_window("char_gpt")
    win.resize(1440, 900)
    win.show()
    app.processEvents()
    image = win.grab()  # renders the whole window once
    print(json.dumps({"s": time.time() - float(sys.argv[1]), "null": image.isNull()}),
          flush=True)
    os._exit(0)  # skip Qt's teardown (it can crash offscreen after the measurement)


if __name__ == "__main__":
    main()
