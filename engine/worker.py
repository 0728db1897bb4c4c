"""The engine worker process: trains a document for the editor and answers its questions.

The editor starts it with :func:`start` (``multiprocessing`` *spawn* context, so no Qt state
is inherited) and talks to it over one duplex ``Pipe`` of plain data:

editor → worker (``{"cmd": ...}``)
    ``train`` (doc, base_dir, run_dir, steps, seed, resume, weights), ``pause``, ``resume``,
    ``step``, ``stop``, ``set_hparams`` (values for the optimizer, nodes for any node's
    hot params), ``save_checkpoint``, ``save_weights``,
    ``save_bundle`` (path), ``inspect`` (node or None), ``predictions``, ``gradcheck`` (doc,
    node, base_dir), ``warm`` (doc, base_dir: compile the kernels its training step needs
    before Train is pressed), ``ping``, ``quit``.
worker → editor (``{"kind": ...}``)
    ``ready``, ``started``, ``records`` (a batch of trainer records, at most every 0.2 s),
    ``state`` (running / paused), ``done``, ``error`` (message, node, traceback),
    ``saved`` (what, path), ``inspection``, ``predictions`` (see
    :func:`engine.insight.predictions.live_predictions`), ``gradcheck``, ``warmed`` (ok,
    message, seconds, key), ``pong``.

A warm worker keeps its compiled kernels and serves the next run. It computes on every core
(BLAS via threadpoolctl, Numba; so its trainer may split the batch like ``wiregrad train``)
at a lowered priority (``nice``), so the editor's event loop still runs when it needs to.
Every failure — a bad graph, NaN, any exception — becomes an ``error`` message naming the
node when known; the worker itself keeps serving.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from engine.base import heap
from engine.base.runtime import default_threads, limit_threads, limited_blas

if TYPE_CHECKING:
    from collections.abc import Iterator

    from engine.core.inference import Model
    from engine.train.checkpoint import CheckpointManager
    from engine.train.trainer import Trainer

# Records go to the editor at most every FLUSH_S (its step counter shows them at 5 Hz): each
# batch wakes the GUI, which takes CPU from one of the batch parts (at 0.1 s: 10 wake-ups a
# second). Commands are read every COMMAND_S, so pause / step / stop answer as before.
FLUSH_S = 0.2
COMMAND_S = 0.1
# Inspection and live predictions run beside the training steps, on one BLAS thread: with the
# pool's two, char-GPT's whole-batch inspection took 1.07–1.20 s wall and 0.42–0.61 s CPU on a
# busy 2-core host against 0.13–0.29 s and 0.07–0.08 s on one (a training step: 0.07 s CPU),
# and at one request per 1.5 s it cut the worker to 0.2–0.3 steps/s.
SIDE_BLAS_THREADS = 1


# ---------------------------------------------------------------------------------- editor side


class WorkerHandle:
    """The editor's end: send commands, poll messages, notice a dead process."""

    def __init__(self, threads: int | None = None, nice: int = 5) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(target=main, args=(child, threads or default_threads(), nice),
                                   name="wiregrad-engine-worker", daemon=True)
        self.process.start()
        child.close()
        self._dead_reported = False
        self.eof = False  # the pipe closed (the worker went); poll() says so, then once crashed

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.is_alive()

    def send(self, cmd: str, **fields) -> bool:
        """Send a command; False when the worker is gone."""
        try:
            self.conn.send({"cmd": cmd, **fields})
            return True
        except (OSError, EOFError, BrokenPipeError, ValueError):
            return False

    def poll(self, budget_s: float = 0.004, max_messages: int = 200) -> list[dict]:
        """Messages waiting now (bounded in time); a ``crashed`` message once if it died."""
        out: list[dict] = []
        end = time.perf_counter() + budget_s
        try:
            while len(out) < max_messages and self.conn.poll(0):
                out.append(self.conn.recv())
                if time.perf_counter() > end:
                    break
        except (EOFError, OSError, ValueError):
            self.eof = True
        if not out and not self._dead_reported and not self.process.is_alive():
            self._dead_reported = True
            code = self.process.exitcode
            why = (f"killed by signal {-code}" if code is not None and code < 0
                   else f"exit code {code}")
            out.append({"kind": "crashed", "exitcode": code,
                        "message": f"the engine worker process stopped unexpectedly ({why})"})
        return out

    def close(self, timeout: float = 2.0) -> None:
        """Ask the worker to quit; terminate it if it does not."""
        self.send("quit")
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(1.0)
        with contextlib.suppress(OSError):
            self.conn.close()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
            self.process.join(2.0)


def start(threads: int | None = None, nice: int = 5) -> WorkerHandle:
    return WorkerHandle(threads, nice)


