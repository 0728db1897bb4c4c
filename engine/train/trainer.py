"""The trainer: a generator of metric records over a compiled training graph.

No threads and no Qt inside. The caller (CLI progress bar, editor worker process) drives
:meth:`Trainer.run` and may call :meth:`pause`, :meth:`resume`, :meth:`step_once`,
:meth:`stop` and :meth:`set_hparams` between records.

Records (plain dicts):
    {"kind": "train", "step", "epoch", "loss", "lr", "grad_norm", "examples_per_s",
     "tokens_per_s", "wall"}
    {"kind": "eval", "step", "val_loss", <metric node id>: value, <hook metric>: value,
     "wall"}  — hook metrics come from the ``eval_hooks`` the face passes in (e.g. a
     seq2seq graph's ``exact_match`` by greedy decoding, engine.insight.seq2seq_metrics)
    {"kind": "paused", "step"}  — while paused (the caller decides how long to wait)
    {"kind": "hparams", "step", <name>: value}  — a hot edit took effect
    {"kind": "checkpoint", "step", "path"}
    {"kind": "done", "step", "reason"}
"""

from __future__ import annotations

import contextlib
import itertools
import math
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from engine.base.errors import NonFiniteError, WiregradError
from engine.core import document
from engine.core.compile import compile_document
from engine.core.hot import hot_targets, param_specs
from engine.core.memory import check_training_memory
from engine.core.params import check_value
from engine.core.program import off_loss_path
from engine.core.run import Executor, Tape, collection_paused, init_weights
from engine.train.bpc import graph_bpc
from engine.train.graph import TrainingGraph, analyse
from engine.train.optim import Optimizer, Schedule, clip_coefficient, squared_norm

if TYPE_CHECKING:
    from engine.train.batch_split import BatchSplit


# Forward MFLOP of a step's convolutions from which a graph that could split by rows does so
# even where Numba's threads load (Trainer._convolutions_on_numba_threads): below it, one whole
# step on Numba's threads ran 1.2–1.8× faster than two parts; from ~380 MFLOP they tied.
NUMBA_THREADS_MAX_CONV_FLOPS = 200e6

# An evaluation hook: called with the trainer at each evaluation point, after the validation
# batches; returns more fields for the eval record (numbers are metrics). A hook may carry
# ``higher_is_better`` (metric names an early stop maximises).
EvalHook = Callable[["Trainer"], dict]


def _node_seed(seed: int, name: str) -> int:
    return (seed * 1_000_003 + zlib.crc32(name.encode())) & 0x7FFFFFFF


def _owned(grads: dict[str, np.ndarray], dtype) -> dict[str, np.ndarray]:
    """Gradients the step may scale in place: C-contiguous arrays of *dtype* that own their
    memory and appear once; anything else (a view, another dtype, a shared array) is copied."""
    seen: set[int] = set()
    out = {}
    for k, v in grads.items():
        if (not isinstance(v, np.ndarray) or v.dtype != dtype or not v.flags.c_contiguous
                or not v.flags.owndata or not v.flags.writeable or id(v) in seen):
            v = np.array(v, dtype=dtype, order="C")
        seen.add(id(v))
        out[k] = v
    return out


