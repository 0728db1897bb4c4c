"""conv2d against ``torch.nn.functional.conv2d`` on random shapes (float64): forward, image,
weight and bias gradients through every route — Winograd 3×3 and 5×5, per image, whole batch,
depthwise, group by group — each in one block and in several blocks of images (the block
sizes shrunk so small shapes split), with and without the image gradient, strides, paddings,
dilations, groups and 1×1 to 5×5 kernels."""

from __future__ import annotations

import numpy as np
import pytest

from engine.core import registry
from engine.ops import conv_whole, conv_winograd

pytestmark = pytest.mark.torch

SHAPES = 60


class _Ctx:
    def __init__(self, needs: tuple) -> None:
        self.needs_input_grad = needs

    def save(self, *arrays) -> None:
        self.saved = arrays


def _case(seed: int) -> tuple:
    """(x shape, w shape, params, route hint) of random case *seed*, always a valid conv."""
    rng = np.random.default_rng(seed)
    groups = int(rng.choice([1, 1, 1, 2]))
    k = int(rng.choice([1, 2, 3, 3, 3, 5]))
    stride = int(rng.choice([1, 1, 2]))
    dilation = int(rng.choice([1, 1, 1, 2]))
    pad = int(rng.integers(0, 3))
    cin = groups * int(rng.choice([1, 2, 3, 8, 9]))
    cout = groups * int(rng.integers(1, 5))
    if seed % 5 == 2:  # every fifth case a depthwise one (one input channel per group)
        groups = cin = int(rng.choice([2, 3, 8]))
        cout = cin * int(rng.integers(1, 4))
    if seed % 7 == 3:  # every seventh case groups that each take the Winograd 3×3 route
        groups, k, stride, dilation = 2, 3, 1, 1
        cin, cout = 2 * int(rng.choice([8, 9])), 2 * int(rng.integers(1, 4))
    if seed % 6 == 0:  # every sixth case a 5×5 one for the F(2×2, 5×5) route
        groups, k, stride, dilation, cin = 1, 5, 1, 1, 16
        cout = int(rng.integers(1, 5))
    span = dilation * (k - 1) + 1
    h = int(rng.integers(max(1, span - 2 * pad), span - 2 * pad + 9))
    w = int(rng.integers(max(1, span - 2 * pad), span - 2 * pad + 9))
    n = int(rng.integers(1, 6))
    params = {"stride": stride, "padding": pad, "dilation": dilation, "groups": groups}
    return (n, cin, h, w), (cout, cin // groups, k, k), params, bool(rng.integers(0, 2))


@pytest.mark.parametrize("seed", range(SHAPES))
def test_conv2d_matches_torch_on_random_shapes(seed, monkeypatch):
    torch = pytest.importorskip("torch")
    xs, ws, params, small_blocks = _case(seed)
    if small_blocks:  # one or two images a block
        monkeypatch.setattr(conv_whole, "BLOCK_BYTES", 1)
        monkeypatch.setattr(conv_winograd, "BLOCK_BYTES", 1)
    rng = np.random.default_rng(1000 + seed)
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    need_x = bool(seed % 3)
    spec, ctx = registry.get("conv2d"), _Ctx((need_x, True, True))
    y = spec.forward(ctx, params, x, w, b)
    g = rng.standard_normal(y.shape)
    gx, gw, gb = spec.backward(ctx, params, g)

    xt = torch.tensor(x, requires_grad=True)
    wt, bt = torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True)
    yt = torch.nn.functional.conv2d(xt, wt, bt, params["stride"], params["padding"],
                                    params["dilation"], params["groups"])
    yt.backward(torch.tensor(g))
    tol = {"rtol": 1e-10, "atol": 1e-10}
    np.testing.assert_allclose(y, yt.detach().numpy(), **tol)
    np.testing.assert_allclose(gw, wt.grad.numpy(), **tol)
    np.testing.assert_allclose(gb, bt.grad.numpy(), **tol)
    if need_x:
        np.testing.assert_allclose(gx, xt.grad.numpy(), **tol)
    else:
        assert gx is None


def test_the_random_shapes_reach_every_route():
    """The fuzz covers the Winograd, depthwise, grouped and both GEMM routes, in one block
    and in several."""
    from engine.ops import conv, conv_depthwise, conv_grouped

    seen = set()
    for seed in range(SHAPES):
        xs, ws, params, small = _case(seed)
        if conv_depthwise.applies(params, xs, ws):
            seen.add(("depthwise", small))
            continue
        if conv_grouped.applies(params, xs, ws):  # then each group takes one of the routes below
            seen.add(("grouped", small))
            xs, ws = (xs[0], xs[1] // params["groups"], *xs[2:]), (ws[0] // params["groups"],
                                                                 *ws[1:])
            params = {**params, "groups": 1}
        if conv_winograd.applies(params, xs, ws):
            seen.add((f"winograd{ws[2]}", small))
            continue
        ho = (xs[2] + 2 * params["padding"] - params["dilation"] * (ws[2] - 1) - 1)
        ho = ho // params["stride"] + 1
        wo = (xs[3] + 2 * params["padding"] - params["dilation"] * (ws[3] - 1) - 1)
        wo = wo // params["stride"] + 1
        per_image = conv.by_image(params["groups"], ws[1] * ws[2] * ws[3], ho, wo)
        seen.add(("by_image" if per_image else "whole", small))
    routes = ("winograd3", "winograd5", "by_image", "whole", "depthwise", "grouped")
    assert seen == {(r, s) for r in routes for s in (True, False)}
