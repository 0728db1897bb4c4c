"""Bench probe: training steps per second of ``wiregrad train`` (the CLI's trainer at its
default threads), for comparison with the editor's worker (``bench/ui_latency.py``).

``python -m engine.bench.train_rate START GRAPH SECONDS [loop|steps] [STEPS]`` trains GRAPH (a
preset name or a document path) for three warm-up steps, then for SECONDS — or, with STEPS,
for exactly STEPS steps (SECONDS then only caps the window) — and prints one JSON line
``{"steps", "seconds", "steps_per_s", "split", "cpu_s", "evals", "loop"}`` (cpu_s: the
process's CPU seconds over the measured steps, all threads; evals: evaluations in the window).
A window of STEPS steps, a multiple of the graph's ``eval_every``, holds the same number of
evaluations wherever it starts, so the editor's and the CLI's windows do the same work; a
window of SECONDS holds one more or one fewer at its edges (char_gpt: 0 or 1 in 10 s, each
worth 10–35 steps).

``loop`` (the default) runs the trainer's loop as ``wiregrad train`` and the editor's worker
do — its evaluations every ``eval_every`` steps and its checkpoints into a temporary folder
included (char-GPT's 20 evaluation batches every 250 steps cost ~0.7–2.3 s CPU each: as much
as 10–35 steps, so a window without one and a window with one differ by up to a third).
``steps`` times ``Trainer.train_step`` alone, as this probe did before session 7.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def _train_records(trainer, folder: str, loop: bool) -> Iterator[dict]:
    """The trainer's records: its whole loop (evaluations, checkpoints) or bare steps."""
    if not loop:
        while True:
            yield trainer.train_step()
    from engine.train.checkpoint import CheckpointManager

    yield from trainer.run(CheckpointManager(Path(folder)))


def main(argv: list[str]) -> None:
    graph, seconds = argv[2], float(argv[3])
    loop = (argv[4] if len(argv) > 4 else "loop") == "loop"
    want = int(argv[5]) if len(argv) > 5 else 0  # 0: a time window
    from engine.base import heap
    from engine.graphs import presets
    from engine.train.trainer import Trainer

    heap.keep_freed_memory()  # as `wiregrad train` does

    if Path(graph).suffix == ".json":
        from engine.core import document

        path = Path(graph)
        doc = document.load(path)
    else:
        doc, path = presets.load(graph)
    trainer = Trainer(doc, base_dir=path.parent, steps=10_000_000)
    with tempfile.TemporaryDirectory(prefix="wiregrad-train-rate-") as folder:
        records = _train_records(trainer, folder, loop)
        while trainer.step < 3:  # compile, decide the batch split
            next(records)
        steps, evals, t0, cpu0 = 0, 0, time.perf_counter(), time.process_time()
        while time.perf_counter() - t0 < seconds and not (want and steps >= want):
            kind = next(records)["kind"]
            steps += kind == "train"
            evals += kind == "eval"
        took, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    print(json.dumps({"steps": steps, "seconds": took, "steps_per_s": steps / took,
                      "split": trainer.split_note, "cpu_s": cpu, "evals": evals,
                      "loop": "run" if loop else "train_step"}))


if __name__ == "__main__":
    main(sys.argv)
