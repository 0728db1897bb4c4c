"""ONNX export: every op's converter against the engine, every preset against `wiregrad run`,
the registry-wide mapping rule, and the error for an op without a mapping."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from engine.cli import main
from engine.core import registry
from engine.core.inference import Model, Port, example_inputs, extract_model
from engine.core.op_cases import build_case
from engine.core.run import Executor
from engine.export.onnx_export import NOT_EXPORTABLE, ONNX_OPS, build_onnx
from engine.export.torch_codegen import TORCH_OPS
from engine.graphs import presets
from tests.helpers import doc_of, e, n

PRESETS = [p["name"] for p in presets.list_presets()]
TOLERANCE = 1e-4


def _session(proto_or_path) -> ort.InferenceSession:
    data = proto_or_path.SerializeToString() if hasattr(proto_or_path, "SerializeToString") \
        else str(proto_or_path)
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


# ------------------------------------------------------------------ the registry-wide rule


def test_every_primitive_op_is_mapped_or_listed_as_not_exportable():
    primitives = [s.name for s in registry.all_ops() if s.category != "layer"]
    assert "matmul" in primitives and "cross_entropy" in primitives
    for name in primitives:
        mapped, listed = name in ONNX_OPS, name in NOT_EXPORTABLE
        assert mapped != listed, f"op '{name}': needs an ONNX mapping or a NOT_EXPORTABLE reason"
        if listed:
            assert NOT_EXPORTABLE[name].strip(), name
        else:
            assert name in TORCH_OPS, f"op '{name}' has an ONNX mapping but no PyTorch one"
    assert set(ONNX_OPS) <= set(primitives)
    assert set(NOT_EXPORTABLE) <= set(primitives)


# ------------------------------------------------------------------ every converter


def _op_cases():
    for name in sorted(ONNX_OPS):
        for k in range(len(registry.get(name).examples)):
            yield name, k


def _single_op_model(spec, case) -> Model:
    eq = case.equation
    if not any(p.variadic for p in spec.inputs):  # unconnected optional inputs are None
        pad = len(spec.inputs) - len(eq.inputs)
        eq = dataclasses.replace(eq, inputs=eq.inputs + [None] * pad,
                                 input_types=eq.input_types + [None] * pad)
    inputs = [Port(v, v, v, "out", t) for v, t in zip(case.values, eq.input_types)]
    outputs = [Port(f"y{i}", o, spec.name, o, t)
               for i, (o, t) in enumerate(zip(eq.outputs, eq.output_types))]
    return Model(None, {}, [eq], inputs, outputs, None)


@pytest.mark.parametrize("opset", [17, 20])
@pytest.mark.parametrize("name,k", list(_op_cases()))
def test_op_converter_matches_the_engine(name, k, opset):
    spec = registry.get(name)
    case = build_case(spec, spec.examples[k], np.float32, seed=k)
    model = _single_op_model(spec, case)
    proto = build_onnx(model, {**case.weights, **case.state}, opset)
    got = _session(proto).run(None, case.values)
    state = {key: v.copy() for key, v in case.state.items()}
    tape = Executor(None, "float32").forward({}, case.weights, state, training=False,
                                             equations=model.equations,
                                             values=dict(case.values))
    for port, value in zip(model.outputs, got):
        ref = tape.values[port.value]
        assert value.shape == ref.shape, (name, k, port.name)
        np.testing.assert_allclose(value, ref, rtol=TOLERANCE, atol=TOLERANCE,
                                   err_msg=f"{name} example {k} ({port.name})")


def test_gelu_is_decomposed_at_opset_17_and_native_from_20():
    spec = registry.get("gelu")
    for approximate in ("none", "tanh"):
        ex = dataclasses.replace(spec.examples[0], params={"approximate": approximate})
        case = build_case(spec, ex, np.float32)
        model = _single_op_model(spec, case)
        ops17 = {node.op_type for node in build_onnx(model, {}, 17).graph.node}
        ops20 = {node.op_type for node in build_onnx(model, {}, 20).graph.node}
        assert "Gelu" not in ops17 and ("Erf" if approximate == "none" else "Tanh") in ops17
        assert "Gelu" in ops20


# ------------------------------------------------------------------ presets vs wiregrad run


def _sizes(model):
    sequence = any("T" in p.type.shape for p in model.inputs)
    for batch in (1, 3):
        for length in ((8, 16) if sequence else (8,)):
            yield {"B": batch, "T": length}


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_onnx_equals_wiregrad_run(preset, tmp_path, capsys):
    out = tmp_path / "model.onnx"
    assert main(["export", preset, "--format", "onnx", "--out", str(out)]) == 0
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version == 17
    doc, _ = presets.load(preset)
    model = extract_model(doc)
    assert [i.name for i in proto.graph.input] == model.input_names
    assert [o.name for o in proto.graph.output] == model.output_names
    batch_dim = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param == "B"  # a dynamic batch axis
    session = _session(out)
    for k, sizes in enumerate(_sizes(model)):
        inputs = example_inputs(model, sizes, seed=k)
        np.savez(tmp_path / "in.npz", **inputs)
        assert main(["run", preset, "--inputs", str(tmp_path / "in.npz"),
                     "--outputs", str(tmp_path / "out.npz")]) == 0
        with np.load(tmp_path / "out.npz") as ran:
            expected = {key: ran[key] for key in ran.files}
        got = dict(zip(model.output_names, session.run(None, inputs)))
        assert set(expected) == set(got) == set(model.output_names)
        for name in got:
            assert got[name].shape[0] == sizes["B"]
            np.testing.assert_allclose(got[name], expected[name], rtol=0, atol=TOLERANCE,
                                       err_msg=f"{preset} {sizes} {name}")


def test_gpt_exports_at_opset_20_with_native_gelu(tmp_path, capsys):
    out = tmp_path / "gpt.onnx"
    assert main(["export", "char_gpt", "--format", "onnx", "--out", str(out),
                 "--opset", "20"]) == 0
    proto = onnx.load(str(out))
    ops = {node.op_type for node in proto.graph.node}
    assert {"Gelu", "LayerNormalization"} <= ops and "Erf" not in ops
    doc, doc_path = presets.load("char_gpt")
    model = extract_model(doc)
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["B", 64]  # the text source's windows are block_size = 64 tokens long
    from engine.api import run_model

    inputs = example_inputs(model, {"B": 2})
    got = _session(out).run(None, inputs)[0]
    # Both sides use the preset's shipped weights (the export picks them up from the document).
    expected = run_model(doc, None, inputs, doc_path)["head"]
    np.testing.assert_allclose(got, expected, atol=TOLERANCE)


# ------------------------------------------------------------------ errors


def test_an_op_without_mapping_is_named_with_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.delitem(ONNX_OPS, "relu")
    rc = main(["export", "spiral_mlp", "--format", "onnx", "--out", str(tmp_path / "m.onnx")])
    err = capsys.readouterr().err
    assert rc == 2
    assert "node 'act1'" in err and "'relu'" in err and "ONNX" in err
    assert not (tmp_path / "m.onnx").exists()


def test_a_training_only_op_inside_the_model_is_named(tmp_path, capsys):
    nodes = [n("x", "input", shape=["B", 2]), n("y", "input", shape=["B"], dtype="int", high=2),
             n("fc", "Linear", in_features=2, out_features=2), n("acc", "accuracy"),
             n("scaled", "mul"), n("loss", "cross_entropy")]
    edges = [e("x:out", "fc:x"), e("fc:y", "acc:logits"), e("y:out", "acc:labels"),
             e("fc:y", "scaled:a"), e("acc:value", "scaled:b"), e("scaled:out", "loss:logits"),
             e("y:out", "loss:labels")]
    path = tmp_path / "g.json"
    from engine.core import document

    document.save(doc_of(nodes, edges), path)
    rc = main(["export", str(path), "--format", "onnx", "--out", str(tmp_path / "m.onnx")])
    err = capsys.readouterr().err
    assert rc == 2
    assert "node 'acc'" in err and "metrics are not part of the exported model" in err


def test_unsupported_opset_is_refused(tmp_path, capsys):
    rc = main(["export", "spiral_mlp", "--format", "onnx", "--out", str(tmp_path / "m.onnx"),
               "--opset", "13"])
    assert rc == 2 and "opset 13" in capsys.readouterr().err