# ---------------------------------------------------------------------------------- worker side


def main(conn, threads: int = 1, nice: int = 5) -> None:
    """Entry point of the worker process."""
    for key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[key] = str(threads)
    if nice:
        with contextlib.suppress(OSError):
            os.nice(nice)
    limit_threads(threads)
    heap.keep_freed_memory()  # a step's freed arrays serve the next step
    Worker(conn).loop()


class _RecordingBatcher:
    """Wraps a batcher and remembers the last batch it dealt (for inspection)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.last = None

    def next(self):
        self.last = self.inner.next()
        return self.last

    def __getattr__(self, name):
        return getattr(self.inner, name)


def _with_trained_tokenizers(doc: dict, base_dir: str | None) -> dict:
    """*doc* with the BPE tokenizers its run trained (or the cache holds) stored in it, so a
    bundle samples and decodes without its corpus or TSV file — as ``wiregrad pack`` does.
    Never trains one and never fails for an unreadable corpus."""
    from engine.data.sequence_pairs import store_tokenizers as store_pairs
    from engine.data.tokenizers import store_tokenizers

    base = Path(base_dir) if base_dir is not None else None
    return store_pairs(store_tokenizers(doc, base, train=False), base, train=False)


class Worker:
    def __init__(self, conn) -> None:
        self.conn = conn
        self.trainer: Trainer | None = None
        self.manager: CheckpointManager | None = None
        self.gen: Iterator[dict] | None = None
        self.doc: dict | None = None
        self.paused = False
        self.buffer: list[dict] = []
        self.last_flush = time.perf_counter()
        self.last_eval: dict = {}
        self.model: Model | None = None  # the trainer's inference model, for predictions
        self.base_dir: str | None = None  # the run's document folder (data paths, tokenizers)
        self.quit = False

    # ------------------------------------------------------------------ messaging

    def send(self, kind: str, **fields) -> None:
        self.conn.send({"kind": kind, **fields})

    def flush(self) -> None:
        if self.buffer:
            records, self.buffer = self.buffer, []
            self.send("records", records=records)
        self.last_flush = time.perf_counter()

    def error(self, exc: BaseException, where: str) -> None:
        self.flush()
        node = getattr(exc, "node", None)
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        self.send("error", where=where, message=message, node=node,
                  error_type=type(exc).__name__,
                  traceback="".join(traceback.format_exception(exc))[-4000:])

    # ------------------------------------------------------------------ loop

    def loop(self) -> None:
        self.send("ready", pid=os.getpid())
        while not self.quit:
            if self.gen is not None and not self.paused:
                self.commands(0)
                self.advance()
            else:
                self.commands(0.05 if self.gen is not None else 0.5)
                if self.gen is not None and self.paused:
                    self.advance(single=True)

    def commands(self, timeout: float) -> None:
        try:
            ready = self.conn.poll(timeout)
            while ready:
                self.handle(self.conn.recv())
                ready = self.conn.poll(0)
        except (EOFError, OSError):
            self.quit = True  # the editor went away

    def advance(self, single: bool = False) -> None:
        """Pull records for up to COMMAND_S (or until the trainer pauses); send them when the
        last batch went FLUSH_S ago."""
        end = time.perf_counter() + COMMAND_S
        while self.gen is not None:
            try:
                record = next(self.gen)
            except StopIteration:
                self.gen = None
                break
            except Exception as exc:  # noqa: BLE001 (reported, the worker keeps serving)
                self.gen = None
                self.error(exc, "train")
                return
            if record["kind"] == "paused":
                if not self.paused:
                    self.paused = True
                    self.flush()
                    self.send("state", state="paused", step=record["step"])
                break
            self.buffer.append(record)
            if record["kind"] == "eval":
                self.last_eval = record
            if record["kind"] == "done":
                self.finish(record)
                return
            if time.perf_counter() > end or (single and record["kind"] == "train"):
                break
        if single or time.perf_counter() - self.last_flush >= FLUSH_S:
            self.flush()

    def finish(self, record: dict) -> None:
        self.gen = None
        self.paused = False
        self.flush()
        trainer, manager, _ = self._need_trainer()
        out: dict = {"step": record["step"], "reason": record["reason"]}
        try:
            out["checkpoint"] = manager.save(trainer)["path"]
            out["weights"] = str(manager.save_model(trainer))
        except Exception as exc:  # noqa: BLE001
            self.error(exc, "save")
        final = {k: v for k, v in self.last_eval.items() if k not in ("kind", "wall", "best")}
        self.send("done", **out, final=final, folder=str(manager.folder))
        heap.release_freed_memory()  # the run's working memory goes back between runs

    # ------------------------------------------------------------------ commands

    def handle(self, msg: dict) -> None:
        cmd = msg.get("cmd")
        handler = getattr(self, f"cmd_{cmd}", None)
        if handler is None:
            self.send("error", where=str(cmd), message=f"unknown worker command {cmd!r}",
                      node=None, error_type="ValueError", traceback="")
            return
        try:
            handler(msg)
        except Exception as exc:  # noqa: BLE001
            if cmd == "train":
                self.gen = None
            self.error(exc, str(cmd))

    def cmd_ping(self, msg: dict) -> None:
        self.send("pong", pid=os.getpid())

    def cmd_quit(self, msg: dict) -> None:
        self.quit = True

    def cmd_train(self, msg: dict) -> None:
        from engine.base.io import model_weights
        from engine.core.document import graph_hash
        from engine.train.checkpoint import CheckpointManager, restore
        from engine.train.trainer import Trainer

        self.gen = None
        self.trainer = None
        self.paused = False
        self.last_eval = {}
        doc = msg["doc"]
        weights = model_weights(msg["weights"]) if msg.get("weights") else None
        trainer = Trainer(doc, base_dir=msg.get("base_dir"), steps=msg.get("steps"),
                          seed=msg.get("seed"), weights=weights, eval_hooks=_eval_hooks(doc))
        if msg.get("resume"):
            restore(trainer, msg["resume"])
        trainer.batchers = {k: _RecordingBatcher(b) for k, b in trainer.batchers.items()}
        self.trainer, self.doc, self.model = trainer, doc, None
        self.base_dir = msg.get("base_dir")
        self.manager = CheckpointManager(Path(msg["run_dir"]))
        p = trainer.graph.optimizer_params
        self.send("started", run_id=msg.get("run_id"), graph_hash=graph_hash(doc),
                  total_steps=trainer.total_steps, step=trainer.step,
                  folder=str(self.manager.folder),
                  hparams={"algorithm": p["algorithm"], "lr": p["lr"],
                           "weight_decay": p["weight_decay"], "clip_norm": p["clip_norm"],
                           "steps": trainer.total_steps, "seed": trainer.seed,
                           "batch": sum(trainer.graph.batch_sizes.values())})
        self.gen = trainer.run(self.manager)
        if msg.get("paused"):
            trainer.pause()

    def cmd_warm(self, msg: dict) -> None:
        """One training step of *doc* on a throwaway trainer (unsplit, nothing written), so
        Numba compiles — or loads from its cache — exactly the kernels, dtypes and array
        layouts the run will use; a ``train`` sent meanwhile waits for this one step. A graph
        that cannot train yet (the user is still editing) answers ``ok: False``, never an
        ``error``; a live run is never interrupted."""
        if self.gen is not None:
            self.send("warmed", ok=False, message="a run is live", seconds=0.0,
                      key=msg.get("key"))
            return
        from engine.train.trainer import Trainer

        t0 = time.perf_counter()
        try:
            Trainer(msg["doc"], base_dir=msg.get("base_dir"), steps=1,
                    batch_split=1).train_step()
        except Exception as exc:  # noqa: BLE001 (an unfinished graph: nothing to warm yet)
            self.send("warmed", ok=False, message=getattr(exc, "message", None) or str(exc),
                      seconds=time.perf_counter() - t0, key=msg.get("key"))
            return
        self.send("warmed", ok=True, message="kernels ready",
                  seconds=time.perf_counter() - t0, key=msg.get("key"))

    def _need_trainer(self) -> tuple[Trainer, CheckpointManager, dict]:
        """The current run's trainer, checkpoint manager and document (an error if none)."""
        from engine.base.errors import WiregradError

        if self.trainer is None or self.manager is None or self.doc is None:
            raise WiregradError("no training run in this worker")
        return self.trainer, self.manager, self.doc

    def cmd_pause(self, msg: dict) -> None:
        trainer, _, _ = self._need_trainer()
        trainer.pause()

    def cmd_resume(self, msg: dict) -> None:
        trainer, _, _ = self._need_trainer()
        trainer.resume()
        if self.paused:
            self.paused = False
            self.send("state", state="running", step=trainer.step)

    def cmd_step(self, msg: dict) -> None:
        trainer, _, _ = self._need_trainer()
        trainer.pause()
        trainer.step_once()

    def cmd_stop(self, msg: dict) -> None:
        """Stop the live run; without one (a worker that only warmed kernels or checked
        gradients, handed back to the pool) there is nothing to stop and nothing to report."""
        if self.trainer is None:
            return
        self.trainer.stop(msg.get("reason", "stopped"))
        if self.paused:
            self.paused = False  # let run() reach its "done" record

    def cmd_set_hparams(self, msg: dict) -> None:
        """``values``: the optimizer's hot params; ``nodes``: ``{node id: {param: value}}``
        for any node's hot params (declared ``hot`` on its op spec)."""
        trainer, _, _ = self._need_trainer()
        if msg.get("values"):
            trainer.set_hparams(**msg["values"])
        for node, values in (msg.get("nodes") or {}).items():
            trainer.set_node_params(node, values)

    def cmd_save_checkpoint(self, msg: dict) -> None:
        trainer, manager, _ = self._need_trainer()
        self.flush()
        path = manager.save(trainer)["path"]
        self.send("saved", what="checkpoint", path=path, step=trainer.step)

    def cmd_save_weights(self, msg: dict) -> None:
        trainer, manager, _ = self._need_trainer()
        path = manager.save_model(trainer)
        self.send("saved", what="weights", path=str(path), step=trainer.step,
                  request=msg.get("request"))

    def cmd_save_bundle(self, msg: dict) -> None:
        from engine.graphs.bundle import pack
        from engine.train.checkpoint import model_metadata

        trainer, _, _ = self._need_trainer()
        weights = {**trainer.params, **trainer.state}
        path = pack(_with_trained_tokenizers(trainer.doc, self.base_dir), weights, msg["path"],
                    model_metadata(trainer))
        self.send("saved", what="bundle", path=str(path), step=trainer.step)

    def cmd_inspect(self, msg: dict) -> None:
        trainer, _, doc = self._need_trainer()
        with limited_blas(SIDE_BLAS_THREADS):
            found = inspect_trainer(trainer, doc, msg.get("node"))
        self.send("inspection", **found, request=msg.get("request"))

    def cmd_predictions(self, msg: dict) -> None:
        from engine.core.inference import extract_model
        from engine.insight import predictions
        from engine.insight.seq2seq_predictions import is_seq2seq, live_pairs

        trainer, _, doc = self._need_trainer()
        weights = {**trainer.params, **trainer.state}
        with limited_blas(SIDE_BLAS_THREADS):
            if is_seq2seq(doc):  # a few validation pairs decoded, wrong ones marked
                found = live_pairs(doc, weights, trainer.graph.datasets, trainer.step)
            else:
                if self.model is None:
                    self.model = extract_model(doc, program=trainer.program)
                found = predictions.live_predictions(self.model, weights,
                                                     trainer.graph.datasets, trainer.step)
        self.send("predictions", **found)

    def cmd_gradcheck(self, msg: dict) -> None:
        from engine.core.gradcheck import gradcheck_document, summarize
        from engine.data.examples import feeds_for

        reports = gradcheck_document(msg["doc"], msg.get("node"),
                                     feeds=feeds_for(base_dir=msg.get("base_dir")))
        self.send("gradcheck", node=msg.get("node"), **summarize(reports))


