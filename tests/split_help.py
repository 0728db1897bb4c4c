"""Test helpers for engine.ops.two_cores: force every op to split, or never, whatever the
measured break-evens (every ``*MIN_FLOPS`` limit of the module, so a new limit needs no test
edits)."""

from __future__ import annotations

import pytest

from engine.ops import two_cores


def set_split_limits(monkeypatch: pytest.MonkeyPatch, value: float) -> None:
    """Every two-core break-even set to *value* (0: everything splits, 1e30: nothing does)."""
    for name in dir(two_cores):
        if name.endswith("MIN_FLOPS"):
            monkeypatch.setattr(two_cores, name, value)


def force_split(monkeypatch: pytest.MonkeyPatch, spy: bool = True,
                native: bool = True) -> list[int]:
    """Make every op split over two threads; returns the list that records the row count of
    each split (left empty with ``spy=False``): each :func:`two_cores.halves` call and each
    op that runs a parallel Numba kernel (:func:`two_cores.native_threads` above 1).
    ``native=False``: no parallel Numba kernels (the ops that have them split by halves)."""
    calls: list[int] = []
    set_split_limits(monkeypatch, 0.0)
    monkeypatch.setattr(two_cores, "blas_threads", lambda: 2)
    if not native:
        from engine.kernels import parallel

        monkeypatch.setattr(parallel, "available", lambda: False)
    if spy:
        real = two_cores.halves
        monkeypatch.setattr(two_cores, "halves",
                            lambda n, fn: calls.append(n) or real(n, fn))
        real_native = two_cores.native_threads

        def native_threads(rows, flops, min_flops=None):
            threads = real_native(rows, flops, min_flops)
            if threads > 1:
                calls.append(rows)
            return threads

        monkeypatch.setattr(two_cores, "native_threads", native_threads)
    return calls


def shapes_cnn_trainer(samples: int, batch: int, steps: int):
    """A float64 trainer of the shapes CNN on *samples* images in batches of *batch* (a CNN
    step with batch norm, so its convolutions split inside the op, not by rows)."""
    from engine.graphs import builders
    from engine.train.trainer import Trainer

    doc = builders.shapes_cnn(steps=steps)
    doc["training"]["dtype"] = "float64"
    for n in doc["nodes"]:
        if n["type"] == "shapes_images":
            n["params"].update(n_samples=samples, batch_size=batch)
    return Trainer(doc, steps=steps)


def cnn_losses_one_thread_and_split(case, samples: int, dtype, tmp_path, monkeypatch):
    """Three training steps' losses of the CNN bench-style *case* (``engine.bench.cnn_cases``)
    on *samples* random images in *dtype*: on one BLAS thread, then with every split forced
    (Numba's threads, compiled at once); returns ``(one, split, calls)``."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    from engine.bench import cnn_cases
    from engine.kernels import parallel
    from engine.train.trainer import Trainer

    doc = cnn_cases.document(case, cnn_cases.write_data(case, tmp_path, n=samples))
    doc["training"]["dtype"] = np.dtype(dtype).name

    def losses() -> list[float]:
        trainer = Trainer(doc, base_dir=tmp_path, steps=3)
        return [trainer.train_step()["loss"] for _ in range(3)]

    with threadpool_limits(limits=1, user_api="blas"):
        one = losses()
    monkeypatch.setattr(parallel, "BACKGROUND", False)
    calls = force_split(monkeypatch)
    return one, losses(), calls
