"""The direct convolution kernels (engine.kernels.conv_direct) and their route in conv2d:
every output, weight, bias and image gradient against float64 numpy, on shapes that stress
the register blocks (output channels not a multiple of the block, fewer pixels or taps than a
block, strides, dilations, batches of one), and a training step that takes them."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit
from numba.core.errors import TypingError

from engine.kernels import conv_direct as D
from engine.ops import conv_direct as route
from tests.helpers import OpCtx, assert_close, assert_conv_matches, numpy_conv, record_native_runs
from tests.split_help import force_split

# (N, C, H, W, Cout, k, stride, padding, dilation)
SHAPES = [
    (2, 3, 48, 48, 16, 7, 2, 3, 1),  # a ResNet-like stem: one full channel block
    (3, 1, 13, 11, 5, 3, 1, 1, 1),  # 5 channels of a 16-lane block, rows of 11 pixels
    (2, 2, 20, 17, 24, 3, 2, 1, 1),  # 24 channels: a full block and a partial one
    (1, 3, 9, 10, 33, 3, 1, 0, 2),  # dilation 2, 33 channels (three blocks), one image
    (2, 5, 8, 8, 16, 1, 1, 0, 1),  # 1×1: 5 taps, fewer than a block of taps
    (2, 1, 6, 6, 7, 5, 1, 2, 1),  # 5×5 on 6×6
    (3, 2, 5, 4, 9, 3, 3, 1, 1),  # stride 3: 2×2 = 4 output pixels, fewer than a block
    (2, 4, 11, 9, 16, 4, 2, 2, 1),  # an even kernel, odd sizes
]


def _direct_pass(shape, dtype, bias: bool, need_x: bool):
    """(y, gx or None, gw, gb or None) of the serial direct kernels, with the inputs."""
    n, c, h, w, cout, k, s, p, d = shape
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((cout, c, k, k)).astype(dtype)
    b = rng.standard_normal(cout).astype(dtype) if bias else None
    ho, wo = (h + 2 * p - d * (k - 1) - 1) // s + 1, (w + 2 * p - d * (k - 1) - 1) // s + 1
    g = rng.standard_normal((n, cout, ho, wo)).astype(dtype)
    xp = np.zeros((n, c, h + 2 * p, w + 2 * p), dtype)
    xp[:, :, p:p + h, p:p + w] = x
    taps, pixels = D.tables(c, h + 2 * p, w + 2 * p, k, k, s, d, ho, wo)
    wmat = np.ascontiguousarray(wt.reshape(cout, -1))
    out = np.empty((n, cout, ho * wo), dtype)
    D.forward_part(xp.reshape(n, -1), taps, pixels, D.pack_weights(wmat),
                   D.pack_bias(b, cout, dtype), out, 0, n)
    gwpk = np.zeros((-(-cout // D.LANES), c * k * k, D.LANES), dtype)
    gb = np.zeros(cout if bias else 0, dtype)
    gxp = np.zeros(xp.shape if need_x else (0, 1, 1, 1), dtype)
    D.backward_part(xp.reshape(n, -1), taps, pixels, wmat, k, k, s, d, ho, wo,
                    g.reshape(n, cout, -1), gwpk, gb, gxp, 0, n)
    gx = gxp[:, :, p:p + h, p:p + w] if need_x else None
    grads = (gx, D.unpack_weights(gwpk, cout).reshape(wt.shape), gb if bias else None)
    return (x, wt, b, g, (s, p, d)), (out.reshape(g.shape), *grads)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_the_direct_kernels_match_a_float64_convolution(shape, dtype):
    (x, w, b, g, (s, p, d)), (y, gx, gw, gb) = _direct_pass(shape, dtype, True, True)
    ry, rgx, rgw, rgb = numpy_conv(x, w, b, g, s, p, d)
    assert_close(y, ry, dtype, "forward")
    assert_close(gx, rgx, dtype, "input gradient")
    assert_close(gw, rgw, dtype, "weight gradient")
    assert_close(gb, rgb, dtype, "bias gradient")


def test_without_bias_or_image_gradient_only_the_weight_gradient_is_made():
    (x, w, _, g, (s, p, d)), (y, gx, gw, gb) = _direct_pass(SHAPES[2], np.float32, False,
                                                            False)
    ry, _, rgw, _ = numpy_conv(x, w, None, g, s, p, d)
    assert gx is None and gb is None
    assert_close(y, ry, np.float32, "forward")
    assert_close(gw, rgw, np.float32, "weight gradient")


def test_weights_pack_into_zero_padded_channel_blocks_and_back():
    wmat = np.arange(40 * 7, dtype=np.float32).reshape(40, 7)
    packed = D.pack_weights(wmat)
    assert packed.shape == (3, 7, D.LANES) and packed.flags.c_contiguous
    assert packed[2, :, 40 - 32:].max() == 0  # lanes past Cout
    np.testing.assert_array_equal(D.unpack_weights(packed, 40), wmat)
    np.testing.assert_array_equal(D.pack_bias(None, 5, np.float32), np.zeros((1, D.LANES)))


def test_a_stack_block_needs_its_size_at_compile_time():
    from engine.kernels.stack import stack_block

    @njit
    def runtime_rows(a, rows):
        return stack_block(a, rows, 4)

    with pytest.raises(TypingError):
        runtime_rows(np.zeros(3, np.float32), 2)


def test_the_route_rule_takes_float32_convolutions_of_many_taps():
    one = {"groups": 1}
    assert route.takes_forward(one, (16, 3, 7, 7), np.float32, 576)
    assert route.takes_forward(one, (16, route.MIN_TAPS, 1, 1), np.float32, 576)
    assert not route.takes_forward(one, (16, route.MIN_TAPS - 1, 1, 1), np.float32, 576)
    assert not route.takes_forward(one, (16, 3, 7, 7), np.float64, 576)  # would spill on AVX2
    assert not route.takes_forward({"groups": 3}, (16, 3, 7, 7), np.float32, 576)
    assert not route.takes_forward(one, (16, 3, 7, 7), np.float32, route.MIN_PIXELS - 1)
    assert not route.takes_forward(one, (512, 64, 4, 4), np.float32, 64)  # 2 MiB of weights
    assert route.takes_forward(one, (64, 256, 1, 1), np.float32, 64)
    assert not route.takes_forward(one, (128, 256, 1, 1), np.float32, 64)  # a wide 1×1
    assert route.takes_backward(one, (128, 128, 3, 3), np.float32, route.WIDE_PIXELS)
    assert route.takes_backward(one, (route.MAX_LANES_TINY, 32, 3, 3), np.float32, 16)
    assert not route.takes_backward(one, (route.MAX_LANES_TINY + 1, 32, 3, 3), np.float32, 16)
    assert not route.takes_backward(one, (16, 32, 3, 3), np.float32,
                                    route.MIN_PIXELS_BACKWARD - 1)
    assert route.takes_forward(one, (16, 32, 3, 3), np.float32, route.MIN_PIXELS_BACKWARD - 1)


def _conv_op(x, w, b, params, needs):
    from engine.core.registry import get

    spec, ctx = get("conv2d"), OpCtx(needs)
    y = spec.forward(ctx, params, x, w, b)
    g = np.random.default_rng(9).standard_normal(y.shape).astype(x.dtype)
    return g, y, spec.backward(ctx, params, g)


def _params(stride: int, padding: int, dilation: int = 1) -> dict:
    return {"stride": stride, "padding": padding, "dilation": dilation, "groups": 1}


# (x shape, weight shape, params, needs, the kernels that run)
ROUTE_CASES = [
    ((5, 3, 23, 19), (20, 3, 7, 7), _params(2, 3), (False, True), ("direct", "direct")),
    ((4, 6, 12, 13), (20, 6, 5, 5), _params(1, 0), (True, True), ("direct", "direct")),
    ((3, 2, 17, 15), (20, 2, 6, 6), _params(1, 2, 2), (True, True), ("direct", "direct")),
    # 288 taps: the whole-batch route's shapes
    ((5, 32, 12, 11), (20, 32, 3, 3), _params(2, 1), (True, True), ("direct", "direct")),
    # 16 output pixels of 72 channels: the weight gradient stays on the GEMM
    ((3, 16, 8, 8), (72, 16, 3, 3), _params(2, 1), (True, True), ("direct", "gemm")),
    # 9 output pixels: a short pixel loop for the weight gradient
    ((3, 16, 6, 6), (16, 16, 3, 3), _params(2, 1), (True, True), ("direct", "gemm")),
    # one output pixel (a fully-connected layer written as a convolution): GEMM both ways
    ((3, 8, 4, 4), (24, 8, 4, 4), _params(1, 0), (True, True), ("gemm", "gemm")),
]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape,wshape,params,needs,kernels", ROUTE_CASES)
def test_conv2d_takes_the_direct_kernels_on_two_cores(shape, wshape, params, needs, kernels,
                                                      bias, monkeypatch):
    """conv2d in float32 with ≥ 64 taps, its parallel kernels forced on: the direct kernels
    run where the rule says (forward, backward) and give float64's numbers."""
    force_split(monkeypatch)
    ran = record_native_runs(monkeypatch, modules=True)
    rng = np.random.default_rng(4)
    x = rng.standard_normal(shape).astype(np.float32)
    w = (rng.standard_normal(wshape) * 0.2).astype(np.float32)
    b = rng.standard_normal(wshape[0]).astype(np.float32) if bias else None
    g, y, grads = _conv_op(x, w, b, params, (*needs, bias))
    assert [name.split(".")[0] for name in ran] == [f"conv_{kernels[0]}", f"conv_{kernels[1]}"]
    reference = numpy_conv(x, w, b, g, params["stride"], params["padding"], params["dilation"])
    assert_conv_matches(reference, x, b, needs, y, grads)


