"""The editor's first Train on a fresh install: seconds from pressing Train to the first step
on screen (the first training record received), with an empty kernel cache.

``--warm-up`` opens the graph as the app does (the worker compiles its kernels while the user
edits) and waits ``--think`` seconds before pressing Train; without it Train is pressed on a
window that never warmed. Prints one JSON line and writes it to ``--out`` when given.

    QT_QPA_PLATFORM=offscreen python bench/editor_first_step.py --graph spiral_mlp --warm-up
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graph", default="spiral_mlp")
    parser.add_argument("--warm-up", action="store_true", help="warm while 'editing'")
    parser.add_argument("--think", type=float, default=5.0,
                        help="seconds between opening and Train with --warm-up")
    parser.add_argument("--keep-cache", action="store_true",
                        help="use the current kernel cache instead of an empty one")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    home = tempfile.mkdtemp(prefix="wiregrad-first-train-")
    os.environ["WIREGRAD_HOME"] = home
    if not args.keep_cache:
        os.environ["NUMBA_CACHE_DIR"] = str(Path(home) / "numba")  # the worker inherits it

    from PySide6.QtWidgets import QApplication

    from bench.ui_latency import spin
    from nodegraph.app import make_window

    app = QApplication.instance() or QApplication(sys.argv[:1])
    opened = time.perf_counter()
    win, error = make_window(args.graph, warm_up=args.warm_up)
    if error:
        raise SystemExit(error)
    win.show()
    if args.warm_up:
        spin(app, args.think)
    pressed = time.perf_counter()
    ready_at_press = bool(win.training.warmer.warmed)
    run = win.training.train(steps=1000)
    if run is None:
        raise SystemExit(f"training did not start: {win.training.errors}")
    while run.step < 1 and time.perf_counter() - pressed < 300:
        spin(app, 0.005)
        if win.training.session.state == "idle":
            raise SystemExit(f"training failed: {win.training.errors}")
    first = time.perf_counter() - pressed
    result = {"graph": args.graph, "warm_up": args.warm_up,
              "think_s": args.think if args.warm_up else 0.0,
              "empty_cache": not args.keep_cache, "train_to_first_step_s": first,
              "open_to_first_step_s": time.perf_counter() - opened,
              "warm_done_before_train": ready_at_press,
              "load_average": os.getloadavg(), "date": time.strftime("%Y-%m-%d %H:%M")}
    print(json.dumps(result))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    win.training.session.stop()
    win.training.shutdown()
    win.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
