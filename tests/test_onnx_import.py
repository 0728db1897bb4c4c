"""Importing ONNX models (engine/export/onnx_import.py): Wiregrad's own exports come back with
their layers and outputs; hostile files give a clear error and write nothing."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from engine import api  # noqa: E402
from engine.base.errors import WiregradError  # noqa: E402
from engine.core import document  # noqa: E402
from engine.export.onnx_fold import Known  # noqa: E402
from engine.export.onnx_import import import_onnx, write_import  # noqa: E402
from engine.export.onnx_ops import ONNX_TO_WIREGRAD  # noqa: E402
from engine.graphs import presets  # noqa: E402

FOLDED = {"Linear", "Conv2d", "LayerNorm", "Embedding", "BatchNorm1d", "BatchNorm2d",
          "MaxPool2d", "AvgPool2d", "Flatten"}
ROUND_TRIP = [p["name"] for p in api.list_presets()]  # every preset, present and future


def _feeds(session, rng, int_high: int = 10) -> dict[str, np.ndarray]:
    feeds = {}
    for i in session.get_inputs():
        shape = [3 if not isinstance(d, int) else d for d in i.shape]
        if "int" in i.type:
            feeds[i.name] = rng.integers(0, int_high, size=shape).astype(np.int64)
        else:
            feeds[i.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def _outputs_match(path, result) -> None:
    session = ort.InferenceSession(str(path))
    feeds = _feeds(session, np.random.default_rng(0))
    reference = session.run(None, feeds)
    got = api.run_model(document.from_dict(result.doc), result.weights, feeds)
    assert len(got) == len(reference)
    for mine, theirs in zip(got.values(), reference):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ROUND_TRIP)
def test_a_preset_exported_and_imported_computes_the_same_and_keeps_its_layers(name, tmp_path):
    if name == "digits_cnn":
        pytest.importorskip("sklearn")
    doc, path = presets.load(name)
    out = tmp_path / f"{name}.onnx"
    api.export_onnx(doc, out)
    result = import_onnx(out)
    _outputs_match(out, result)
    top_level = {n["type"] for n in doc["nodes"]} & FOLDED
    assert top_level <= set(result.layers), (top_level, result.layers)
    if name in ("char_gpt", "word_gpt"):  # attention comes back as the fused op
        assert result.primitive_ops.get("scaled_dot_product_attention") == 4
        assert "softmax" not in result.primitive_ops


def test_every_onnx_op_the_exporter_writes_can_be_read_back(tmp_path):
    written = set()
    for name in ("spiral_mlp", "shapes_cnn", "char_gpt"):
        doc, _ = presets.load(name)
        api.export_onnx(doc, tmp_path / f"{name}.onnx")
        written |= {n.op_type for n in onnx.load(str(tmp_path / f"{name}.onnx")).graph.node}
    readable = set(ONNX_TO_WIREGRAD) | Known.FOLDABLE
    # inside the patterns folded whole: attention masks and GELU spelled out with Erf
    assert written - readable <= {"Range", "LessOrEqual", "Trilu", "Erf"}


def test_cli_import_writes_a_document_and_weights_that_run_by_onnx_input_names(tmp_path):
    doc, _ = presets.load("spiral_mlp")
    model = tmp_path / "m.onnx"
    api.export_onnx(doc, model)
    out = tmp_path / "graphs" / "imported.json"
    proc = subprocess.run([sys.executable, "-m", "engine.cli", "import", str(model), "--out",
                           str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Linear×2" in proc.stdout
    saved = json.loads(out.read_text())
    assert saved["weights"]["path"] == "imported.safetensors"
    assert (out.parent / "imported.safetensors").is_file()
    session = ort.InferenceSession(str(model))
    name = session.get_inputs()[0].name  # "spirals.points": not a valid node id
    x = np.random.default_rng(1).standard_normal((5, 2)).astype(np.float32)
    np.savez(tmp_path / "in.npz", **{name: x})
    run = subprocess.run([sys.executable, "-m", "engine.cli", "run", str(out), "--inputs",
                          str(tmp_path / "in.npz"), "--outputs", str(tmp_path / "o.npz")],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    with np.load(tmp_path / "o.npz") as got:
        np.testing.assert_allclose(got[got.files[0]], session.run(None, {name: x})[0],
                                   rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- hostile and unmappable


def _tiny_model(tmp_path, op_type="Relu", domain="", dims=(2, 3), external=None):
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    w = helper.make_tensor("w", TensorProto.FLOAT, [2, 3], np.zeros(6, np.float32))
    w.ClearField("dims")
    w.dims.extend(dims)  # a declared size larger than the data (the huge-shape case)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
             helper.make_node(op_type, ["h"], ["y"], name="act", domain=domain)]
    graph = helper.make_graph(nodes, "g", [x], [y], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]
                              + ([helper.make_opsetid(domain, 1)] if domain else []))
    if external is not None:
        tensor = model.graph.initializer[0]
        tensor.ClearField("float_data")
        tensor.ClearField("raw_data")
        tensor.data_location = TensorProto.EXTERNAL
        entry = tensor.external_data.add()
        entry.key, entry.value = "location", external
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def test_an_unknown_op_is_named_with_its_type_and_opset_and_nothing_is_written(tmp_path):
    path = _tiny_model(tmp_path, op_type="Hardmax")
    out = tmp_path / "out" / "g.json"
    with pytest.raises(WiregradError, match=r"node 'act' \(Hardmax, opset 17\)"):
        write_import(import_onnx(path), out)
    assert not out.parent.exists()


@pytest.mark.parametrize("case", ["truncated", "garbage", "custom_domain", "huge_shape",
                                  "outside_data", "absolute_data", "missing_data"])
def test_hostile_files_give_a_clear_error(case, tmp_path):
    if case == "truncated":
        good = _tiny_model(tmp_path)
        good.write_bytes(good.read_bytes()[:40])
        path, match = good, "not a readable ONNX model"
    elif case == "garbage":
        path = tmp_path / "m.onnx"
        path.write_bytes(b"\x08\x07" + bytes(range(256)) * 4)
        match = "ONNX"
    elif case == "custom_domain":
        path, match = _tiny_model(tmp_path, op_type="Evil", domain="com.evil"), "com.evil"
    elif case == "huge_shape":
        path, match = _tiny_model(tmp_path, dims=(3, 2**31)), "elements|declares"
    elif case == "outside_data":
        (tmp_path.parent / "secret.bin").write_bytes(b"\0" * 24)
        path, match = _tiny_model(tmp_path, external="../secret.bin"), "outside"
    elif case == "absolute_data":
        path, match = _tiny_model(tmp_path, external="/etc/passwd"), "outside"
    else:
        path, match = _tiny_model(tmp_path, external="nowhere.bin"), "missing"
    with pytest.raises(WiregradError, match=match):
        import_onnx(path)
    proc = subprocess.run([sys.executable, "-m", "engine.cli", "import", str(path), "--out",
                           str(tmp_path / "o" / "g.json")], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()


def test_weights_load_into_an_existing_graph_by_name_with_a_report(tmp_path):
    doc, _ = presets.load("spiral_mlp")
    model = tmp_path / "m.onnx"
    api.export_onnx(doc, model)  # a fresh initialisation, exported with its parameter names
    source = import_onnx(model).weights
    from engine.base.io import save_weights

    wider = json.loads(json.dumps(doc))
    fc2 = next(n for n in wider["nodes"] if n["id"] == "fc2")
    fc2["params"]["in_features"] = 32  # fc2.weight no longer fits
    fc1 = next(n for n in wider["nodes"] if n["id"] == "fc1")
    fc1["params"]["out_features"] = 32
    save_weights(tmp_path / "w.safetensors", {**source, "stray": np.zeros(3, np.float32)})
    report = api.load_weights_into(wider, tmp_path / "w.safetensors")
    assert report["matched"] == ["fc2.bias"]
    assert {m["name"] for m in report["mismatched"]} == {"fc1.weight", "fc1.bias",
                                                        "fc2.weight"}
    assert "stray" in report["unused"] and report["missing"] == []
    np.testing.assert_array_equal(report["weights"]["fc2.bias"], source["fc2.bias"])
    same = api.load_weights_into(doc, model)  # straight from the ONNX initializers
    assert sorted(same["matched"]) == sorted(source) and not same["mismatched"]