@pytest.mark.parametrize("image", [(4, 3, 20, 18), (4, 12, 9, 8)])  # per image, whole batch
def test_while_a_direct_kernel_compiles_the_pass_runs_numpy_and_asks_for_no_gemm_kernel(
        image, monkeypatch):
    """A fresh install compiles the direct kernels in the background: until one is ready its
    pass runs the route's numpy code (the same numbers) and never asks for the GEMM kernel
    the direct one replaces (a second helper process compiling on a two-core host)."""
    from engine.kernels import conv_direct, parallel

    force_split(monkeypatch, spy=False)
    rng = np.random.default_rng(6)
    x = rng.standard_normal(image).astype(np.float32)
    w = (rng.standard_normal((16, image[1], 7, 7)) * 0.2).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    params = {"stride": 2, "padding": 3, "dilation": 1, "groups": 1}
    g, y, direct_grads = _conv_op(x, w, b, params, (True, True, True))
    real_ready = parallel.ready
    asked: list[str] = []

    def ready(kernel, *args, **kwargs):
        asked.append(f"{kernel.py_func.__module__.rsplit('.', 1)[-1]}.{kernel.__name__}")
        return real_ready(kernel, *args, **kwargs) and kernel is not compiling[0]

    monkeypatch.setattr(parallel, "ready", ready)
    for compiling in ([conv_direct.backward_parallel], [conv_direct.forward_parallel]):
        asked.clear()
        ran = record_native_runs(monkeypatch, modules=True)
        g2, y2, grads = _conv_op(x, w, b, params, (True, True, True))
        assert all(name.startswith("conv_direct.") for name in asked), asked
        assert ran == (["conv_direct.forward_parallel"]
                       if compiling[0] is conv_direct.backward_parallel else [])
        np.testing.assert_array_equal(g2, g)
        np.testing.assert_allclose(y2, y, rtol=2e-5, atol=2e-5)
        for got, want in zip(grads, direct_grads):
            np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)


