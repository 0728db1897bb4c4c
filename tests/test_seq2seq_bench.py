"""The seq2seq bench case runs and reports both sides (no timing is asserted here)."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
from engine.bench import seq2seq_bench  # noqa: E402

pytestmark = [pytest.mark.torch, pytest.mark.slow]  # two trainers and two decoders: ~1-2 min


def test_the_bench_case_measures_engine_and_twin():
    train = seq2seq_bench.training_case(steps=2, warmup=1, layers=1, width=16, heads=2)
    assert train["step_s"] > 0 and train["twin_step_s"] > 0
    assert train["training_ratio"] == pytest.approx(train["step_s"] / train["twin_step_s"])
    dec = seq2seq_bench.decoding_case(inputs=2, repeats=1, layers=1, width=16, heads=2)
    assert dec["tokens_per_s"] > 0 and dec["twin_tokens_per_s"] > 0
