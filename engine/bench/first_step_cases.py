"""The first-step and editor cases of ``wiregrad bench`` (issue 20), each in fresh processes.

* ``first_step_spiral_cold`` / ``first_step_spiral_warm`` — process start to the spiral MLP's
  first finished training step (:mod:`engine.bench.first_step`) with an empty and then a warm
  Numba cache, against PyTorch's cold first step of its twin
  (:mod:`engine.bench.torch_first_step`) in the same run;
* ``editor_train_rate`` (full runs only: it trains for 2 × :data:`EDITOR_SECONDS` per graph) —
  ``bench/ui_latency.py`` offscreen: steps per second of the editor's worker against
  ``wiregrad train``'s trainer loop (evaluations included, as in the worker) on the same
  graph (the same :data:`EDITOR_STEPS` steps on each side), with the event loop's p99
  lateness and the CPU each side spends per step. Its
  ``ratio`` is editor / CLI (higher is better; the target is ≥ 0.9).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from engine.bench.timing import case_record

ROOT = Path(__file__).resolve().parents[2]
EDITOR_SECONDS = 10.0
EDITOR_GRAPHS = ("char_gpt", "shapes_cnn")
# Each side times the same steps (``bench/ui_latency.py --steps``), a multiple of the graph's
# ``eval_every`` (char_gpt 250, shapes_cnn 100): the same evaluations on both sides. In windows
# of EDITOR_SECONDS char_gpt's evaluation (0.7–2.3 s CPU, 10–35 steps' worth) fell in one
# window and not the other (session 7: editor 0, CLI 1 in one of three runs); graphs not
# listed are timed for EDITOR_SECONDS (EDITOR_SECONDS × 10 caps a window of steps).
EDITOR_STEPS = {"char_gpt": 250, "shapes_cnn": 5000}


def bench_cases(quick: bool, threads: int, log, bench: Any) -> dict:
    """The cases above; *bench* is :mod:`engine.bench.benchmark` (its ``_child``, ``_fixed``
    and ``_line`` helpers)."""
    cases = spiral_first_step(threads, log, bench)
    if not quick:
        cases["editor_train_rate"] = editor_train_rate(log)
    return cases


def spiral_first_step(threads: int, log, bench: Any) -> dict:
    thread_env = {k: str(threads) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                             "MKL_NUM_THREADS")}
    with tempfile.TemporaryDirectory(prefix="wiregrad-bench-") as home:
        env = {**thread_env, "WIREGRAD_HOME": home,
               "NUMBA_CACHE_DIR": str(Path(home) / "cache" / "numba")}
        cold = bench._child("engine.bench.first_step", "spiral_mlp", env=env)
        bench.fill_cache("spiral_mlp", env)
        warm = bench._child("engine.bench.first_step", "spiral_mlp", env=env)
        torch_s = bench._child("engine.bench.torch_first_step", threads, "spiral_mlp",
                               env=env)["s"]
    cases = {}
    for name, probe in (("first_step_spiral_cold", cold), ("first_step_spiral_warm", warm)):
        cases[name] = case_record(bench._fixed(probe["s"] * 1e3), bench._fixed(torch_s * 1e3),
                                  step_ms=probe["step_s"] * 1e3,
                                  note="process start to the spiral MLP's first finished "
                                       "step; PyTorch: its twin's, cold")
        log(bench._line(name, cases[name]))
    return cases


def editor_train_rate(log) -> dict:
    """Editor vs CLI steps/s per graph of :data:`EDITOR_GRAPHS`; ``ratio``: the lowest."""
    graphs: dict[str, dict] = {}
    for graph in EDITOR_GRAPHS:
        with tempfile.TemporaryDirectory(prefix="wiregrad-bench-ui-") as tmp:
            out = Path(tmp) / "ui.json"
            proc = subprocess.run(
                [sys.executable, str(ROOT / "bench" / "ui_latency.py"), "--seconds",
                 str(EDITOR_SECONDS), "--graph", graph, "--out", str(out),
                 "--steps", str(EDITOR_STEPS.get(graph, 0))],
                capture_output=True, text=True, cwd=ROOT, timeout=600,
                env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
            if not out.exists():
                graphs[graph] = {"error": (proc.stderr or proc.stdout)[-300:]}
                continue
            res = json.loads(out.read_text())
        graphs[graph] = {"editor_steps_per_s": res["editor_steps_per_s"],
                         "cli_steps_per_s": res["cli_steps_per_s"],
                         "editor_vs_cli": res["editor_vs_cli"],
                         "event_loop_p99_ms": res["latency_ms"]["p99"],
                         **{k: res.get(k) for k in ("gui_cpu_per_s", "worker_cpu_ms_per_step",
                                                    "cli_cpu_ms_per_step", "editor_evals",
                                                    "cli_evals", "cli_loop",
                                                    "window_steps")}}
        log(f"editor_train_rate      {graph:10s} editor {res['editor_steps_per_s']:8.1f} "
            f"steps/s   CLI {res['cli_steps_per_s']:8.1f} steps/s   "
            f"{res['editor_vs_cli']:.2f}x   p99 {res['latency_ms']['p99']:.1f} ms")
    ratios = [g["editor_vs_cli"] for g in graphs.values() if "editor_vs_cli" in g]
    return {"wiregrad_ms": None, "torch_ms": None, "ratio": min(ratios) if ratios else None,
            "graphs": graphs, "seconds": EDITOR_SECONDS, "steps": dict(EDITOR_STEPS),
            "target": 0.9,
            "note": "editor (worker, offscreen) steps/s over the CLI trainer's, lowest graph; "
                    "higher is better", "unit": "steps/s"}

