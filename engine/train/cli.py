"""``wiregrad train`` and ``wiregrad evaluate``: the trainer driven from the command line."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from engine.base import paths
from engine.base.errors import NonFiniteError, WiregradError


def _threads(n: int | None):
    from engine.base.runtime import thread_limits

    if n and n < 1:
        raise WiregradError("--threads must be at least 1")
    return thread_limits(n or None)


def _doc_weights(doc: dict, doc_path: Path, explicit: str | None) -> dict | None:
    from engine.base.io import model_weights

    if explicit:
        return model_weights(explicit)
    ref = doc.get("weights")
    if not ref:
        return None
    path = (doc_path.parent / ref["path"]).resolve()
    if not path.is_file():
        raise WiregradError(f"the document's weights file {path} is missing", field="weights")
    return model_weights(path)


def _run_folder(args: argparse.Namespace, doc: dict) -> Path:
    if args.out:
        return Path(args.out)
    name = (doc.get("meta", {}).get("name") or "run").lower().replace(" ", "_")[:40]
    return paths.runs_dir() / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def train_command(args: argparse.Namespace) -> int:
    from engine.base.io import model_weights
    from engine.graphs import presets
    from engine.train.checkpoint import (
        CheckpointManager,
        checkpoint_settings,
        restore,
    )
    from engine.train.trainer import Trainer

    doc, doc_path = presets.load(args.graph)
    weights = model_weights(args.weights) if args.weights else None
    seed, dtype = args.seed, args.dtype
    if args.resume:  # a resumed run continues with the seed and precision it was trained with
        saved = checkpoint_settings(args.resume)
        seed = saved["seed"] if seed is None else seed
        dtype = dtype or saved["dtype"]
    with _threads(args.threads):
        trainer = Trainer(doc, base_dir=doc_path.parent, steps=args.steps, seed=seed,
                          dtype=dtype, weights=weights, anomaly=args.anomaly,
                          patience=args.patience)
        if args.resume:
            restore(trainer, args.resume)
        folder = _run_folder(args, doc)
        manager = CheckpointManager(folder)
        metrics = _open_metrics(args.metrics) if args.metrics else None
        try:
            with _stop_on_sigint(trainer):
                return _loop(trainer, manager, metrics, args.quiet)
        finally:
            if metrics:
                metrics.close()


def _open_metrics(path: str):
    try:  # line-buffered: a live viewer (or a crash) sees every finished record
        return open(path, "a", encoding="utf-8", buffering=1)
    except OSError as exc:
        raise WiregradError(f"cannot write the metrics file {path}: {exc.strerror or exc}",
                            field="--metrics") from None


@contextmanager
def _stop_on_sigint(trainer):
    """The first Ctrl-C asks the trainer to stop after the step in progress (so the checkpoint
    written on the way out is consistent); a second one interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        signal.signal(signal.SIGINT, previous)
        trainer.stop("interrupted")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _loop(trainer, manager, metrics, quiet: bool) -> int:
    from tqdm import tqdm

    bar = tqdm(total=trainer.total_steps, initial=trainer.step, disable=quiet, unit="step",
               dynamic_ncols=True, file=sys.stderr)
    last_eval: dict = {}
    reason = None
    told_split = False
    try:
        for record in trainer.run(manager):
            if not (told_split or quiet) and trainer.split_note.startswith("split"):
                bar.write(f"steps {trainer.split_note}, one per core (--threads 1: unsplit)",
                          file=sys.stderr)
                told_split = True
            if record["kind"] == "done":
                reason = record["reason"]
            if metrics is not None and record["kind"] in ("train", "eval", "hparams"):
                metrics.write(json.dumps(record) + "\n")
            if record["kind"] == "train":
                bar.update(1)
                bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}",
                                refresh=False)
            elif record["kind"] == "eval":
                last_eval = record
                shown = {k: round(v, 4) for k, v in record.items()
                         if isinstance(v, float) and k != "wall"}
                bar.write(f"step {record['step']}: " + ", ".join(f"{k} {v}"
                                                                for k, v in shown.items()))
    except KeyboardInterrupt:  # a second Ctrl-C: the step in progress may be half applied
        bar.close()
        print(f"interrupted again during step {trainer.step + 1}; no checkpoint written "
              f"(earlier ones, if any, are in {manager.folder})", file=sys.stderr)
        return 130
    except NonFiniteError:
        bar.close()
        raise
    bar.close()
    manager.save(trainer)
    path = manager.save_model(trainer)
    if reason == "interrupted":
        print(f"interrupted at step {trainer.step}; checkpoint and weights in {path.parent} "
              f"(continue with --resume {manager.folder / 'last.safetensors'})",
              file=sys.stderr)
        return 130
    summary = {k: v for k, v in last_eval.items() if k not in ("kind", "wall")}
    print(f"trained {trainer.step} steps; weights: {path}" + (f"; {summary}" if summary else ""))
    return 0


def evaluate_command(args: argparse.Namespace) -> int:
    from engine.graphs import presets
    from engine.train.trainer import Trainer

    doc, doc_path = presets.load(args.graph)
    weights = _doc_weights(doc, doc_path, args.weights)
    if weights is None:
        raise WiregradError("no weights to evaluate: pass --weights or open a document that "
                            "references its weights")
    trainer = Trainer(doc, base_dir=doc_path.parent, weights=weights)
    result = trainer.evaluate(args.batches)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value:.6g}")
    return 0


__all__ = ["train_command", "evaluate_command", "NonFiniteError"]
