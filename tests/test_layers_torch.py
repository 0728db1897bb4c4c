"""Conv2d + BatchNorm2d (+ ReLU + MaxPool2d) and TransformerBlock match PyTorch in float64:
outputs, input gradients, every parameter gradient and BatchNorm's running statistics."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from engine.core.compile import compile_document  # noqa: E402
from engine.core.run import Executor, init_weights  # noqa: E402
from tests.helpers import doc_of, e, n  # noqa: E402

pytestmark = pytest.mark.torch




def test_conv2d_batchnorm2d_match_torch_forward_and_backward():
    rng = np.random.default_rng(3)
    doc = doc_of([n("x", "input", shape=["B", 2, 6, 6]),
                  n("conv", "Conv2d", in_channels=2, out_channels=4, kernel_size=3, padding=1,
                    stride=1),
                  n("bn", "BatchNorm2d", num_features=4, momentum=0.1),
                  n("act", "relu"),
                  n("pool", "MaxPool2d", kernel_size=2, stride=2)],
                 [e("x:out", "conv:x"), e("conv:y", "bn:x"), e("bn:y", "act:x"),
                  e("act:out", "pool:x")])
    program = compile_document(doc, "float64")
    ex = Executor(program, "float64")
    weights = {k: rng.uniform(-0.5, 0.5, v.shape) for k, v in program.parameters.items()}
    weights["bn.weight"] = weights["bn.weight"] + 1.0
    state = init_weights(program.state, 0, np.float64)
    x = rng.standard_normal((3, 2, 6, 6))
    tape = ex.forward({"x": x}, weights, state, training=True, seed=0)
    out = program.node_outputs["pool"][0]
    g = rng.standard_normal(tape.values[out].shape)
    wgrads, vgrads = ex.backward(tape, {out: g})

    conv = torch.nn.Conv2d(2, 4, 3, padding=1, dtype=torch.float64)
    bn = torch.nn.BatchNorm2d(4, momentum=0.1, dtype=torch.float64)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(weights["conv.weight"]))
        conv.bias.copy_(torch.from_numpy(weights["conv.bias"]))
        bn.weight.copy_(torch.from_numpy(weights["bn.weight"]))
        bn.bias.copy_(torch.from_numpy(weights["bn.bias"]))
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.max_pool2d(torch.relu(bn(conv(tx))), 2, 2)
    ty.backward(torch.from_numpy(g))

    np.testing.assert_allclose(tape.values[out], ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(vgrads["x:out"], tx.grad.numpy(), rtol=1e-9, atol=1e-11)
    for name, tp in [("conv.weight", conv.weight), ("conv.bias", conv.bias),
                     ("bn.weight", bn.weight), ("bn.bias", bn.bias)]:
        np.testing.assert_allclose(wgrads[name], tp.grad.numpy(), rtol=1e-9, atol=1e-11,
                                   err_msg=name)
    np.testing.assert_allclose(state["bn.norm.running_mean"], bn.running_mean.numpy(),
                               rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(state["bn.norm.running_var"], bn.running_var.numpy(),
                               rtol=1e-12, atol=1e-14)


def _torch_block(C: int, H: int, ratio: int):
    nn, F = torch.nn, torch.nn.functional

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1 = nn.LayerNorm(C)
            self.qkv = nn.Linear(C, 3 * C)
            self.proj = nn.Linear(C, C)
            self.ln2 = nn.LayerNorm(C)
            self.fc = nn.Linear(C, ratio * C)
            self.fc_proj = nn.Linear(ratio * C, C)

        def forward(self, x):  # (B, T, C)
            B, T, _ = x.shape
            q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
            q, k, v = (t.view(B, T, H, C // H).transpose(1, 2) for t in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, D)
            x = x + self.proj(y.transpose(1, 2).reshape(B, T, C))
            return x + self.fc_proj(F.gelu(self.fc(self.ln2(x))))

    return Block().to(torch.float64)


# Wiregrad parameter name (inside node "blk") -> attribute of the torch block.
BLOCK_NAMES = {
    "ln1.weight": "ln1.weight", "ln1.bias": "ln1.bias",
    "attn.qkv.weight": "qkv.weight", "attn.qkv.bias": "qkv.bias",
    "attn.proj.weight": "proj.weight", "attn.proj.bias": "proj.bias",
    "ln2.weight": "ln2.weight", "ln2.bias": "ln2.bias",
    "mlp.fc.weight": "fc.weight", "mlp.fc.bias": "fc.bias",
    "mlp.proj.weight": "fc_proj.weight", "mlp.proj.bias": "fc_proj.bias",
}


def test_transformer_block_matches_torch_forward_and_backward():
    C, H, ratio = 8, 2, 4
    rng = np.random.default_rng(5)
    doc = doc_of([n("x", "input", shape=["B", "T", C]),
                  n("blk", "TransformerBlock", embed_dim=C, num_heads=H, mlp_ratio=ratio)],
                 [e("x:out", "blk:x")])
    program = compile_document(doc, "float64")
    assert set(program.parameters) == {f"blk.{k}" for k in BLOCK_NAMES}
    ex = Executor(program, "float64")
    weights = {k: rng.uniform(-0.5, 0.5, v.shape) for k, v in program.parameters.items()}
    x = rng.standard_normal((2, 5, C))
    tape = ex.forward({"x": x}, weights, {}, training=True, seed=0)
    out = program.node_outputs["blk"][0]
    g = rng.standard_normal(tape.values[out].shape)
    wgrads, vgrads = ex.backward(tape, {out: g})

    block = _torch_block(C, H, ratio)
    params = dict(block.named_parameters())
    with torch.no_grad():
        for ours, theirs in BLOCK_NAMES.items():
            params[theirs].copy_(torch.from_numpy(weights[f"blk.{ours}"]))
    tx = torch.tensor(x, requires_grad=True)
    ty = block(tx)
    ty.backward(torch.from_numpy(g))

    np.testing.assert_allclose(tape.values[out], ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(vgrads["x:out"], tx.grad.numpy(), rtol=1e-9, atol=1e-11)
    for ours, theirs in BLOCK_NAMES.items():
        np.testing.assert_allclose(wgrads[f"blk.{ours}"], params[theirs].grad.numpy(),
                                   rtol=1e-9, atol=1e-11, err_msg=ours)


@pytest.mark.parametrize("groups,cin,cout,stride", [(4, 4, 8, 2), (2, 16, 8, 1), (3, 6, 6, 1)])
def test_conv2d_layer_groups_match_torch(groups, cin, cout, stride):
    """Conv2d's ``groups``: depthwise (groups = in_channels, two outputs each), groups of ≥ 8
    channels (run group by group) and small groups; its weight is (out, in / groups, k, k) and
    PyTorch's fan-in init bound (in / groups · k²)."""
    rng = np.random.default_rng(groups)
    doc = doc_of([n("x", "input", shape=["B", cin, 7, 7]),
                  n("conv", "Conv2d", in_channels=cin, out_channels=cout, kernel_size=3,
                    padding=1, stride=stride, groups=groups)],
                 [e("x:out", "conv:x")])
    program = compile_document(doc, "float64")
    assert program.parameters["conv.weight"].shape == (cout, cin // groups, 3, 3)
    init = init_weights(program.parameters, 0, np.float64)
    assert np.abs(init["conv.weight"]).max() <= 1 / np.sqrt(cin // groups * 9)
    weights = {k: rng.uniform(-0.5, 0.5, v.shape) for k, v in program.parameters.items()}
    x = rng.standard_normal((3, cin, 7, 7))
    ex = Executor(program, "float64")
    tape = ex.forward({"x": x}, weights, {}, training=True, seed=0)
    out = program.node_outputs["conv"][0]
    g = rng.standard_normal(tape.values[out].shape)
    wgrads, vgrads = ex.backward(tape, {out: g})

    conv = torch.nn.Conv2d(cin, cout, 3, stride=stride, padding=1, groups=groups,
                           dtype=torch.float64)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(weights["conv.weight"]))
        conv.bias.copy_(torch.from_numpy(weights["conv.bias"]))
    tx = torch.tensor(x, requires_grad=True)
    ty = conv(tx)
    ty.backward(torch.from_numpy(g))
    np.testing.assert_allclose(tape.values[out], ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(vgrads["x:out"], tx.grad.numpy(), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(wgrads["conv.weight"], conv.weight.grad.numpy(), rtol=1e-9,
                               atol=1e-11)
    np.testing.assert_allclose(wgrads["conv.bias"], conv.bias.grad.numpy(), rtol=1e-9,
                               atol=1e-11)


def test_conv2d_layer_groups_that_do_not_divide_the_channels_are_named():
    from engine.base.errors import WiregradError

    doc = doc_of([n("x", "input", shape=["B", 6, 7, 7]),
                  n("conv", "Conv2d", in_channels=6, out_channels=8, kernel_size=3, groups=4)],
                 [e("x:out", "conv:x")])
    with pytest.raises(WiregradError) as err:
        compile_document(doc, "float64")
    assert "conv" in str(err.value) and "groups" in str(err.value)
