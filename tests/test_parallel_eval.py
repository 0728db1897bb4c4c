"""Evaluation batches on several threads (engine.train.evaluation): the same numbers as one
after another, errors raised in batch order, the batch iterator never read by two threads."""

from __future__ import annotations

import threading
import time

import pytest
from threadpoolctl import threadpool_limits

from engine.graphs import presets
from engine.train import evaluation
from engine.train.trainer import Trainer


class _Batches:
    """An iterator of 0 … n-1 that fails if two threads read it at once."""

    def __init__(self, n: int) -> None:
        self.n, self.i, self.busy, self.overlaps = n, 0, False, 0
        self.readers: set[str] = set()

    def __iter__(self):
        return self

    def __next__(self) -> int:
        if self.busy:
            self.overlaps += 1
        self.busy = True
        try:
            time.sleep(0.0005)  # widen the window in which a second reader would overlap
            self.readers.add(threading.current_thread().name)
            if self.i >= self.n:
                raise StopIteration
            self.i += 1
            return self.i - 1
        finally:
            self.busy = False


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_results_come_back_in_batch_order(threads):
    def slow_square(i: int) -> int:
        time.sleep(0.002 * (i % 3))  # batches finish out of order on several threads
        return i * i

    batches = _Batches(23)
    assert evaluation.map_batches(slow_square, batches, threads) == [i * i for i in range(23)]
    assert batches.overlaps == 0


def test_several_threads_share_the_batches():
    """Batch 0 holds its thread until batch 1 has started: only another thread can start it."""
    second_started = threading.Event()
    seen: dict[int, str] = {}

    def record(i: int) -> int:
        seen[i] = threading.current_thread().name
        if i == 1:
            second_started.set()
        if i == 0:
            assert second_started.wait(timeout=60)
        return i

    assert evaluation.map_batches(record, iter(range(6)), 2) == list(range(6))
    assert seen[0] != seen[1]


def test_the_first_error_in_batch_order_is_raised_and_no_batch_starts_after_it():
    started: list[int] = []

    def fail_on_odd(i: int) -> int:
        started.append(i)
        if i in (3, 5):
            time.sleep(0.01 if i == 3 else 0.0)  # 5 fails first in time, 3 first in order
            raise ValueError(f"batch {i}")
        return i

    with pytest.raises(ValueError, match="batch 3"):
        evaluation.map_batches(fail_on_odd, iter(range(40)), 2)
    assert max(started) < 39  # the rest were not started


def test_a_failing_reader_is_raised():
    def reader():
        yield 0
        raise KeyError("broken batch file")

    with pytest.raises(KeyError, match="broken batch file"):
        evaluation.map_batches(lambda i: i, reader(), 2)


def test_an_empty_stream_gives_no_results():
    assert evaluation.map_batches(lambda i: i, iter(()), 2) == []


def test_evaluate_on_two_threads_equals_one_after_another():
    """char_gpt's 20 evaluation batches: identical loss either way (each batch's sums do not
    depend on the thread that ran it, and they are added in batch order)."""
    doc, path = presets.load("char_gpt")
    doc["training"]["eval_batches"] = 4
    trainer = Trainer(doc, base_dir=path.parent, steps=10, batch_split=1)
    with threadpool_limits(limits=1):
        trainer._eval_ways = 1
        alone = trainer.evaluate()
    trainer._eval_ways = 2
    both = trainer.evaluate()
    assert both == alone
    assert set(both) >= {"val_loss", "bpc"}


def test_small_graphs_evaluate_on_one_thread():
    doc, path = presets.load("spiral_mlp")
    trainer = Trainer(doc, base_dir=path.parent, steps=10)
    with threadpool_limits(limits=2):
        result = trainer.evaluate()
    assert trainer._eval_ways == 1  # a few kFLOP per batch: no hand-off
    assert result["val_loss"] > 0


def test_a_gpt_evaluates_on_the_runs_two_threads():
    doc, path = presets.load("char_gpt")
    doc["training"]["eval_batches"] = 2
    trainer = Trainer(doc, base_dir=path.parent, steps=10)
    with threadpool_limits(limits=2):
        trainer.evaluate()
    assert trainer._eval_ways == 2  # ~0.5 GFLOP per batch: worth a thread each


def test_wiregrad_evaluate_threads_give_the_same_numbers(tmp_path, capsys):
    """``wiregrad evaluate --threads 1`` (batches one after another) and the default (one per
    thread) print the same JSON; a bad thread count is named."""
    import json

    from engine import cli

    doc, path = presets.load("char_gpt")
    trainer = Trainer(doc, base_dir=path.parent, steps=10)
    weights = tmp_path / "w.safetensors"
    from safetensors.numpy import save_file

    save_file({k: v.copy() for k, v in trainer.params.items()}, str(weights))
    runs = []
    for extra in (["--threads", "1"], ["--threads", "2"]):
        assert cli.main(["evaluate", "char_gpt", "--weights", str(weights), "--batches", "3",
                         "--json", *extra]) == 0
        runs.append(json.loads(capsys.readouterr().out.strip().splitlines()[-1]))
    assert runs[0] == runs[1]
    assert cli.main(["evaluate", "char_gpt", "--weights", str(weights), "--threads", "0"]) == 2
    assert "--threads" in capsys.readouterr().err
