"""The convolution's speed paths change no numbers: a training step skips the first
convolution's image gradient (the images are data) and still gets the same weight gradients,
while inspection and gradient checks keep every input's gradient."""

from __future__ import annotations

import numpy as np
import pytest

from engine.train.trainer import Trainer
from tests.split_help import shapes_cnn_trainer


def _conv_trainer() -> Trainer:
    return shapes_cnn_trainer(40, 6, 2)


def _step_grads(trainer: Trainer, release: bool):
    batches = {k: b.next() for k, b in trainer.batchers.items()}
    state = {k: v.copy() for k, v in trainer.state.items()}
    ex = trainer.executor
    tape = ex.forward(trainer._feeds(batches), trainer.params, state, training=True)
    contexts = {ctx.eq.path: ctx for ctx in tape.contexts}
    one = np.ones((), ex.dtype)
    wgrads, vgrads = ex.backward(tape, {trainer.graph.loss_value: one}, release=release)
    return contexts, wgrads, vgrads


def test_the_first_convolution_needs_no_image_gradient_in_a_training_step():
    trainer = _conv_trainer()
    contexts, _, _ = _step_grads(trainer, release=True)
    first, second = contexts["conv1.conv"], contexts["conv2.conv"]
    assert first.needs_input_grad[0] is False  # the images come from the data node
    assert first.needs_input_grad[1:] == (True, True)  # weight and bias
    assert second.needs_input_grad[0] is True  # conv1's output depends on weights


def test_skipping_the_image_gradient_leaves_the_weight_gradients_unchanged():
    a, b = _conv_trainer(), _conv_trainer()
    _, fast, _ = _step_grads(a, release=True)
    _, full, vgrads = _step_grads(b, release=False)
    assert set(fast) == set(full)
    for name in full:
        np.testing.assert_allclose(fast[name], full[name], rtol=1e-12, atol=1e-14)
    # without release (inspection) the images' gradient is still computed
    image_edges = [v for v in vgrads if v.startswith("shapes")]
    assert image_edges and all(np.abs(vgrads[v]).sum() > 0 for v in image_edges)


# ---------------------------------------------------------------- the two GEMM routes


def _conv(x, w, b, params, per_image: bool, monkeypatch):
    from engine.core import registry
    from engine.ops import conv

    monkeypatch.setattr(conv, "by_image", lambda *a: per_image)

    class Ctx:
        needs_input_grad: tuple = ()

        def save(self, *arrays):
            self.saved = arrays

    spec, ctx = registry.get("conv2d"), Ctx()
    y = spec.forward(ctx, params, x, w, b)
    g = np.random.default_rng(5).standard_normal(y.shape)
    return (y, *spec.backward(ctx, params, g))


@pytest.mark.parametrize("shape,wshape,params", [
    ((3, 2, 7, 6), (4, 2, 3, 3), {"stride": 1, "padding": 1, "dilation": 1, "groups": 1}),
    ((2, 3, 9, 8), (5, 3, 2, 3), {"stride": 2, "padding": 2, "dilation": 1, "groups": 1}),
    ((2, 1, 11, 11), (3, 1, 3, 3), {"stride": 1, "padding": 0, "dilation": 2, "groups": 1}),
])
def test_the_per_image_route_equals_the_whole_batch_route(shape, wshape, params, monkeypatch):
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal(shape), rng.standard_normal(wshape)
    b = rng.standard_normal(wshape[0])
    whole = _conv(x, w, b, params, False, monkeypatch)
    by_image = _conv(x, w, b, params, True, monkeypatch)
    for got, want in zip(by_image, whole):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_the_route_choice_follows_the_measured_rule():
    from engine.ops.conv import by_image

    assert by_image(1, 25, 24, 24)  # 1 channel, 5×5 taps, 24×24 out: per image
    assert by_image(1, 144, 12, 12)
    assert not by_image(1, 288, 3, 3)  # wide input, 3×3 out: one whole-batch GEMM
    assert not by_image(1, 800, 8, 8)
    assert not by_image(1, 216, 10, 10)
    assert not by_image(2, 9, 8, 8)  # groups use the whole-batch route


@pytest.mark.parametrize("stride,dilation", [(1, 1), (2, 1), (1, 2)])
def test_col2im_by_image_matches_its_twin(stride, dilation):
    from engine.kernels import conv as C

    xp = np.random.default_rng(2).standard_normal((2, 3, 9, 8))
    k = 3
    ho = (9 - dilation * (k - 1) - 1) // stride + 1
    wo = (8 - dilation * (k - 1) - 1) // stride + 1
    cols = np.ascontiguousarray(C.windows_by_image(xp, k, k, stride, dilation, ho, wo))
    assert cols[0, 1, 2, 1, 1, 0] == xp[0, 1, stride + 2 * dilation, dilation]
    dxp = np.zeros_like(xp)
    C.col2im_by_image(cols, stride, dilation, dxp)
    np.testing.assert_allclose(dxp, C.col2im_by_image_ref(cols, stride, dilation, 9, 8),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("per_image", [True, False])
@pytest.mark.parametrize("needs", [(), (False, True, True)])
def test_columns_in_blocks_of_images_give_the_one_block_numbers(per_image, needs, monkeypatch):
    """Both GEMM routes with five images in blocks of two (the last block partial, the
    backward rebuilding each block's columns from the saved image) equal one block of all
    five (its columns kept from the forward), with and without the image gradient."""
    from engine.core import registry
    from engine.ops import conv, conv_whole

    monkeypatch.setattr(conv, "by_image", lambda *a: per_image)

    class Ctx:
        needs_input_grad: tuple = needs

        def save(self, *arrays):
            self.saved = arrays

    rng = np.random.default_rng(9)
    x, w, b = rng.standard_normal((5, 2, 7, 6)), rng.standard_normal((3, 2, 3, 3)), None
    params = {"stride": 2, "padding": 1, "dilation": 1, "groups": 1}  # 4×3 outputs
    g = rng.standard_normal((5, 3, 4, 3))
    runs = []
    for block_bytes in (10**9, 2 * 18 * 12 * 8 * (1 if needs else 2)):
        monkeypatch.setattr(conv_whole, "BLOCK_BYTES", block_bytes)
        spec, ctx = registry.get("conv2d"), Ctx()
        y = spec.forward(ctx, params, x, w, b)
        assert (ctx.saved[1].ndim == 4) is (block_bytes < 10**9)  # the image, not columns
        runs.append((y, *spec.backward(ctx, params, g)))
    for got, want in zip(*runs):
        if want is None:
            assert got is None
        else:
            np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)
