"""Bench probe: training steps per second of ``wiregrad train`` (the CLI's trainer at its
default threads), for comparison with the editor's worker (``bench/ui_latency.py``).

``python -m engine.bench.train_rate START GRAPH SECONDS`` trains GRAPH (a preset name or a
document path) for three warm-up steps, then for SECONDS, and prints one JSON line
``{"steps", "seconds", "steps_per_s", "split", "cpu_s"}`` (cpu_s: the process's CPU seconds
over the measured steps, all threads).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> None:
    graph, seconds = argv[2], float(argv[3])
    from engine.graphs import presets
    from engine.train.trainer import Trainer

    if Path(graph).suffix == ".json":
        from engine.core import document

        path = Path(graph)
        doc = document.load(path)
    else:
        doc, path = presets.load(graph)
    trainer = Trainer(doc, base_dir=path.parent, steps=10_000_000)
    for _ in range(3):  # compile, decide the batch split
        trainer.train_step()
    steps, t0, cpu0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds:
        trainer.train_step()
        steps += 1
    took, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    print(json.dumps({"steps": steps, "seconds": took, "steps_per_s": steps / took,
                      "split": trainer.split_note, "cpu_s": cpu}))


if __name__ == "__main__":
    main(sys.argv)
