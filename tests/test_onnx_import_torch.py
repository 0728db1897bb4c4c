"""Models written in PyTorch, exported by torch.onnx.export (dynamo and TorchScript), come in
as Wiregrad graphs: the same outputs, layers folded back, one AdamW step equal to PyTorch's."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxscript")

from engine.core import document  # noqa: E402
from engine.core.compile import compile_document  # noqa: E402
from engine.core.inference import extract_model  # noqa: E402
from engine.core.run import Executor  # noqa: E402
from engine.export.onnx_import import import_onnx  # noqa: E402
from engine.train.optim import Optimizer  # noqa: E402

pytestmark = pytest.mark.torch
nn, F = torch.nn, torch.nn.functional


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.norm, self.fc2 = nn.Linear(6, 12), nn.LayerNorm(12), nn.Linear(12, 4)

    def forward(self, x):
        return self.fc2(self.norm(F.gelu(self.fc1(x))))


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(2, 5, 3, padding=1), nn.BatchNorm2d(5)
        self.conv2 = nn.Conv2d(5, 6, 3, stride=2, padding=1)
        self.pool, self.head = nn.MaxPool2d(2), nn.Linear(6 * 2 * 2, 3)

    def forward(self, x):
        x = self.pool(torch.relu(self.bn1(self.conv1(x))))
        return self.head(torch.flatten(torch.relu(self.conv2(x)), 1))


class Separable(nn.Module):
    """A depthwise convolution (two outputs per channel), a pointwise one and a grouped one."""

    def __init__(self):
        super().__init__()
        self.dw, self.pw = nn.Conv2d(4, 8, 3, padding=1, groups=4), nn.Conv2d(8, 8, 1)
        self.grouped, self.head = nn.Conv2d(8, 8, 3, groups=2), nn.Linear(8 * 4 * 4, 3)

    def forward(self, x):
        x = torch.relu(self.pw(self.dw(x)))
        return self.head(torch.flatten(torch.relu(self.grouped(x)), 1))


class Block(nn.Module):
    """A pre-norm GPT block with PyTorch's fused attention."""

    def __init__(self, width: int = 16, heads: int = 2):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.fc, self.out = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).contiguous().view(b, t, c))
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class LSTMHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm, self.head = nn.LSTM(5, 8, batch_first=True), nn.Linear(8, 3)

    def forward(self, x):
        y, _ = self.lstm(x)
        return self.head(y)


CASES = {  # model, example input, symbolic axes, layers that must come back
    "mlp": (MLP, (3, 6), {0: "batch"}, {"Linear": 2, "LayerNorm": 1}),
    "cnn": (CNN, (4, 2, 8, 8), {0: "batch"},
            {"Conv2d": 2, "BatchNorm2d": 1, "MaxPool2d": 1, "Linear": 1, "Flatten": 1}),
    "separable": (Separable, (4, 4, 6, 6), {0: "batch"}, {"Conv2d": 3, "Linear": 1}),
    "gpt_block": (Block, (2, 5, 16), {0: "batch", 1: "seq"}, {"Linear": 4, "LayerNorm": 2}),
    "lstm": (LSTMHead, (2, 6, 5), {0: "batch", 1: "seq"}, {"Linear": 1}),
}


def _export(kind: str, dynamo: bool, path) -> tuple:
    make, shape, axes, layers = CASES[kind]
    torch.manual_seed(0)
    model = make().eval()
    x = torch.randn(*shape)
    if dynamo:  # optimize=False keeps batch norm a node of its own (not folded into the conv)
        dims = {k: torch.export.Dim(name, max=64) for k, name in axes.items()}
        torch.onnx.export(model, (x,), str(path), dynamo=True, optimize=kind != "cnn",
                          dynamic_shapes=(dims,))
    else:
        torch.onnx.export(model, (x,), str(path), dynamo=False, do_constant_folding=False,
                          input_names=["x"], output_names=["y"], dynamic_axes={"x": axes})
    return model, x, layers


