"""engine.core.warmup compiles the kernels a graph needs in the dtype it trains in only."""

from __future__ import annotations

import numpy as np

from engine.core import warmup


def test_warm_up_runs_each_op_once_in_the_graphs_dtype(monkeypatch):
    from engine.graphs import presets

    ran: list[tuple[str, str]] = []
    monkeypatch.setattr(warmup, "_run_once",
                        lambda case, dtype: ran.append((case.equation.op.name,
                                                        np.dtype(dtype).name)))
    doc = presets.load("spiral_mlp")[0]
    count = warmup.warm_up(doc)
    assert count == len(ran) > 0
    assert {d for _, d in ran} == {"float32"}
    assert {n for n, _ in ran} >= {"cross_entropy", "matmul"}
    ran.clear()
    doc["training"] = {**doc.get("training", {}), "dtype": "float64"}
    warmup.warm_up(doc)
    assert {d for _, d in ran} == {"float64"} and len(ran) == count
