"""The first-step and editor cases of `wiregrad bench` (issue 20): their JSON structure,
never their timings (those live in bench/RESULTS.md)."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytestmark = pytest.mark.torch


@pytest.mark.slow  # three fresh processes; `wiregrad bench --quick` (test_bench_quick) runs them
def test_spiral_first_step_cases_time_a_cold_and_a_warm_cache_against_pytorch():
    from engine.bench import benchmark, first_step_cases

    lines: list[str] = []
    cases = first_step_cases.spiral_first_step(1, lines.append, benchmark)
    assert set(cases) == {"first_step_spiral_cold", "first_step_spiral_warm"}
    for name, case in cases.items():
        assert case["wiregrad_ms"] > 0 and case["torch_ms"] > 0, name
        assert case["ratio"] == pytest.approx(case["wiregrad_ms"] / case["torch_ms"]), name
        assert 0 < case["step_ms"] < case["wiregrad_ms"], name  # the step is part of it
    assert cases["first_step_spiral_cold"]["torch_ms"] == cases["first_step_spiral_warm"][
        "torch_ms"]  # one PyTorch reference for both
    assert [line.split()[0] for line in lines] == list(cases)


def test_quick_runs_leave_the_editor_case_out(monkeypatch):
    from engine.bench import benchmark, first_step_cases

    monkeypatch.setattr(first_step_cases, "spiral_first_step", lambda *a: {"spiral": {}})
    monkeypatch.setattr(first_step_cases, "editor_train_rate", lambda log: {"editor": 1})
    assert set(first_step_cases.bench_cases(True, 1, print, benchmark)) == {"spiral"}
    full = first_step_cases.bench_cases(False, 1, print, benchmark)
    assert set(full) == {"spiral", "editor_train_rate"}


@pytest.mark.slow
@pytest.mark.gui
def test_editor_train_rate_compares_the_editor_with_the_cli(monkeypatch):
    from engine.bench import first_step_cases

    monkeypatch.setattr(first_step_cases, "EDITOR_GRAPHS", ("spiral_mlp",))
    monkeypatch.setattr(first_step_cases, "EDITOR_SECONDS", 1.0)
    case = first_step_cases.editor_train_rate(print)
    graph = case["graphs"]["spiral_mlp"]
    assert graph["editor_steps_per_s"] > 0 and graph["cli_steps_per_s"] > 0, graph
    assert case["ratio"] == pytest.approx(graph["editor_steps_per_s"] / graph["cli_steps_per_s"])
    assert graph["event_loop_p99_ms"] >= 0 and case["target"] == 0.9
