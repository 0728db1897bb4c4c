"""``wiregrad train`` and ``wiregrad evaluate``: the trainer driven from the command line."""

from __future__ import annotations

import argparse
import json
import re
import shlex
import signal
import sys
import threading
import time
import warnings
import zipfile
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from engine.base import paths
from engine.base.errors import NonFiniteError, WiregradError

if TYPE_CHECKING:
    from engine.train.trainer import EvalHook, Trainer

# the files CheckpointManager writes: a run folder holds them
CHECKPOINT_NAME = re.compile(r"(last|best|step-\d+)\.safetensors")


def _threads(n: int | None):
    from engine.base.runtime import thread_limits

    if n is not None and n < 1:
        raise WiregradError("--threads must be at least 1", field="--threads")
    return thread_limits(n or None)


def _is_bundle(path: Path) -> bool:
    """A ``.wgz`` model bundle (by name, or a zip holding a ``graph.json``)."""
    if path.suffix == ".wgz":
        return True
    try:
        with zipfile.ZipFile(path) as zf:
            return "graph.json" in zf.namelist()
    except (OSError, zipfile.BadZipFile, ValueError):
        return False


def weights_file(path: str, command: str) -> dict:
    """The arrays of a ``--weights`` file: a safetensors weights file or checkpoint. A model
    bundle is refused with what to do instead (it is a graph, not a weights file)."""
    from engine.base.io import model_weights

    if Path(path).is_file() and _is_bundle(Path(path)):
        raise WiregradError(
            f"{path} is a model bundle (.wgz: graph and weights in one file), not a weights "
            "file. --weights takes a .safetensors weights file or a checkpoint written by "
            f"`wiregrad train`; to use the bundle's own weights pass the bundle as the graph: "
            f"`wiregrad {command} {path}`", field="--weights")
    return model_weights(path)


def _doc_weights(doc: dict, doc_path: Path, explicit: str | None,
                 command: str = "evaluate") -> dict | None:
    from engine.base.io import model_weights

    if explicit:
        return weights_file(explicit, command)
    ref = doc.get("weights")
    if not ref:
        return None
    path = paths.contained(doc_path.parent, ref["path"], "weights.path")
    if not path.is_file():
        raise WiregradError(f"the document's weights file {path} is missing", field="weights")
    return model_weights(path)


def _announce_outside_files(doc: dict, doc_path: Path) -> None:
    """Say which data files the document reads from outside its own folder (issue 15.2)."""
    outside = paths.files_outside(doc, doc_path)
    if outside:
        print(f"note: {doc_path} reads data files outside its folder:\n  "
              + "\n  ".join(outside), file=sys.stderr)


def _run_folder(args: argparse.Namespace, doc: dict) -> Path:
    """``--out``; else, resuming, the checkpoint's own run folder; else a new run folder."""
    if args.out:
        return Path(args.out)
    if args.resume and Path(args.resume).is_dir():  # a run folder: its newest checkpoint
        return Path(args.resume)
    if args.resume and CHECKPOINT_NAME.fullmatch(Path(args.resume).name):
        return Path(args.resume).parent
    name = paths.safe_name(doc.get("meta", {}).get("name") or "run")
    runs = paths.runs_dir()
    return paths.contained(runs, f"{name}-{time.strftime('%Y%m%d-%H%M%S')}", "meta.name")


def _run_settings(args: argparse.Namespace) -> tuple[dict, list[str]]:
    """Steps, seed, dtype and patience for this run, and what to tell the user about them.

    A resumed run continues the checkpoint's run (its total steps, seed, precision and
    patience; the schedule comes back with the checkpoint); an option given explicitly wins
    and is reported.
    """
    from engine.train.checkpoint import checkpoint_settings

    chosen = {"steps": args.steps, "seed": args.seed, "dtype": args.dtype,
              "patience": args.patience}
    notes: list[str] = []
    if not args.resume:
        return chosen, notes
    saved = checkpoint_settings(args.resume)
    if args.seed is not None and args.seed != saved["seed"]:
        notes.append(f"--seed {args.seed} is ignored: a resumed run keeps its seed "
                     f"{saved['seed']} (data order and dropout masks follow it)")
    chosen["seed"] = saved["seed"]
    chosen["dtype"] = args.dtype or saved["dtype"]
    for key in ("steps", "patience"):
        given, own = chosen[key], saved[key]
        if given is None:
            chosen[key] = own
        elif own is not None and given != own:
            extra = " (the learning-rate schedule now ends there)" if key == "steps" else ""
            notes.append(f"--{key} {given} overrides the checkpoint's {own}{extra}")
    return chosen, notes