class Trainer:
    """Owns weights, optimizer state and data position for one training run."""

    def __init__(self, doc: dict, *, base_dir: str | Path | None = None,
                 steps: int | None = None, seed: int | None = None, dtype: str | None = None,
                 weights: dict[str, np.ndarray] | None = None, anomaly: bool = False,
                 patience: int = 0, early_stop_metric: str = "val_loss",
                 batch_split: int | None = None, eval_hooks: Sequence[EvalHook] = ()) -> None:
        from engine.data.datasets import batcher_for

        self.doc = doc
        self.settings = document.training_settings(doc)
        self.seed = self.settings["seed"] if seed is None else seed
        self.total_steps = self.settings["steps"] if steps is None else steps
        self.dtype = dtype or self.settings["dtype"]
        self.program = compile_document(doc, self.dtype)
        start_precompile(self.program, self.dtype)
        self.graph: TrainingGraph = analyse(doc, self.program, base_dir)
        check_training_memory(self.program, max(self.graph.batch_sizes.values(), default=1),
                              self.dtype)
        self.executor = Executor(self.program, self.dtype)
        np_dtype = self.executor.dtype
        self.params = init_weights(self.program.parameters, self.seed, np_dtype)
        self.state = init_weights(self.program.state, self.seed, np_dtype)
        if weights:
            self.load_weights(weights)
        self.batchers = {
            node: batcher_for(ds, self.graph.batch_sizes[node], _node_seed(self.seed, node))
            for node, ds in self.graph.datasets.items()
        }
        self.optimizer, self.schedule, self.clip_norm = self._build_optimizer()
        self._unused = off_loss_path(self.program, self.graph.loss_value)
        self.frozen = frozen_parameters(self.doc, self.program)
        self.step = 0
        self.anomaly = anomaly
        self.patience = patience
        self.early_stop_metric = early_stop_metric
        self.eval_hooks = list(eval_hooks)
        self.best: float | None = None
        self._since_best = 0
        self._paused = False
        self._single_steps = 0
        self._stop_reason: str | None = None
        self._pending_hparams: dict = {}
        self._wall0 = time.perf_counter()
        self._wall_offset = 0.0
        # Two-core steps (engine.train.batch_split): None decides at the first step from the graph,
        # the BLAS thread count and the batch's work; 1 keeps every step unsplit.
        self._split_request = batch_split
        self._split: BatchSplit | None = None  # a BatchSplit once decided for
        self._folded = False  # this step's optimizer update ran in the batch parts
        self._split_decided = batch_split == 1
        self._eval_ways: int | None = None  # threads for evaluation batches, decided once
        # unsplit CNN steps: the convolutions own the threads (engine.ops.two_cores)
        self._op_threads: AbstractContextManager = contextlib.nullcontext()
        self.split_note = ("unsplit: asked for one part" if batch_split == 1
                           else "undecided (at the first step)")

    # ------------------------------------------------------------------ setup

    def _build_optimizer(self) -> tuple[Optimizer, Schedule, float]:
        p = self.graph.optimizer_params
        decay = {name for name, info in self.program.parameters.items()
                 if info.decay and len(info.shape) >= 2}
        if p["decay_set"] == "no_embeddings":
            decay -= self.graph.embedding_weights
        opt = Optimizer(
            kind=p["algorithm"], lr=p["lr"], betas=(p["beta1"], p["beta2"]), eps=p["eps"],
            weight_decay=p["weight_decay"], momentum=p["momentum"], nesterov=p["nesterov"],
            alpha=p["alpha"], decay_names=frozenset(decay),
        )
        schedule = Schedule(kind=p["schedule"], base_lr=p["lr"], warmup=p["warmup"],
                            total=self.total_steps, min_lr=p["min_lr"],
                            step_size=p["step_size"], gamma=p["gamma"])
        return opt, schedule, p["clip_norm"]

    def load_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Copy matching named arrays into the parameters and state (shapes must agree)."""
        for store in (self.params, self.state):
            for name, value in weights.items():
                if name in store:
                    if tuple(value.shape) != store[name].shape:
                        raise WiregradError(
                            f"weight '{name}' has shape {list(value.shape)} but the graph "
                            f"needs {list(store[name].shape)}", node=name.split(".")[0])
                    store[name][...] = value
        missing = [n for n in self.params if n not in weights]
        if missing:
            raise WiregradError(f"the weights lack {len(missing)} parameter(s), e.g. "
                                f"'{missing[0]}'", node=missing[0].split(".")[0])

    # ------------------------------------------------------------------ controls

    def pause(self) -> None:
        if not self._paused:
            self._single_steps = 0
        self._paused = True

    def resume(self) -> None:
        self._paused = False
        self._single_steps = 0

    @property
    def paused(self) -> bool:
        return self._paused

    def step_once(self) -> None:
        """While paused: run exactly one more training step (ignored while running)."""
        if self._paused:
            self._single_steps += 1

    def stop(self, reason: str = "stopped") -> None:
        self._stop_reason = reason

    def set_hparams(self, **values) -> None:
        """Hot edits of the optimizer node (``lr``, ``weight_decay``, ``clip_norm``), applied
        before the next step; shorthand for :meth:`set_node_params` on the optimizer."""
        self.set_node_params(self.graph.optimizer, values)

    def set_node_params(self, node: str, values: dict) -> None:
        """Hot edits of any top-level node's params, applied before the next step.

        Which params may change while training is declared once, on the op spec
        (``Param.hot``, see :mod:`engine.core.hot`): e.g. the optimizer's rate, decay and
        clipping, dropout's ``p``, batch norm's ``momentum`` (also through the layers that
        pass them on). Anything else is refused, naming the node and the field.
        """
        types = {n["id"]: n["type"] for n in self.doc["nodes"]}
        if node not in types:
            raise WiregradError(f"no node '{node}' in this graph", node=node)
        layers = self.doc.get("layers", {})
        hot, specs = hot_targets(types[node], layers), param_specs(types[node], layers)
        for key, value in values.items():
            if key not in hot:
                allowed = ", ".join(sorted(hot)) or "none"
                raise WiregradError(f"cannot change '{key}' while training (hot settings of "
                                    f"this node: {allowed})", node=node, field=key)
            spec = specs[key]
            if spec.kind == "float" and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            problem = check_value(spec, value)
            if problem is None and not math.isfinite(value):
                problem = f"must be a finite number, got {value!r}"
            if problem is not None:
                raise WiregradError(f"{key}: {problem}", node=node, field=key)
        self._pending_hparams.setdefault(node, {}).update(values)

    def _apply_hparams(self) -> dict | None:
        if not self._pending_hparams:
            return None
        pending, self._pending_hparams = self._pending_hparams, {}
        record: dict = {"kind": "hparams", "step": self.step}
        types = {n["id"]: n["type"] for n in self.doc["nodes"]}
        for node, values in pending.items():
            if node == self.graph.optimizer:
                self._apply_optimizer_params(values)
                record.update(values)
                continue
            hot = hot_targets(types[node], self.doc.get("layers", {}))
            for key, value in values.items():
                for sub, param in hot[key]:
                    path = f"{node}.{sub}" if sub else node
                    for eq in self.program.equations:
                        if eq.path == path:
                            eq.params[param] = value
            record.setdefault("nodes", {})[node] = dict(values)
        return record

    def _apply_optimizer_params(self, values: dict) -> None:
        if "lr" in values:
            lr = float(values["lr"])
            self.schedule.set_current(self.step, lr)
            if not np.isclose(self.schedule(self.step), lr, rtol=1e-9, atol=0.0):
                # the curve is 0 here (lr 0, or a cosine at its end): no scale reaches the
                # new rate, so continue at it, flat
                s = self.schedule
                s.kind, s.base_lr, s.warmup, s.min_lr, s.scale = "constant", lr, 0, lr, 1.0
        if "weight_decay" in values:
            self.optimizer.weight_decay = float(values["weight_decay"])
        if "clip_norm" in values:
            self.clip_norm = float(values["clip_norm"])

    # ------------------------------------------------------------------ steps

    @property
    def wall(self) -> float:
        return self._wall_offset + time.perf_counter() - self._wall0

    def _feeds(self, batches: dict[str, dict[str, np.ndarray]]) -> dict:
        return {node: tuple(batch[p] for p in self.graph.data_ports[node])
                for node, batch in batches.items()}

    def train_step(self) -> dict:
        """One optimizer step on the next batch; returns its record. The garbage collector
        waits meanwhile: the step's tapes are freed by the time it is back on
        (:class:`engine.core.run.collection_paused`)."""
        with collection_paused():
            return self._train_step()

    def _train_step(self) -> dict:
        start = time.perf_counter()
        batches = {node: b.next() for node, b in self.batchers.items()}
        lr = self.schedule(self.step)
        self.optimizer.lr = lr
        self._folded = False
        loss, grads, squares, tapes = self._forward_backward(
            self._feeds(batches), _node_seed(self.seed, str(self.step)))
        if self.frozen:  # like requires_grad=False: no update, no share of the global norm
            grads = {k: g for k, g in grads.items() if k not in self.frozen}
            squares = squared_norm(grads)
        norm = math.sqrt(squares)
        if not np.isfinite(norm):
            for tape in tapes:  # an Inf inside the forward is the likelier culprit
                self._check_forward(tape)
            self._raise_nonfinite_grad(grads)
        self._check_state()
        if self._folded:  # the parts updated the weights (BatchSplit.step's update)
            self.optimizer.step_count += 1
        else:
            with self._op_threads:  # a CNN: a large weight's update on both cores
                self.optimizer.step(self.params, grads, clip_coefficient(norm, self.clip_norm),
                                    run=self._split.run if self._split is not None else None)
        self.step += 1
        elapsed = max(time.perf_counter() - start, 1e-9)
        examples = self.graph.batch_examples(batches)
        record = {"kind": "train", "step": self.step, "epoch": self._epoch(), "loss": loss,
                  "lr": lr, "grad_norm": norm, "examples_per_s": examples / elapsed,
                  "wall": self.wall}
        tokens = self.graph.batch_tokens(batches)
        if tokens:
            record["tokens_per_s"] = tokens / elapsed
        return record

    def _forward_backward(self, feeds: dict, seed: int
                          ) -> tuple[float, dict, float, list[Tape]]:
        """Loss, weight gradients, their squared global norm and the forward tape(s) of one
        batch: split over the cores when decided so (one tape per part)."""
        if not self._split_decided:
            self._split_decided = True
            self._decide_split(feeds)
        if self._split is not None and not self.anomaly and self._split.fits(feeds):
            update = None if self.frozen or self.state else self._update_share
            loss, grads, squares, tapes = self._split.step(feeds, self.params, self.state,
                                                           seed, self._unused, update)
            self._folded = update is not None and grads is not None \
                and math.isfinite(squares) and np.isfinite(loss)
            if grads is None or not np.isfinite(loss):
                for tape in tapes:
                    self._check_forward(tape)
                raise NonFiniteError(f"training stopped at step {self.step + 1}: the loss "
                                     "is NaN or Inf", node=self.graph.loss_value.split(":")[0])
            return loss, grads, squares, tapes
        with self._op_threads:  # a CNN: its convolutions use the cores, BLAS one thread
            tape = self.executor.forward(feeds, self.params, self.state, training=True,
                                         seed=seed, skip=self._unused)
            loss = float(tape.values[self.graph.loss_value])
            if self.anomaly or not np.isfinite(loss):
                self._check_forward(tape)
            one = np.ones((), dtype=self.executor.dtype)
            grads, _ = self.executor.backward(tape, {self.graph.loss_value: one},
                                              release=True)
        grads = _owned(grads, self.executor.dtype)
        return loss, grads, squared_norm(grads), [tape]

    def _update_share(self, squares: float, grads: dict[str, np.ndarray]) -> None:
        """The optimizer's step on one batch part's share of the summed gradients, run by
        that part's thread (:meth:`engine.train.batch_split.BatchSplit.step`): the same
        per-parameter update as ``optimizer.step`` with the same clipping factor."""
        scale = clip_coefficient(math.sqrt(squares), self.clip_norm)
        self.optimizer._update(self.params, grads, scale, self.optimizer.step_count + 1,
                               [n for n in self.params if grads.get(n) is not None])

    def _decide_split(self, feeds: dict) -> None:
        """Before the first step: split the steps when the graph keeps examples apart and,
        unless parts were asked for, the BLAS pool has 2–4 threads and each part gets enough
        work. Decided once, from the configured batch size (not this batch, which may be an
        epoch's short last one), so a resumed run with the same threads splits like the
        uninterrupted one."""
        from engine.train import batch_split

        decision = batch_split.analyse(self.program, self.graph.loss_value, self._unused)
        if not decision.ok:
            self.split_note = f"unsplit: {decision.reason}"
            self._ops_own_threads()
            return
        rows = min(self.graph.batch_sizes.get(node, 0) for node in decision.data)
        sizes = batch_split.feed_sizes(self.program, feeds)
        if decision.symbol is not None:
            sizes[decision.symbol] = rows
        if not self._split_request and self._convolutions_on_numba_threads(sizes):
            self.split_note = "unsplit: convolutions on Numba's threads"
            self._ops_own_threads()
            return
        if self._split_request:
            ways = min(self._split_request, rows)
            if ways < 2:
                self.split_note = f"unsplit: {rows} row(s) in the batch"
                return
        else:
            threads = batch_split.blas_threads()
            flops = batch_split.step_flops(self.program, sizes)
            equations = len(self.program.equations)
            ways = batch_split.choose_ways(threads, rows, flops, equations)
            if ways < 2:
                self.split_note = (f"unsplit: {threads} BLAS thread(s), {rows} rows, "
                                   f"{flops / 1e6:.1f} MFLOP forward in {equations} ops")
                self._ops_own_threads()
                return
        self._split = batch_split.BatchSplit(self.executor, decision, self.graph.loss_value,
                                             ways)
        self.split_note = f"split into {ways} parts of ~{rows / ways:.1f} rows"

    def _has_convolutions(self) -> bool:
        return any(eq.op.name == "conv2d" for eq in self.program.equations)

    def _convolutions_on_numba_threads(self, sizes: dict[str, int]) -> bool:
        """Whether a graph whose convolutions (at the symbol *sizes*) do under
        :data:`NUMBA_THREADS_MAX_CONV_FLOPS` of forward work a step runs unsplit, its
        convolutions, pools and activations each one parallel Numba call
        (:mod:`engine.kernels.parallel`), rather than as batch parts on Python threads,
        whose convolutions take the one-thread numpy routes. Two threads, wall ms a step,
        alternating in one process (session 10, bench/RESULTS.md), convolution MFLOP in
        brackets: LeNet-5 (46) split 7.1–7.8 → whole 4.0–4.6, a 16-channel 5×5 layer before
        a 3136→128 FC (40) 7.3 → 4.9, an 8-channel 3×3 layer before FC 1568→512→128 (7)
        8.7 → 6.4, one 3→8 layer before FC 2048→512→256 (7) 8.5–10.0 against 8.7–10.1; with
        large convolutions the parts lose nothing: a 3→32→64 CNN without batch norm (380)
        9.9 either way, ``cnn_wide28`` (960) 23.9–26.1 against 25.1–26.2 (and 24.9 against
        21.2), so from there the row split decides as before."""
        from engine.kernels import parallel
        from engine.train import batch_split

        if batch_split.blas_threads() < 2 or not self._has_convolutions():
            return False
        conv_flops = batch_split.step_flops(self.program, sizes, only="conv2d")
        return conv_flops < NUMBA_THREADS_MAX_CONV_FLOPS and parallel.available()

    def _ops_own_threads(self) -> None:
        """An unsplit step of a graph with convolutions: its ops own the threads and every
        other BLAS call runs on one (see :class:`engine.ops.two_cores.own_threads`)."""
        from engine.ops import two_cores
        from engine.train.batch_split import blas_threads

        threads = blas_threads()
        if threads >= 2 and self._has_convolutions():
            self._op_threads = two_cores.own_threads(threads)
            self.split_note += f"; convolutions split over {threads} threads, BLAS on one"

    def _epoch(self) -> float:
        b = next(iter(self.batchers.values()), None)
        return float(b.epoch) if b is not None else 0.0

    def _check_forward(self, tape: Tape) -> None:
        for eq in self.program.equations:
            for out in eq.outputs:
                value = tape.values.get(out)
                if value is not None and value.dtype.kind == "f" and not np.all(
                        np.isfinite(value)):
                    raise NonFiniteError(
                        f"training stopped at step {self.step + 1}: '{eq.op.name}' produced "
                        f"NaN or Inf (in {eq.path})", node=eq.top)

    def _raise_nonfinite_grad(self, grads: dict[str, np.ndarray]) -> None:
        bad = [n for n, g in grads.items() if not np.all(np.isfinite(g))]
        if bad:
            owner = self.program.parameters[bad[0]].node
            raise NonFiniteError(
                f"training stopped at step {self.step + 1}: the gradient of '{bad[0]}' is NaN "
                f"or Inf", node=owner.split(".")[0])
        # every gradient is finite but the sum of their squares overflows
        largest = max(grads, key=lambda n: float(np.max(np.abs(grads[n]), initial=0.0)))
        peak = float(np.max(np.abs(grads[largest]), initial=0.0))
        raise NonFiniteError(
            f"training stopped at step {self.step + 1}: the gradients' global norm overflows "
            f"(the largest, of '{largest}', reaches {peak:.3g}); the weights or the learning "
            "rate are far too large", node=self.program.parameters[largest].node.split(".")[0])

    def _check_state(self) -> None:
        """Non-trainable state (batch-norm running statistics) must stay finite too."""
        for name, value in self.state.items():
            if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
                node = self.program.state[name].node
                raise NonFiniteError(
                    f"training stopped at step {self.step + 1}: the running statistic "
                    f"'{name}' became NaN or Inf", node=node.split(".")[0])

    def evaluate(self, max_batches: int | None = None) -> dict:
        """Validation loss and metrics, averaged over evaluation batches (weighted); the
        batches run on the run's threads at once when they are worth it
        (:mod:`engine.train.evaluation`)."""
        from engine.data.datasets import eval_batches_for
        from engine.train import evaluation

        limit = self.settings["eval_batches"] if max_batches is None else max_batches
        iters = {node: eval_batches_for(ds, self.graph.batch_sizes[node], limit)
                 for node, ds in self.graph.datasets.items()}
        state = {k: v.copy() for k, v in self.state.items()}

        def batches() -> Iterator[dict]:
            while True:
                try:
                    yield {node: next(it) for node, it in iters.items()}
                except StopIteration:
                    return

        def one(batch: dict) -> tuple[dict[str, float], int]:
            tape = self.executor.forward(self._feeds(batch), self.params, state,
                                         training=False)
            values = {"val_loss": float(tape.values[self.graph.loss_value])}
            values.update({k: float(tape.values[v])
                           for k, v in self.graph.metric_values.items()})
            return values, self.graph.batch_examples(batch)

        stream = batches()
        first = next(stream, None)
        results = [] if first is None else evaluation.map_batches(
            one, itertools.chain([first], stream), self._eval_threads(first))
        totals: dict[str, float] = {}
        count = 0
        for values, n in results:  # summed in batch order, whatever thread ran each
            for k, v in values.items():
                totals[k] = totals.get(k, 0.0) + v * n
            count += n
        if count == 0:
            raise WiregradError("the validation split is empty (raise val_fraction)",
                                node=next(iter(self.graph.datasets), None))
        result = {k: v / count for k, v in totals.items()}
        bpc = graph_bpc(self.doc, self.graph, result["val_loss"])  # text LMs only
        if bpc is not None:
            result["bpc"] = bpc
        return result

    def _eval_threads(self, batch: dict) -> int:
        """Threads for the evaluation batches: the run's BLAS threads when a forward of
        *batch* is worth a hand-off (:data:`engine.train.batch_split.MIN_PART_FLOPS`),
        else 1; decided once."""
        if self._eval_ways is None:
            from engine.ops import two_cores
            from engine.train import batch_split

            threads = two_cores.blas_threads()
            if threads >= 2:
                sizes = batch_split.feed_sizes(self.program, self._feeds(batch))
                if batch_split.step_flops(self.program, sizes) < batch_split.MIN_PART_FLOPS:
                    threads = 1
            self._eval_ways = threads
        return self._eval_ways

    # ------------------------------------------------------------------ the loop

    def run(self, checkpoints=None) -> Iterator[dict]:
        """Yield records until ``total_steps`` (or stop / early stop / NaN)."""
        eval_every = self.settings["eval_every"]
        ckpt_every = self.settings["checkpoint_every"]
        while self.step < self.total_steps:
            if self._stop_reason:
                break
            if self._paused and self._single_steps == 0:
                yield {"kind": "paused", "step": self.step}
                continue
            if self._paused:
                self._single_steps -= 1
            change = self._apply_hparams()
            if change:
                yield change
            yield self.train_step()
            last = self.step == self.total_steps
            if eval_every and (self.step % eval_every == 0 or last):
                record = self._eval_record()
                yield record
                if checkpoints is not None and record.get("best"):
                    checkpoints.save_best(self)
                if self._early_stopped():
                    self._stop_reason = "early_stopping"
            if checkpoints is not None and ckpt_every and self.step % ckpt_every == 0:
                yield checkpoints.save(self)
        yield {"kind": "done", "step": self.step, "reason": self._stop_reason or "finished"}

    def _eval_record(self) -> dict:
        result = self.evaluate()
        for hook in self.eval_hooks:
            result.update(hook(self))
        record = {"kind": "eval", "step": self.step, **result, "wall": self.wall}
        value = result.get(self.early_stop_metric)
        if value is not None:
            maximise = self.graph.metric_types.get(self.early_stop_metric, "").endswith(
                "accuracy") or any(self.early_stop_metric in getattr(h, "higher_is_better", ())
                                   for h in self.eval_hooks)
            better = self.best is None or (value > self.best if maximise else value < self.best)
            if better:
                self.best, self._since_best = value, 0
                record["best"] = True
            else:
                self._since_best += 1
        return record

    def _early_stopped(self) -> bool:
        return self.patience > 0 and self._since_best >= self.patience


def start_precompile(program, dtype: str) -> None:
    """Compile the kernels the first step needs in a helper process on the idle core while
    this one loads data and starts (engine.kernels.precompile; nothing when they are cached)."""
    from engine.kernels import precompile

    algorithm = next((eq.params.get("algorithm") for eq in program.equations
                      if eq.op.category == "optimizer"), None)
    precompile.start([(eq.op.name, precompile.params_key(eq.params))
                      for eq in program.equations], dtype, algorithm)


def frozen_parameters(doc: dict, program) -> frozenset[str]:
    """Names of the parameters under top-level nodes marked ``"trainable": false`` (a
    ``parameter`` node itself, or every parameter of a layer instance)."""
    frozen_nodes = {n["id"] for n in doc["nodes"] if n.get("trainable") is False}
    return frozenset(name for name, info in program.parameters.items()
                     if info.node.split(".")[0] in frozen_nodes)