def test_a_cnn_trains_the_same_on_the_direct_and_the_gemm_kernels(monkeypatch, tmp_path):
    """A CNN unlike the presets (3×26×22 images, a 7×7 stride-2 stem of 12 channels before
    batch norm, a 3×3 stride-2 layer of 108 taps that needs its image gradient, a 5×5 one of
    200 taps, on the whole-batch route's shapes, then a 1×1 one of 40 taps) trained three
    float32 steps on two cores, with the direct kernels and with the GEMM routes: the same
    losses."""
    from engine.bench import cnn_cases
    from engine.train.trainer import Trainer

    case = cnn_cases.CnnCase(
        "cnn_test_direct", (3, 26, 22), 3, 10,
        (("conv", 12, 7, 2, 3), ("bn2",), ("relu",),
         ("conv", 8, 3, 2, 1), ("relu",),
         ("conv", 40, 5, 1, 2), ("silu",), ("conv", 6, 1, 1, 0), ("avg", 2), ("flatten",),
         ("fc", 3)))
    doc = cnn_cases.document(case, cnn_cases.write_data(case, tmp_path, n=30))
    force_split(monkeypatch, spy=False)

    def losses(min_taps: int) -> tuple[list[float], list[str]]:
        monkeypatch.setattr(route, "MIN_TAPS", min_taps)
        ran = record_native_runs(monkeypatch, modules=True)
        trainer = Trainer(doc, base_dir=tmp_path, steps=3)
        return [trainer.train_step()["loss"] for _ in range(3)], list(ran)

    direct, ran_direct = losses(64)
    gemm, ran_gemm = losses(10**9)
    for kernel in ("conv_direct.forward_parallel", "conv_direct.backward_parallel"):
        assert ran_direct.count(kernel) == 3 * 3  # three layers, three steps
        assert kernel not in ran_gemm
    assert ran_direct.count("conv_gemm.forward_parallel") == 3  # the 1×1 layer
    assert ran_gemm.count("conv_gemm.block_forward_parallel") == 3  # the 5×5 layer
    np.testing.assert_allclose(direct, gemm, rtol=2e-5)
    assert len(set(direct)) == 3  # the steps moved the weights


