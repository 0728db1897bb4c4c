"""``parameter.fan_in`` 0: the documented rule is the one the initialiser uses (issue 16 §6)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.core import registry
from engine.core.init import initial_value


@pytest.mark.parametrize("shape,fan_in", [((7,), 7), ((6, 9), 9), ((4, 3, 5), 15),
                                          ((2, 3, 2, 4), 24)])
def test_fan_in_zero_is_dimension_1_times_the_kernel_size(shape, fan_in):
    values = initial_value("fan_in_uniform", shape, {"fan_in": 0},
                           np.random.default_rng(0), np.dtype(np.float64))
    bound = 1 / math.sqrt(fan_in)
    assert np.abs(values).max() <= bound
    draws = [initial_value("fan_in_uniform", shape, {"fan_in": 0}, np.random.default_rng(s),
                           np.dtype(np.float64)) for s in range(60)]
    assert max(np.abs(d).max() for d in draws) > 0.95 * bound  # the range's end is used


def test_the_documented_rule_is_that_rule():
    doc = " ".join(registry.get("parameter").doc.split())
    assert "last dimension)" not in doc.replace("2-D weight", "")
    assert "dimension 1 times the kernel size" in doc
