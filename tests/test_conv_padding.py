"""conv2d's and the pools' border (engine.ops.conv._pad) against numpy's own padding."""

from __future__ import annotations

import numpy as np
import pytest

from engine.ops.conv import _pad


@pytest.mark.parametrize("value", [0.0, -np.inf, 2.5])
@pytest.mark.parametrize("shape,pad", [((3, 2, 5, 7), 1), ((1, 1, 1, 1), 3), ((2, 4, 6, 3), 2)])
def test_border_matches_numpy_pad(shape, pad, value):
    rng = np.random.default_rng(7)
    x = rng.standard_normal(shape).astype(np.float32)[:, :, ::-1]  # not contiguous
    got = _pad(x, pad, value)
    want = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=value)
    assert got.dtype == x.dtype and got.flags.c_contiguous
    np.testing.assert_array_equal(got, want)


def test_no_border_is_the_input():
    x = np.ones((1, 1, 2, 2))
    assert _pad(x, 0) is x
