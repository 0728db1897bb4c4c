"""Bench probe: process start → the first finished training step of a preset.

``python -m engine.bench.first_step START [PRESET]`` (START: the parent's ``time.time()``
when it launched this process; PRESET: ``char_gpt`` by default, ``spiral_mlp`` for the
``first_step_spiral_*`` cases) prints one JSON line ``{"s": seconds, "step_s": seconds spent
in the first step, "cpu_s": this process's CPU seconds up to then}`` (a cold start's helper,
engine.kernels.precompile, is another process: its CPU time is not counted). Run by
``wiregrad bench`` with an empty and then a warm Numba cache.
"""

from __future__ import annotations

import json
import sys
import time


def main(argv: list[str]) -> None:
    start = float(argv[1])
    preset = argv[2] if len(argv) > 2 else "char_gpt"
    from engine.kernels import precompile

    precompile.prestart()  # as `wiregrad train` does: the cold-start helper starts now
    from engine.graphs import presets
    from engine.train.trainer import Trainer

    doc, path = presets.load(preset)
    trainer = Trainer(doc, base_dir=path.parent, steps=10)
    t0 = time.time()
    trainer.train_step()
    now = time.time()
    print(json.dumps({"s": now - start, "step_s": now - t0, "cpu_s": time.process_time()}))


if __name__ == "__main__":
    main(sys.argv)