def _eval_hooks(doc: dict) -> list:
    """exact_match on a seq2seq graph (a sequence_pairs source), nothing otherwise; the
    seq2seq decoder (Numba kernels, tokenizers) is imported for such a graph only, so the
    first Train of any other graph does not wait for it."""
    if not any(n.get("type") == "sequence_pairs" for n in doc.get("nodes", [])):
        return []
    from engine.insight.seq2seq_metrics import eval_hooks

    return eval_hooks(doc)


def inspect_trainer(trainer, doc: dict, node: str | None = None) -> dict:
    """Edge statistics (and *node*'s detail) on the trainer's last batch with its current
    weights: a deterministic (evaluation-mode) forward and a backward from the loss."""
    import numpy as np

    from engine.insight import inspection

    batches = {k: getattr(b, "last", None) for k, b in trainer.batchers.items()}
    if any(v is None for v in batches.values()):  # before the first step: the weights only
        detail = (inspection.node_detail(doc, trainer.program, node, trainer.params, None, {})
                  if node is not None else None)
        return {"step": trainer.step, "edges": [], "detail": detail,
                "note": "no batch evaluated yet"}
    state = {k: v.copy() for k, v in trainer.state.items()}
    tape = trainer.executor.forward(trainer._feeds(batches), trainer.params, state,
                                    training=False)
    one = np.ones((), dtype=trainer.executor.dtype)
    wgrads, vgrads = trainer.executor.backward(tape, {trainer.graph.loss_value: one})
    out = {"step": trainer.step,
           "loss": float(tape.values[trainer.graph.loss_value]),
           "edges": inspection.edge_stats(doc, trainer.program, tape.values, vgrads),
           "detail": None}
    if node is not None:
        out["detail"] = inspection.node_detail(doc, trainer.program, node, trainer.params,
                                               tape.values, wgrads)
    return out
