"""The recurrent `wiregrad bench` cases run and report Wiregrad against torch.nn.LSTM (the
structure only; timings live in bench/RESULTS.md)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytestmark = pytest.mark.torch


def test_lstm_layer_pair_computes_what_torch_computes():
    import torch

    from engine.bench.lstm_case import layer_pair

    ours, theirs = layer_pair(batch=3, steps=5, features=4, hidden=6)
    grads = ours()
    theirs()
    cell = theirs.__closure__  # the torch module and input of the pair
    module = next(c.cell_contents for c in cell if isinstance(c.cell_contents, torch.nn.LSTM))
    np.testing.assert_allclose(grads[1], module.weight_ih_l0.grad.numpy(), rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_allclose(grads[2], module.weight_hh_l0.grad.numpy(), rtol=1e-4,
                               atol=1e-5)


def test_bench_cases_report_both_sides():
    from engine.bench import benchmark
    from engine.bench.lstm_case import bench_cases

    lines: list[str] = []
    cases = bench_cases(True, lines.append, benchmark)
    assert set(cases) == {"lstm_layer", "char_lstm_step"}
    for name, case in cases.items():
        assert case["wiregrad_ms"] > 0 and case["torch_ms"] > 0, name
        assert case["ratio"] == pytest.approx(case["wiregrad_ms"] / case["torch_ms"])
    assert len(lines) == 2 and lines[0].startswith("lstm_layer")
