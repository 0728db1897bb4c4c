"""The char-GPT step against its PyTorch twin in CPU time on one thread (a busy host).

    python bench/gpt_cpu.py [--rounds N] [--per N] [--repeat N] [--layers L --width C]

Both sides run unsplit on one thread (BLAS and torch limited to one), timed with
``time.thread_time()`` in alternating blocks (engine.bench.cnn_cpu.alternate_cpu); prints the
medians, minima and the ratio of the medians, once per repeat. A one-thread CPU-time gain
carries over to the two-thread split step, which runs the same ops on half the rows each.
"""

from __future__ import annotations

import argparse
import statistics

from engine.bench.cnn_cpu import alternate_cpu


def pair(layers: int | None, width: int | None):
    """The trainer (unsplit) and the twin's step function for char_gpt (or a wider one)."""
    import torch

    from engine.bench import benchmark as B
    from engine.graphs import builders, presets

    if layers:
        doc = builders.char_gpt(layers=layers, heads=8, width=width or 256, block=64,
                                batch=12)
    else:
        doc = presets.load("char_gpt")[0]
    trainer, torch_step = B._gpt_pair(doc)
    trainer._split_request, trainer._split_decided = 1, True  # one unsplit thread
    torch.set_num_threads(1)
    return trainer, torch_step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--per", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--layers", type=int, default=0)
    ap.add_argument("--width", type=int, default=0)
    a = ap.parse_args()
    from threadpoolctl import threadpool_limits

    trainer, torch_step = pair(a.layers, a.width)
    trainer.train_step()  # loads every BLAS library first: the limits apply to those loaded
    torch_step()
    with threadpool_limits(limits=1):
        ratios = []
        for _ in range(a.repeat):
            res = alternate_cpu({"w": trainer.train_step, "t": torch_step}, a.rounds, a.per)
            ratios.append(res["w"][0] / res["t"][0])
            print(f"wiregrad {res['w'][0]:7.2f} ms (min {res['w'][1]:.2f})   torch "
                  f"{res['t'][0]:7.2f} ms (min {res['t'][1]:.2f})   ratio {ratios[-1]:.3f}"
                  "   (CPU time, 1 thread)", flush=True)
        print(f"median ratio {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
