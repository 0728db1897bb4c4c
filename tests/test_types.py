"""The engine's type hints hold: mypy with pyproject's [tool.mypy] configuration passes.

Also the explicit checks that narrow Optionals (added so mypy can follow them) raise clear
errors naming what is missing, instead of an AttributeError on None.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.base.errors import WiregradError
from engine.core.program import Equation
from engine.core.registry import ShapeError, get
from engine.sample.seq2seq import Block, Seq2SeqModel

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(900)
def test_mypy_passes_on_the_engine(tmp_path):
    pytest.importorskip("mypy", reason="mypy is in the test extras")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MYPYPATH")}
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "mypy_cache")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout
    assert (tmp_path / "mypy_cache").is_dir()  # the cache went to the test's folder


def test_an_unconnected_input_type_is_a_clear_shape_error():
    eq = Equation("fc.mm", "fc", get("matmul"), {}, ["x:out", None], ["fc.mm:out"],
                  [None, None], [])
    with pytest.raises(ShapeError) as info:
        eq.input_type(1)
    assert info.value.node == "fc" and info.value.port == "b"
    assert "not connected" in str(info.value)


def test_a_missing_seq2seq_weight_is_named():
    w = {"emb.weight": np.zeros((3, 2))}
    model = Seq2SeqModel("ab", 4, 4, w, {"src_emb": "emb", "head": "out"})
    assert model.weight("src_emb") is w["emb.weight"]
    with pytest.raises(WiregradError, match="'out.weight'") as info:
        model.weight("head")
    assert info.value.node == "out"
    with pytest.raises(WiregradError, match="'enc0.mlp.fc.weight'"):
        Block("enc0", 2, False, w).weight("mlp.fc.weight")
