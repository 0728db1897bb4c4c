"""Export of the seq2seq graph: the teacher-forced model (source, source_mask, target_in →
logits) through ONNX equals Wiregrad's run under onnxruntime, and the PyTorch project's
model.py equals it in float64 — padded sources included."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from engine.core import document
from engine.core.inference import extract_model, run_model
from engine.core.run import Executor, init_weights
from engine.export.onnx_export import build_onnx
from engine.graphs.seq2seq_builder import seq2seq_dates
from engine.sample import seq2seq as S

TEXTS = ["3rd of March, 1987", "03/03/87", "Tuesday, 3rd of March 1987"]


def _inputs(doc: dict, weights: dict, dtype=np.float32) -> dict:
    model = S.load_model(doc, weights)
    ids, mask = S.encode_texts(model, TEXTS)
    source = np.zeros((len(TEXTS), model.src_len), np.int64)
    full = np.zeros(source.shape, dtype)
    source[:, :ids.shape[1]], full[:, :ids.shape[1]] = ids, mask
    target = np.random.default_rng(0).integers(3, 20, (len(TEXTS), model.max_steps))
    target[:, 0] = 1
    return {"pairs.source": source, "pairs.source_mask": full, "pairs.target_in": target}


@pytest.fixture(scope="module")
def small():
    doc = seq2seq_dates(layers=1, width=16, heads=2, n_train=100)
    model = extract_model(doc)
    rng = np.random.default_rng(1)
    weights = init_weights(model.program.parameters, 1, np.float32)
    weights = {k: (v + rng.uniform(-0.3, 0.3, v.shape)).astype(np.float32)
               for k, v in weights.items()}
    return doc, model, weights


def test_the_teacher_forced_model_reads_source_mask_and_target_in(small):
    _, model, _ = small
    assert model.input_names == ["pairs.source", "pairs.source_mask", "pairs.target_in"]
    assert len(model.outputs) == 1


def test_onnx_equals_wiregrad_run_with_padding(small):
    ort = pytest.importorskip("onnxruntime")
    doc, model, weights = small
    proto = build_onnx(model, weights, 17)
    session = ort.InferenceSession(proto.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    inputs = _inputs(doc, weights)
    assert (inputs["pairs.source_mask"] == 0).any()
    got = session.run(None, inputs)[0]
    want = run_model(model, weights, inputs)[model.output_names[0]]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.torch
def test_pytorch_project_model_equals_wiregrad_in_float64(small, tmp_path):
    torch = pytest.importorskip("torch")
    from engine.cli import main

    doc, _, weights = small
    document.save(doc, tmp_path / "s2s.json")
    assert main(["export", str(tmp_path / "s2s.json"), "--format", "torch", "--out",
                 str(tmp_path / "proj")]) == 0
    sys.modules.pop("model", None)
    spec = importlib.util.spec_from_file_location("s2s_model", tmp_path / "proj" / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = extract_model(doc, "float64")
    w64 = {k: v.astype(np.float64) for k, v in weights.items()}
    net = module.Model().double().eval()
    net.load_state_dict({k: torch.from_numpy(w64[k]) for k in net.state_dict()})
    inputs = _inputs(doc, weights, np.float64)
    tape = Executor(model.program, "float64").forward(
        {}, w64, {}, training=False, equations=model.equations,
        values={p.value: inputs[p.name] for p in model.inputs})
    with torch.no_grad():
        got = net(*[torch.from_numpy(inputs[p.name]) for p in model.inputs])
    np.testing.assert_allclose(got.numpy(), tape.values[model.outputs[0].value], rtol=1e-9,
                               atol=1e-10)