def test_conv2d_on_the_direct_kernels_reads_strided_views(monkeypatch):
    """x and the output gradient as non-contiguous views (a channel slice, every other
    column): the direct route gives the numbers of the same values made contiguous."""
    from engine.core.registry import get

    force_split(monkeypatch, spy=False)
    ran = record_native_runs(monkeypatch, modules=True)
    rng = np.random.default_rng(8)
    big = rng.standard_normal((3, 5, 19, 34)).astype(np.float32)
    x = big[:, 1:4, :, ::2]  # (3, 3, 19, 17), no unit stride along its rows
    w = (rng.standard_normal((17, 3, 5, 5)) * 0.2).astype(np.float32)
    params = {"stride": 2, "padding": 1, "dilation": 1, "groups": 1}
    spec, ctx = get("conv2d"), OpCtx((True, True, False))
    y = spec.forward(ctx, params, x, w)
    gbig = rng.standard_normal((*y.shape[:3], 2 * y.shape[3])).astype(np.float32)
    g = gbig[..., ::2]
    gx, gw = spec.backward(ctx, params, g)[:2]
    assert ran == ["conv_direct.forward_parallel", "conv_direct.backward_parallel"]
    ry, rgx, rgw, _ = numpy_conv(np.ascontiguousarray(x), w, None, np.ascontiguousarray(g),
                                 2, 1, 1)
    assert_close(y, ry, np.float32, "forward")
    assert_close(gx, rgx, np.float32, "input gradient")
    assert_close(gw, rgw, np.float32, "weight gradient")


def _kernels_with_block(height: int):
    """(forward_part, backward_part) compiled with register blocks of *height* pixels (taps)
    whatever this host's vector registers: the AVX-512 block (6) and the AVX2 one (4) are
    both checked on any machine."""
    import types

    scope = dict(vars(D))
    scope.update(PIXELS=height, _block_at=D._six if height == 6 else D._four,
                 _multiply_add=D._multiply_add6 if height == 6 else D._multiply_add4)
    for name in ("_put", "_add", "_forward_image", "_weight_grad_image", "forward_part",
                 "backward_part"):  # every function that reads PIXELS, callers after callees
        fn = getattr(D, name).py_func
        scope[name] = njit(nogil=True, fastmath={"contract"})(
            types.FunctionType(fn.__code__, scope, name))
    return scope["forward_part"], scope["backward_part"]


