"""Session 8 review: graphs unlike any preset (depthwise with a channel multiplier, stride and
dilation, grouped convolutions, average pools with count_include_pad False and a global pool,
non-square images read from a table file) through ONNX export and import."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from engine import api  # noqa: E402
from engine.core import document  # noqa: E402
from engine.export.onnx_import import import_onnx  # noqa: E402
from engine.graphs.parts import finish, node  # noqa: E402

H, W = 10, 14  # non-square images, stored as table rows of 3·H·W features
LAYERS = [
    ("c1", "Conv2d", {"in_channels": 3, "out_channels": 4, "kernel_size": 3, "padding": 1}),
    ("dw", "Conv2d", {"in_channels": 4, "out_channels": 12, "kernel_size": 3, "stride": 2,
                      "dilation": 2, "padding": 2, "groups": 4}),
    ("g3", "Conv2d", {"in_channels": 12, "out_channels": 18, "kernel_size": 3, "padding": 1,
                      "groups": 3}),
    ("g2", "Conv2d", {"in_channels": 18, "out_channels": 16, "kernel_size": 1, "groups": 2}),
    ("ap", "avg_pool2d", {"kernel": 3, "stride": 2, "padding": 1, "count_include_pad": False}),
    ("gap", "AvgPool2d", {"kernel_size": 3, "stride": 3}),
    ("flat", "Flatten", {}),
    ("fc", "Linear", {"in_features": 16, "out_features": 5}),
]


def _table_cnn(tmp_path) -> dict:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "imgs.npz", x=rng.standard_normal((30, 3 * H * W)).astype(np.float32),
             y=rng.integers(0, 5, 30))
    nodes = [node("data", "table_file", (0, 0), path=str(tmp_path / "imgs.npz"),
                  n_features=3 * H * W, batch_size=7, val_fraction=0.2),
             node("image", "reshape", (0, 0), shape=["B", 3, H, W])]
    edges = [("data:features", "image:x")]
    prev = "image:out"
    for nid, typ, params in LAYERS:
        nodes.append(node(nid, typ, (0, 0), **params))
        out = "out" if typ[0].islower() else "y"
        edges.append((prev, f"{nid}:x"))
        prev = f"{nid}:{out}"
    nodes += [node("loss", "cross_entropy", (0, 0)),
              node("optimizer", "optimizer", (0, 0), algorithm="adam", lr=0.003)]
    edges += [(prev, "loss:logits"), ("data:labels", "loss:labels"),
              ("loss:loss", "optimizer:loss")]
    return finish("table_cnn", "review graph", nodes, edges,
                  {"steps": 2, "eval_every": 0, "eval_batches": 0, "checkpoint_every": 0,
                   "seed": 0, "dtype": "float32"})


def test_a_table_fed_cnn_with_groups_and_a_flatten_imports_back(tmp_path):
    """The image comes from a reshape of table rows (a run-time Shape → Concat target in
    ONNX), so ONNX's shape inference loses every size after it; the Flatten's [B, -1] target
    then needs the sizes carried through Conv and AveragePool (it failed with "target
    ['?unk__0', -1] has more than one -1")."""
    doc = _table_cnn(tmp_path)
    out = tmp_path / "table_cnn.onnx"
    api.export_onnx(doc, out)
    result = import_onnx(out)
    session = ort.InferenceSession(str(out))
    x = np.random.default_rng(1).standard_normal((3, 3 * H * W)).astype(np.float32)
    (reference,) = session.run(None, {"data.features": x})
    got = api.run_model(document.from_dict(result.doc), result.weights, {"data.features": x})
    np.testing.assert_allclose(next(iter(got.values())), reference, rtol=1e-5, atol=1e-5)
    groups = sorted(n["params"].get("groups", 1) for n in result.doc["nodes"]
                    if n["type"] == "Conv2d")
    assert groups == [1, 2, 3, 4]