def train_command(args: argparse.Namespace,
                  eval_hooks: Callable[[dict], Sequence[EvalHook]] | None = None) -> int:
    """``wiregrad train``: exit 0 done, 2 bad input, 3 NaN guard, 130 interrupted.

    *eval_hooks* gives the document's evaluation hooks (metrics this stage cannot compute,
    such as a seq2seq graph's exact match: the face that calls this passes them in)."""
    from engine.kernels import precompile

    precompile.prestart()  # a fresh install: the kernel-compiling helper starts up meanwhile
    from engine.graphs import presets
    from engine.train.checkpoint import CheckpointManager, restore
    from engine.train.trainer import Trainer

    doc, doc_path = presets.load(args.graph)
    hooks = list(eval_hooks(doc)) if eval_hooks is not None else []
    _announce_outside_files(doc, doc_path)
    weights = weights_file(args.weights, "train") if args.weights else None
    settings, notes = _run_settings(args)
    with _threads(args.threads):
        trainer = Trainer(doc, base_dir=doc_path.parent, steps=settings["steps"],
                          seed=settings["seed"], dtype=settings["dtype"], weights=weights,
                          anomaly=args.anomaly, patience=settings["patience"] or 0,
                          eval_hooks=hooks)
        if args.resume:
            restore(trainer, args.resume)
            notes.insert(0, f"resuming at step {trainer.step} of {trainer.total_steps} from "
                            f"{args.resume}")
        folder = _run_folder(args, doc)
        manager = CheckpointManager(folder)
        metrics = None
        if args.metrics:
            metrics = _open_metrics(args.metrics, append=bool(args.resume))
            if args.resume:
                notes.append(f"appending to {args.metrics} (--resume)")
        notes += [f"note: node '{node}': {ds.info['note']}"
                  for node, ds in trainer.graph.datasets.items() if ds.info.get("note")]
        for note in notes:
            print(note, file=sys.stderr)
        try:
            with _stop_on_sigint(trainer), warnings.catch_warnings():
                # numpy's overflow/invalid warnings: the NaN guard reports non-finite values
                warnings.simplefilter("ignore", RuntimeWarning)
                return _loop(trainer, manager, metrics, args)
        finally:
            if metrics:
                metrics.close()


def _open_metrics(path: str, append: bool):
    """The metrics file: a new one, or (resuming) the run's own continued. Folders are made."""
    try:  # line-buffered: a live viewer (or a crash) sees every finished record
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return open(path, "a" if append else "w", encoding="utf-8", buffering=1)
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


def resume_command(graph: str, folder: Path) -> str:
    """The command that continues a run (same settings, same folder, metrics appended)."""
    return f"wiregrad train {shlex.quote(graph)} --resume {shlex.quote(str(folder))}"


def _metrics_failed(trainer, manager, graph: str, path: str, exc: OSError) -> WiregradError:
    """The metrics file cannot be written (e.g. a full disk): keep a checkpoint if we can and
    name the last good one."""
    from engine.train.checkpoint import read_checkpoint

    lines = [f"cannot write the metrics file {path}: {exc.strerror or exc}; training "
             f"stopped at step {trainer.step}"]
    try:
        manager.save(trainer)
    except WiregradError as save_exc:
        lines.append(f"a checkpoint at step {trainer.step} could not be written either "
                     f"({save_exc})")
    last = manager.folder / "last.safetensors"
    try:
        step = read_checkpoint(last)[1]["step"]
        lines.append(f"the last good checkpoint is {last} (step {step}); continue with "
                     f"`{resume_command(graph, manager.folder)}`")
    except (WiregradError, OSError, KeyError):
        lines.append("no checkpoint was written")
    return WiregradError("; ".join(lines), field="--metrics")


