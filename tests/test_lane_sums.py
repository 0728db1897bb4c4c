"""engine.kernels.lane_sums.total against its numpy twin, and the conv bias gradients that
use it against a float64 sum."""

from __future__ import annotations

import numpy as np
import pytest

from engine.kernels.lane_sums import total, total_ref


@pytest.mark.parametrize("shape", [(0,), (1,), (7,), (1000,), (3, 5), (4, 6, 6), (2, 3, 4, 5)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_total_matches_the_twin(shape, dtype):
    a = np.random.default_rng(3).standard_normal(shape).astype(dtype) * 1e3
    assert total(a) == pytest.approx(total_ref(a), rel=1e-12, abs=1e-9)


def test_total_keeps_float64_accumulation():
    a = np.full(1 << 20, 1.0 + 2.0**-20, np.float32)  # float32 sums would drift off
    assert total(a) == total_ref(a) == pytest.approx((1 << 20) * (1.0 + 2.0**-20), rel=0)


class _Ctx:
    def __init__(self) -> None:
        self.needs_input_grad = (True, True, True)

    def save(self, *arrays) -> None:
        self.saved = arrays


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("x_shape,w_shape,stride,route", [
    ((5, 1, 11, 9), (6, 1, 5, 5), 1, False),        # one GEMM per image
    ((9, 4, 5, 5), (7, 4, 3, 3), 2, False),         # whole-batch GEMM (tiny output)
    ((3, 16, 9, 7), (16, 16, 3, 3), 1, "winograd"),  # Winograd F(2×2, 3×3)
])
def test_conv_bias_gradient_is_the_sum_of_the_output_gradient(monkeypatch, native, x_shape,
                                                              w_shape, stride, route):
    from engine.core import registry
    from engine.ops import conv_winograd
    from tests.split_help import force_split

    splits = force_split(monkeypatch, native=native)
    monkeypatch.setattr(conv_winograd, "MIN_CHANNELS", 1)
    from engine.ops import conv_direct

    monkeypatch.setattr(conv_direct, "MAX_CHANNELS_OVER_WINOGRAD", 0)  # the route it names
    rng = np.random.default_rng(11)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    b = rng.standard_normal(w_shape[0]).astype(np.float32)
    params = {"stride": stride, "padding": w_shape[2] // 2, "dilation": 1, "groups": 1}
    spec, ctx = registry.get("conv2d"), _Ctx()
    y = spec.forward(ctx, params, x, w, b)
    assert (ctx.saved[0] == "winograd") == (route == "winograd")
    g = rng.standard_normal(y.shape).astype(np.float32) * 100
    gb = spec.backward(ctx, params, g)[2]
    assert splits  # the op split its images over two threads
    np.testing.assert_allclose(gb, g.astype(np.float64).sum(axis=(0, 2, 3)), rtol=1e-5,
                               atol=1e-3)
