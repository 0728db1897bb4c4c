"""The rest of a CNN step on both cores (engine.ops.two_cores): batch norm in blocks of
channels, pooling in blocks of rows. Forced onto two threads, each op gives the unsplit
numbers bit for bit (every block computes the same per-channel or per-row arithmetic), and
the split is asked for with the blocks' axis."""

from __future__ import annotations

import numpy as np
import pytest

from engine.core import registry
from engine.ops import two_cores
from tests.split_help import force_split, set_split_limits


class _Ctx:
    training = True
    needs_input_grad: tuple = ()

    def __init__(self, state: dict | None = None) -> None:
        self.state = state or {}

    def save(self, *arrays) -> None:
        self.saved = arrays


def _run(name: str, params: dict, inputs: list, state: dict | None = None):
    spec = registry.get(name)
    ctx = _Ctx({k: v.copy() for k, v in (state or {}).items()})
    y = spec.forward(ctx, params, *inputs)
    g = np.random.default_rng(7).standard_normal(y.shape).astype(y.dtype)
    grads = spec.backward(ctx, params, g)
    return [y, *[a for a in grads if a is not None], *ctx.state.values()]


def _both(name, params, inputs, monkeypatch, state=None):
    """(unsplit results, split results, the row counts each split was asked for with). The
    split runs on Numba's threads (engine.kernels.parallel) and again as two Python halves:
    both give the same numbers bit for bit."""
    set_split_limits(monkeypatch, 1e30)
    whole = _run(name, params, inputs, state)
    with monkeypatch.context() as m:
        halves_calls = force_split(m, native=False)
        halves = _run(name, params, inputs, state)
    calls = force_split(monkeypatch)
    split = _run(name, params, inputs, state)
    assert calls == halves_calls
    for a, b in zip(split, halves, strict=True):
        np.testing.assert_array_equal(a, b)
    return whole, split, calls


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(6, 5, 4, 3), (7, 9)])
def test_batch_norm_in_blocks_of_channels_gives_the_unsplit_numbers(dtype, shape, monkeypatch):
    rng = np.random.default_rng(1)
    c = shape[1]
    x = (rng.standard_normal(shape) * 3 + 2).astype(dtype)
    w, b = rng.standard_normal(c).astype(dtype), rng.standard_normal(c).astype(dtype)
    state = {"running_mean": np.zeros(c, dtype), "running_var": np.ones(c, dtype)}
    params = {"eps": 1e-5, "momentum": 0.1}
    whole, split, calls = _both("batch_norm", params, [x, w, b], monkeypatch, state)
    assert calls == [c, c]  # forward and backward, in blocks of channels
    assert len(whole) == 6  # out, gx, gw, gb, running mean and var
    for got, want in zip(split, whole, strict=True):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,params,shape", [
    ("max_pool2d", {"kernel": 2, "stride": None, "padding": 0}, (5, 3, 7, 6)),
    ("avg_pool2d", {"kernel": 2, "stride": None, "padding": 0, "count_include_pad": True},
     (6, 2, 6, 9)),
    ("avg_pool2d", {"kernel": 2, "stride": 2, "padding": 1, "count_include_pad": False},
     (4, 3, 5, 5)),
])
def test_pooling_in_blocks_of_images_gives_the_unsplit_numbers(dtype, name, params, shape,
                                                               monkeypatch):
    x = np.random.default_rng(2).standard_normal(shape).astype(dtype)
    whole, split, calls = _both(name, params, [x], monkeypatch)
    assert calls == [shape[0], shape[0]]  # forward and backward, in blocks of images
    for got, want in zip(split, whole, strict=True):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    gx = whole[1]
    ho, wo = whole[0].shape[2:]
    if params["padding"] == 0:  # odd sizes: the row / column in no window gets no gradient
        assert not gx[:, :, 2 * ho:].any() and not gx[:, :, :, 2 * wo:].any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,params,kernel_calls", [
    ("relu", {}, 2),  # forward and backward kernels
    ("leaky_relu", {"negative_slope": 0.1}, 2),
    ("silu", {}, 1),  # float32: one forward kernel gives the slope; the backward is g · slope
])
def test_activations_in_blocks_of_elements_give_the_unsplit_numbers(dtype, name, params,
                                                                    kernel_calls, monkeypatch):
    from engine.ops import elementwise

    monkeypatch.setattr(elementwise, "RELU_KERNEL_MIN", 0)
    x = (np.random.default_rng(3).standard_normal((3, 4, 5, 7)) * 3).astype(dtype)
    whole, split, calls = _both(name, params, [x], monkeypatch)
    uses_kernels = name != "silu" or dtype == np.float32  # float64 SiLU: the numpy formula
    assert calls == ([x.size] * kernel_calls if uses_kernels else [])
    for got, want in zip(split, whole, strict=True):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def test_small_ops_stay_whole_at_two_threads(monkeypatch):
    """Below the measured sizes nothing splits: the hand-off would cost more than it saves.
    Numba's threads (cheap to start) take a memory pass from NATIVE_PASS_MIN_FLOPS, the two
    Python halves only from PASS_MIN_FLOPS (when Numba's threads are not available)."""
    calls: list = []
    real, real_native = two_cores.halves, two_cores.native_threads

    def native(rows, flops, min_flops=None):
        threads = real_native(rows, flops, min_flops)
        if threads > 1:
            calls.append(("numba", rows))
        return threads

    monkeypatch.setattr(two_cores, "blas_threads", lambda: 2)
    monkeypatch.setattr(two_cores, "halves", lambda n, fn: calls.append(n) or real(n, fn))
    monkeypatch.setattr(two_cores, "native_threads", native)
    x = np.random.default_rng(4).standard_normal((8, 16, 24, 24)).astype(np.float32)  # 74k
    c = x.shape[1]
    state = {"running_mean": np.zeros(c, np.float32), "running_var": np.ones(c, np.float32)}
    _run("batch_norm", {"eps": 1e-5, "momentum": 0.1}, [x], state)
    _run("max_pool2d", {"kernel": 2, "stride": None, "padding": 0}, [x])
    _run("relu", {}, [x])
    assert calls == []
    big = np.zeros((64, 16, 32, 32), np.float32)  # 1M elements (see NATIVE_PASS_MIN_FLOPS)
    _run("max_pool2d", {"kernel": 2, "stride": None, "padding": 0}, [big])  # 8 per element
    _run("relu", {}, [big])  # 4 per element: stays whole
    assert calls == [("numba", 64)] * 2  # the pool's forward and backward
    calls.clear()
    huge = np.zeros((64, 64, 64, 64), np.float32)  # 16M elements: pool and relu split
    _run("max_pool2d", {"kernel": 2, "stride": None, "padding": 0}, [huge])
    _run("relu", {}, [huge])
    assert calls == [("numba", 64)] * 2 + [("numba", huge.size)] * 2
    calls.clear()
    from engine.kernels import parallel

    monkeypatch.setattr(parallel, "available", lambda: False)
    _run("max_pool2d", {"kernel": 2, "stride": None, "padding": 0}, [big])
    _run("relu", {}, [big])
    assert calls == []  # 1M elements: still whole on Python threads (see PASS_MIN_FLOPS)
    _run("max_pool2d", {"kernel": 2, "stride": None, "padding": 0}, [huge])
    _run("relu", {}, [huge])
    assert calls == [64, 64, huge.size, huge.size]
