"""``python -m engine.bench.cnn_cpu --scaling``: both sides at N threads and at one, taking
turns, with each side's speedup and the ratios consistent with the timed medians."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.torch


def test_scaling_reports_both_sides_at_both_thread_counts(monkeypatch, tmp_path):
    pytest.importorskip("torch")
    from engine.bench import cnn_cpu, timing

    monkeypatch.setattr(timing, "PAUSE_S", 0.0)
    out = tmp_path / "scaling.json"
    assert cnn_cpu.main(["--scaling", "--threads", "2", "--json", str(out), "cnn_shapes"]) == 0
    data = json.loads(out.read_text(encoding="utf-8"))
    case = data["cases"]["cnn_shapes"]
    assert data["unit"] == "wall ms per training step, 2 threads and one"
    assert data["command"].startswith("python -m engine.bench.cnn_cpu --scaling")
    for key in ("wiregrad_ms", "wiregrad_one_thread_ms", "torch_ms", "torch_one_thread_ms"):
        assert case[key] > 0
    assert case["ratio"] == pytest.approx(case["wiregrad_ms"] / case["torch_ms"])
    assert case["one_thread_ratio"] == pytest.approx(
        case["wiregrad_one_thread_ms"] / case["torch_one_thread_ms"])
    assert case["wiregrad_speedup"] == pytest.approx(
        case["wiregrad_one_thread_ms"] / case["wiregrad_ms"])
    assert case["torch_speedup"] == pytest.approx(case["torch_one_thread_ms"] / case["torch_ms"])
    assert case["wiregrad_steps"].startswith(("unsplit: ", "split into "))