@pytest.mark.parametrize("height", [4, 6])
def test_both_register_block_heights_match_a_float64_convolution(height, monkeypatch):
    forward_part, backward_part = _kernels_with_block(height)
    monkeypatch.setattr(D, "forward_part", forward_part)
    monkeypatch.setattr(D, "backward_part", backward_part)
    # pixel counts 7·7 = 49, 5·4 = 20 and 3 and tap counts 3·3·3 = 27 and 2·2·2 = 8: blocks of
    # 4 and of 6 both end part-filled
    for shape in [(2, 3, 9, 9, 17, 3, 1, 0, 1), (1, 2, 10, 8, 16, 2, 2, 0, 1),
                  (2, 3, 5, 4, 5, 3, 2, 0, 1)]:
        (x, w, b, g, (s, p, d)), (y, gx, gw, gb) = _direct_pass(shape, np.float32, True, True)
        ry, rgx, rgw, rgb = numpy_conv(x, w, b, g, s, p, d)
        assert_close(y, ry, np.float32, f"forward {shape}")
        assert_close(gx, rgx, np.float32, f"input gradient {shape}")
        assert_close(gw, rgw, np.float32, f"weight gradient {shape}")
        assert_close(gb, rgb, np.float32, f"bias gradient {shape}")


def test_the_block_height_follows_the_compiled_vector_registers():
    assert D.PIXELS == (6 if D.wide_registers() else 4)
    assert D._multiply_add is (D._multiply_add6 if D.PIXELS == 6 else D._multiply_add4)


@pytest.mark.parametrize("channels,taken", [(8, True), (16, True), (17, False)])
def test_with_the_avx2_block_few_channel_3x3_layers_take_the_direct_kernels_over_winograd(
        channels, taken, monkeypatch):
    """A stride-1 3×3 layer Winograd would take runs on the direct kernels on two cores when
    the block is AVX2's (4 pixels) and it has at most 16 input channels; on one thread, with
    AVX-512's block or with more channels it stays on Winograd. Both give float64's numbers."""
    from engine.ops import conv_winograd

    force_split(monkeypatch)
    ran = record_native_runs(monkeypatch, modules=True)
    rng = np.random.default_rng(channels)
    x = rng.standard_normal((6, channels, 11, 9)).astype(np.float32)
    w = (rng.standard_normal((12, channels, 3, 3)) * 0.2).astype(np.float32)
    b = rng.standard_normal(12).astype(np.float32)
    params = _params(1, 1)
    assert conv_winograd.applies(params, x.shape, w.shape)
    direct = taken and D.PIXELS == 4
    assert route.takes_over_winograd(params, x.shape, w.shape, np.float32, 99) == direct
    assert not route.takes_over_winograd(params, x.shape, w.shape, np.float64, 99)
    assert not route.takes_over_winograd(params, x.shape, (12, channels, 5, 5), np.float32,
                                         99)
    g, y, grads = _conv_op(x, w, b, params, (True, True, True))
    modules = {name.split(".")[0] for name in ran}
    assert modules == ({"conv_direct"} if direct else {"winograd_parts"}), ran
    reference = numpy_conv(x, w, b, g, 1, 1, 1)
    assert_conv_matches(reference, x, b, (True, True), y, grads)


def test_on_one_thread_a_few_channel_3x3_layer_stays_on_winograd(monkeypatch):
    from engine.ops import two_cores

    monkeypatch.setattr(two_cores, "native_threads", lambda *a, **k: 1)
    assert not route.takes_over_winograd(_params(1, 1), (6, 8, 11, 9), (12, 8, 3, 3),
                                         np.float32, 99)