@pytest.fixture(params=[True, False], ids=["dynamo", "torchscript"])
def dynamo(request):
    return request.param


@pytest.mark.parametrize("kind", list(CASES))
def test_torch_models_import_with_their_layers_and_outputs(kind, dynamo, tmp_path):
    model, x, layers = _export(kind, dynamo, tmp_path / "m.onnx")
    result = import_onnx(tmp_path / "m.onnx")
    for layer, count in layers.items():  # an exporter-emitted layer left primitive fails here
        assert result.layers.get(layer, 0) >= count, (layer, result.layers)
    if kind == "lstm":  # ONNX's LSTM op becomes the fused lstm op, gates in PyTorch's order
        assert result.primitive_ops.get("lstm") == 1
    if kind == "gpt_block":
        assert result.primitive_ops.get("scaled_dot_product_attention") == 1
        assert "softmax" not in result.primitive_ops and "matmul" not in result.primitive_ops
    doc = document.from_dict(result.doc)
    from engine import api

    name = next(iter(result.doc["extra"]["onnx_inputs"]))
    wider = torch.randn(x.shape[0] + 3, *x.shape[1:])  # another batch size than exported
    with torch.no_grad():
        for inp in (x, wider):
            got = api.run_model(doc, result.weights, {name: inp.numpy()})
            np.testing.assert_allclose(next(iter(got.values())), model(inp).numpy(),
                                       rtol=1e-5, atol=1e-5)


def _match_weights(model, weights: dict[str, np.ndarray]) -> dict[str, str]:
    """torch parameter name → imported weight name, by equal values (names may differ)."""
    out = {}
    for name, p in model.named_parameters():
        value = p.detach().numpy()
        hits = [k for k, w in weights.items() if w.shape == value.shape
                and np.array_equal(w, value) and k not in out.values()]
        assert hits, f"no imported weight equals {name}"
        out[name] = hits[0]
    return out


@pytest.mark.parametrize("kind", list(CASES))
def test_one_adamw_step_on_the_imported_graph_equals_pytorchs(kind, dynamo, tmp_path):
    model, x, _ = _export(kind, dynamo, tmp_path / "m.onnx")
    result = import_onnx(tmp_path / "m.onnx")
    names = _match_weights(model, result.weights)
    model = model.double().train()
    rng = np.random.default_rng(1)
    with torch.no_grad():
        seed_grad = rng.standard_normal(tuple(model(x.double()).shape))
    # PyTorch: loss = Σ out·R, one AdamW step
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    loss = (model(x.double()) * torch.from_numpy(seed_grad)).sum()
    loss.backward()
    opt.step()
    # Wiregrad: the same on the imported graph, float64, training mode (batch statistics)
    doc = document.from_dict(result.doc)
    program = compile_document(doc, "float64")
    out_value = extract_model(doc, "float64", program).outputs[0].value
    executor = Executor(program, "float64")
    params = {k: result.weights[k].astype(np.float64) for k in program.parameters}
    state = {k: result.weights[k].astype(np.float64) for k in program.state}
    input_node = next(iter(result.doc["extra"]["onnx_inputs"].values()))
    tape = executor.forward({input_node: x.double().numpy()}, params, state, training=True,
                            seed=0)
    grads, _ = executor.backward(tape, {out_value: seed_grad})
    for torch_name, ours in names.items():
        np.testing.assert_allclose(grads[ours], dict(model.named_parameters())[torch_name]
                                   .grad.numpy(), rtol=1e-7, atol=1e-9, err_msg=torch_name)
    decay = {names[n] for n, p in model.named_parameters()}  # torch decays every tensor
    ours = Optimizer(kind="adamw", lr=1e-2, weight_decay=0.1, decay_names=frozenset(decay))
    ours.step(params, {k: np.ascontiguousarray(g) for k, g in grads.items() if k in params})
    for torch_name, name in names.items():
        np.testing.assert_allclose(params[name], dict(model.named_parameters())[torch_name]
                                   .detach().numpy(), rtol=1e-9, atol=1e-9, err_msg=torch_name)
