"""Train the char-GPT's PyTorch twin on exactly Wiregrad's batches and schedule, and record its
validation curve beside a Wiregrad run's metrics (the learning comparison in docs/char_gpt.md).

    python bench/gpt_twin_curve.py --steps 5000 --wiregrad-metrics RUN.jsonl \
        --out bench/gpt_curves.json

The twin starts from Wiregrad's initial weights (same seed), sees the same batch sequence, and
evaluates on the same validation windows at the same steps.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    import torch

    from engine.bench.gpt_twin import build_twin, twin_eval, twin_optimizer, twin_step
    from engine.data.datasets import eval_batches_for
    from engine.graphs import presets
    from engine.train.trainer import Trainer

    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--wiregrad-metrics", help="metrics JSONL of `wiregrad train char_gpt`")
    ap.add_argument("--out", default="bench/gpt_curves.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    doc, _ = presets.load("char_gpt")
    trainer = Trainer(doc, steps=args.steps)
    model = build_twin(doc, {**trainer.params, **trainer.state}, "float32")
    opt, sched = twin_optimizer(model, trainer.graph.optimizer_params, trainer.schedule)
    batcher = next(iter(trainer.batchers.values()))
    dataset = next(iter(trainer.graph.datasets.values()))
    every, batches = trainer.settings["eval_every"], trainer.settings["eval_batches"]
    curve, start = [], time.perf_counter()
    for step in range(1, args.steps + 1):
        twin_step(model, opt, sched, batcher.next(), trainer.clip_norm)
        if step % every == 0 or step == args.steps:
            val = twin_eval(model, eval_batches_for(dataset, 12, batches))
            curve.append({"step": step, "val_loss": val, "wall": time.perf_counter() - start})
            print(f"twin step {step}: val_loss {val:.4f}", flush=True)
    ours = []
    if args.wiregrad_metrics:
        for line in Path(args.wiregrad_metrics).read_text().splitlines():
            rec = json.loads(line)
            if rec["kind"] == "eval":
                ours.append({"step": rec["step"], "val_loss": rec["val_loss"],
                             "wall": rec["wall"]})
    result = {
        "command": "python " + " ".join(sys.argv),
        "steps": args.steps, "threads": args.threads,
        "machine": {"python": platform.python_version(), "processor": platform.processor(),
                    "torch": torch.__version__},
        "torch_twin": curve, "wiregrad": ours,
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
