"""The classic presets learn what their descriptions promise, in seconds, from the shipped
documents: spirals ≥ 97 % within the document's 2,000 steps, sine MSE ≤ 0.01, shapes ≥ 95 %.

BLAS runs single-threaded here: on a busy two-core machine OpenBLAS threads spin against
other processes and make these small GEMMs ten times slower, not faster.
"""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from engine.core import document
from engine.graphs.builders import TEMPLATES
from engine.graphs.presets import presets_dir
from engine.train.trainer import Trainer


def _preset(name: str) -> dict:
    return document.load(presets_dir() / f"{name}.json")


def _final_eval(name: str) -> tuple[dict, Trainer]:
    trainer = Trainer(_preset(name))
    with threadpool_limits(limits=1):
        records = list(trainer.run())
    assert records[-1]["reason"] == "finished"
    evals = [r for r in records if r["kind"] == "eval"]
    assert evals[-1]["step"] == trainer.total_steps
    return evals[-1], trainer


def test_spiral_mlp_reaches_97_percent_within_2000_steps():
    final, trainer = _final_eval("spiral_mlp")
    assert trainer.total_steps <= 2000
    assert final["accuracy"] >= 0.97, final


def test_sine_regression_reaches_mse_of_one_hundredth():
    final, _ = _final_eval("sine_regression")
    assert final["mean_squared_error"] <= 0.01, final
    assert final["val_loss"] == pytest.approx(final["mean_squared_error"])


def test_shapes_cnn_reaches_95_percent():
    final, trainer = _final_eval("shapes_cnn")
    assert final["accuracy"] >= 0.95, final
    types = [n["type"] for n in trainer.doc["nodes"]]
    assert {"Conv2d", "MaxPool2d", "Flatten", "Linear", "cross_entropy", "accuracy"} <= set(types)


def test_digits_cnn_trains_with_a_falling_loss():
    """The ≥ 97 % figure is measured by `wiregrad train digits_cnn` (docs/presets.md)."""
    pytest.importorskip("sklearn")
    trainer = Trainer(_preset("digits_cnn"), steps=60)
    with threadpool_limits(limits=1):
        losses = [r["loss"] for r in trainer.run() if r["kind"] == "train"]
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])
    assert trainer.graph.datasets["digits"].info["val"] >= 350  # a real held-out split


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_shipped_presets_equal_their_templates(name):
    shipped = _preset(name)
    built = TEMPLATES[name]()
    shipped.pop("weights", None)
    assert document.dumps(built) == document.dumps(shipped), (
        f"presets/{name}.json is stale: run python tools/make_presets.py {name}")
    assert shipped["meta"]["description"]
