"""`wiregrad bench --quick` runs end to end and writes the documented JSON structure.

Only the structure is checked, never the timings (timings live in bench/RESULTS.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytestmark = pytest.mark.torch
ROOT = Path(__file__).resolve().parent.parent

TIMED = ("gpt_step", "gpt_step_busy", "gpt6x256_step", "mlp_step", "sample", "sgemm_1024",
         "first_step_cold_cache", "first_step_warm_cache", "import",
         # issue 17 §6 / 18 §4: the seq2seq and word-GPT presets against their twins
         "seq2seq_step", "seq2seq_decode", "word_gpt_step", "word_gpt_sample",
         # issue 20 §2: the spiral MLP's first step, cold and warm kernel cache
         "first_step_spiral_cold", "first_step_spiral_warm")
CNN = ("cnn_shapes", "cnn_digits", "cnn_issue24", "cnn_rgb32", "cnn_wide28", "cnn_stride20",
       "cnn_lenet5", "cnn_fchead", "cnn_stem48")


@pytest.mark.timeout(900)  # the subprocess's own 600 s limit must be the one that counts
def test_bench_quick_writes_the_json_structure(tmp_path):
    out = tmp_path / "bench.json"
    env = {**os.environ, "WIREGRAD_HOME": str(tmp_path / "home")}
    proc = subprocess.run([sys.executable, "-m", "engine.cli", "bench", "--quick", "--json",
                           str(out), "--threads", "1"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text(encoding="utf-8"))
    assert set(result) >= {"cases", "machine", "versions"}
    assert result["quick"] is True
    assert result["machine"]["threads"] == 1
    assert isinstance(result["machine"]["llvm_cpu"], str) and result["machine"]["llvm_cpu"]
    assert result["machine"]["direct_conv_block"] == [6 if result["machine"]["avx512"] else 4,
                                                      16]
    assert {"numpy", "numba", "torch", "python"} <= set(result["versions"])
    made = result["provenance"]  # the command that made the file, the commit and the load
    assert made["command"].endswith(f"bench --quick --json {out} --threads 1")
    assert len(made["load_average_before"]) == 3 and len(made["load_average_after"]) == 3
    cases = result["cases"]
    for name in (*TIMED, "peak_rss_growth", "editor_start"):
        assert name in cases, name
        assert {"wiregrad_ms", "torch_ms", "ratio"} <= set(cases[name]), name
    for name in TIMED:
        case = cases[name]
        assert case["wiregrad_ms"] > 0 and case["torch_ms"] > 0, name
        assert case["ratio"] == pytest.approx(case["wiregrad_ms"] / case["torch_ms"]), name
    for name in CNN:  # every CNN case is named cnn_…, timed against PyTorch and on one thread
        case = cases[name]
        assert case["wiregrad_ms"] > 0 and case["torch_ms"] > 0, name
        assert case["wiregrad_one_thread_ms"] > 0, name
        assert case["threads_vs_one"] == pytest.approx(
            case["wiregrad_ms"] / case["wiregrad_one_thread_ms"]), name
    assert len([n for n in cases if n.startswith("cnn_")]) >= 5
    gpt = cases["gpt_step"]
    assert 0 < gpt["wiregrad_mfu"] and 0 < gpt["torch_mfu"]
    assert isinstance(gpt["within_reference"], bool)
    assert gpt["wiregrad_min_ms"] <= gpt["wiregrad_ms"] <= gpt["wiregrad_max_ms"]
    assert cases["gpt_step_busy"]["other_programs"] == 1  # timed beside a busy process
    assert cases["sample"]["wiregrad_tokens_per_s"] > 0
    for name in ("seq2seq_decode", "word_gpt_sample"):  # per token; speedup = torch / ours
        case = cases[name]
        assert case["unit"] == "ms per token" and case["tokens"] > 0, name
        assert case["wiregrad_tokens_per_s"] == pytest.approx(1e3 / case["wiregrad_ms"]), name
        assert case["torch_tokens_per_s"] == pytest.approx(1e3 / case["torch_ms"]), name
        assert case["speedup"] == pytest.approx(1 / case["ratio"]), name
    assert cases["seq2seq_decode"]["same_output"] is True  # both decoded the same ids
    for name in ("seq2seq_step", "word_gpt_step"):
        assert cases[name]["wiregrad_min_ms"] <= cases[name]["wiregrad_ms"], name
    rss = cases["peak_rss_growth"]
    assert rss["wiregrad_mb"] >= 0 and rss["torch_mb"] >= 0