def _loop(trainer, manager, metrics, args: argparse.Namespace) -> int:
    from tqdm import tqdm

    quiet = args.quiet
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
                try:
                    metrics.write(json.dumps(record) + "\n")
                except OSError as exc:
                    bar.close()
                    raise _metrics_failed(trainer, manager, args.graph, args.metrics,
                                          exc) from None
            if record["kind"] == "train":
                bar.update(1)
                bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}",
                                refresh=False)
            elif record["kind"] == "eval":
                last_eval = record
                bar.write(f"step {record['step']}: {_metric_text(record)}", file=sys.stderr)
    except KeyboardInterrupt:  # a second Ctrl-C: the step in progress may be half applied
        bar.close()
        print(f"interrupted again during step {trainer.step + 1}; no checkpoint written "
              f"(earlier ones, if any, are in {manager.folder})", file=sys.stderr)
        return 130
    except NonFiniteError:
        bar.close()
        raise
    except WiregradError as exc:  # e.g. at an evaluation: keep the steps already trained
        bar.close()
        raise _kept(trainer, manager, exc) from None
    bar.close()
    manager.save(trainer)
    path = manager.save_model(trainer)
    _print_summary(trainer, manager, path, reason or "finished", last_eval, args.json)
    if reason == "interrupted":
        print(f"interrupted at step {trainer.step}; checkpoint and weights in {path.parent} "
              f"(continue with `{resume_command(args.graph, manager.folder)}`)",
              file=sys.stderr)
        return 130
    return 0


def _kept(trainer, manager, exc: WiregradError) -> WiregradError:
    """*exc*, after saving the weights of the steps trained before it (if any)."""
    if trainer.step == 0:
        return exc
    try:
        path = manager.save_model(trainer)
    except WiregradError as save_exc:
        note = f"the weights at step {trainer.step} could not be saved either ({save_exc})"
    else:
        note = f"the weights at step {trainer.step} are saved in {path}"
    kept = WiregradError(f"{exc.message}; {note}", node=exc.node, port=exc.port,
                         field=exc.field)
    kept.exit_code = exc.exit_code
    return kept


def _metric_text(record: dict) -> str:
    """``val_loss 0.0172, accuracy 0.9933`` from an eval record."""
    shown = {k: v for k, v in record.items() if isinstance(v, float) and k != "wall"}
    return ", ".join(f"{k} {v:.4g}" for k, v in shown.items())


def _print_summary(trainer, manager, weights: Path, reason: str, last_eval: dict,
                   as_json: bool) -> None:
    """What the run did, for people (a few lines) or machines (``--json``: one object)."""
    evaluation = {k: v for k, v in last_eval.items() if k not in ("kind", "wall")}
    if as_json:
        print(json.dumps({"steps": trainer.step, "total_steps": trainer.total_steps,
                          "reason": reason, "wall": round(trainer.wall, 3),
                          "weights": str(weights), "folder": str(manager.folder),
                          "eval": evaluation, "best": trainer.best}))
        return
    how = "" if reason == "finished" else f" ({reason.replace('_', ' ')})"
    print(f"trained {trainer.step} steps{how} in {trainer.wall:.1f} s")
    if evaluation:
        best = ", the best so far" if evaluation.get("best") else ""
        print(f"last evaluation at step {evaluation['step']}: {_metric_text(last_eval)}{best}")
    print(f"weights: {weights}")
    print(f"checkpoints: {manager.folder}")


def evaluate_command(args: argparse.Namespace,
                     extra: Callable[[dict, Trainer, argparse.Namespace], dict] | None = None
                     ) -> int:
    """``wiregrad evaluate``: validation loss and metrics; *extra* adds the numbers this stage
    cannot compute (a seq2seq graph's exact match and CER by decoding, passed in by the CLI)."""
    from engine.graphs import presets
    from engine.train.trainer import Trainer

    doc, doc_path = presets.load(args.graph)
    weights = _doc_weights(doc, doc_path, args.weights, "evaluate")
    if weights is None:
        raise WiregradError("no weights to evaluate: pass --weights or open a document that "
                            "references its weights")
    with _threads(getattr(args, "threads", None)):
        trainer = Trainer(doc, base_dir=doc_path.parent, weights=weights)
        batches = args.batches
        if batches is None:  # text windows: the document's eval_batches, as the run used
            windowed = any(ds.eval_batches is not None for ds in trainer.graph.datasets.values())
            batches = None if windowed else 0
        result = trainer.evaluate(batches)
        if extra is not None:
            result.update(extra(doc, trainer, args))
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():  # numbers, and a note (a string) where one applies
            print(f"{key}: {value:.6g}" if isinstance(value, (int, float)) else f"{key}: {value}")
    return 0


__all__ = ["train_command", "evaluate_command", "NonFiniteError"]
