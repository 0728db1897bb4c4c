"""The seq2seq and word-GPT bench cases' CPU-time cross-check (one thread) runs and reports
both sides; `wiregrad bench --quick` (tests/test_bench_quick.py) covers their wall-clock form.
No timing is asserted here."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
from engine.bench import seq2seq_bench, word_gpt_bench  # noqa: E402

pytestmark = [pytest.mark.torch, pytest.mark.slow]  # two trainers and two decoders each


@pytest.mark.parametrize("module, names", [
    (seq2seq_bench, ("seq2seq_step", "seq2seq_decode")),
    (word_gpt_bench, ("word_gpt_step", "word_gpt_sample"))])
def test_the_cpu_cross_check_measures_engine_and_twin(module, names):
    cases = module.cpu_cases(quick=True)
    assert set(cases) == set(names)
    for case in cases.values():
        assert case["wiregrad_cpu_ms"] > 0 and case["torch_cpu_ms"] > 0
        assert case["ratio"] == pytest.approx(case["wiregrad_cpu_ms"] / case["torch_cpu_ms"])
        assert case["speedup"] == pytest.approx(1 / case["ratio"])
    if module is seq2seq_bench:
        assert cases["seq2seq_decode"]["same_output"] is True
        assert cases["seq2seq_decode"]["tokens"] > len(seq2seq_bench.TEXTS)
