"""No traceback on malformed input (issue 15.4, 15.5): layer definitions are type-checked at
load, lone surrogates are refused, accuracy names labels out of range, Adam's betas stay
below 1, and memory beyond the limit is refused before allocating."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from engine import api
from engine.base.errors import DocumentError, WiregradError
from engine.core import document
from engine.graphs import presets
from engine.train.trainer import Trainer
from tests.training_docs import classifier


def _gpt_raw() -> dict:
    doc, _ = presets.load("char_gpt")
    return json.loads(document.dumps(doc))


BAD_PARAM_FIELDS = [("min", "1"), ("max", [1]), ("choices", 5), ("choices", [[1]]),
                    ("kind", "complex"), ("kind", 3), ("name", 7), ("name", "a b"),
                    ("doc", 5), ("optional", "yes"), ("default", {"x": 1}), ("min", True)]


@pytest.mark.parametrize("key, value", BAD_PARAM_FIELDS)
def test_every_field_of_a_layer_param_is_type_checked_at_load(key, value):
    raw = _gpt_raw()
    raw["layers"]["MLP"]["params"][0][key] = value
    with pytest.raises(DocumentError) as info:
        document.from_dict(raw)
    assert info.value.field.startswith("layers.MLP.params[0]")


@pytest.mark.parametrize("part, value", [("inputs", {"name": 3}), ("inputs", {"name": "x",
                                         "dtype": 5}), ("inputs", "x"),
                                         ("outputs", {"name": "y", "node": 1, "port": "x"}),
                                         ("doc", 5), ("doc", ["a"]),
                                         ("inputs", {"name": 'x"; import os', "dtype": "float"}),
                                         ("outputs", {"name": "y\n", "node": "fc", "port": "y"})])
def test_layer_ports_and_docs_are_type_checked_at_load(part, value):
    raw = _gpt_raw()
    if part == "doc":
        raw["layers"]["MLP"]["doc"] = value
    else:
        raw["layers"]["MLP"][part][0] = value
    with pytest.raises(DocumentError) as info:
        document.from_dict(raw)
    assert info.value.field.startswith("layers.MLP")


def test_a_layer_default_that_does_not_fit_its_kind_is_a_diagnostic_not_a_crash():
    raw = _gpt_raw()
    raw["layers"]["MLP"]["params"][0]["default"] = "wide"
    raw["layers"]["MLP"]["params"][0]["min"] = 1e300
    result = api.validate(document.from_dict(raw))
    assert isinstance(result["ok"], bool)


@pytest.mark.parametrize("text", ['"\\ud800"', '"a\\udfffb"', '"\\ud83d"'])
def test_lone_surrogates_are_refused_at_load(text):
    raw = json.dumps({"format": "wiregrad-graph", "format_version": 2, "meta": {}})
    for where in ('"name": ' + text, f'"extra": {{{text}: 1}}'):
        source = raw.replace('"meta": {}', '"meta": {' + where + '}' if "name" in where
                             else '"meta": {}, ' + where)
        with pytest.raises(DocumentError, match="surrogate"):
            document.loads(source)
    assert document.loads(raw.replace('"meta": {}', '"meta": {"name": "\\ud83d\\ude00"}'))


def test_accuracy_with_labels_out_of_range_names_the_node():
    from engine.core.compile import compile_document
    from engine.core.run import Executor
    from tests.helpers import doc_of, e, n

    doc = doc_of([n("logits", "input", shape=["B", 3]),
                  n("labels", "input", shape=["B"], dtype="int"), n("acc", "accuracy")],
                 [e("logits:out", "acc:logits"), e("labels:out", "acc:labels")])
    program = compile_document(doc)
    feeds = {"logits": np.zeros((4, 3)), "labels": np.array([0, 1, 2, 3])}
    with pytest.raises(WiregradError) as info:
        Executor(program, "float64").forward(feeds, {}, {}, training=False)
    assert info.value.node == "acc" and "[0, 3)" in str(info.value)


@pytest.mark.parametrize("beta", ["beta1", "beta2"])
def test_adam_betas_of_one_are_refused(beta):
    doc = classifier(steps=1, **{beta: 1.0})
    result = api.validate(doc)
    assert not result["ok"]
    assert any(beta in d["message"] and "below" in d["message"]
               for d in result["diagnostics"])
    doc = classifier(steps=1, **{beta: 0.999999})
    assert api.validate(doc)["ok"]


def test_training_memory_beyond_the_limit_is_refused_before_allocating(monkeypatch):
    doc = copy.deepcopy(classifier(steps=1))
    monkeypatch.setenv("WIREGRAD_MAX_MEMORY", "1MB")
    for node in doc["nodes"]:
        if node["id"] == "fc1":
            node["params"]["out_features"] = 4096
        if node["id"] == "bn":
            node["params"]["num_features"] = 4096
        if node["id"] == "fc2":
            node["params"]["in_features"] = 4096
    with pytest.raises(WiregradError, match="memory") as info:
        Trainer(doc)
    assert "WIREGRAD_MAX_MEMORY" in str(info.value)
    monkeypatch.setenv("WIREGRAD_MAX_MEMORY", "4GB")
    assert Trainer(doc).step == 0


def test_absurd_layer_sizes_are_refused_before_initialising_weights(monkeypatch):
    from engine.core.inference import extract_model, resolve_weights

    doc = copy.deepcopy(classifier(steps=1))
    for node in doc["nodes"]:
        if node["id"] == "fc1":
            node["params"]["out_features"] = 2**31 - 1
        if node["id"] == "bn":
            node["params"]["num_features"] = 2**31 - 1
        if node["id"] == "fc2":
            node["params"]["in_features"] = 2**31 - 1
    assert api.validate(doc)["ok"]
    monkeypatch.setenv("WIREGRAD_MAX_MEMORY", "8GB")  # the weights need ~34 GB
    with pytest.raises(WiregradError, match="memory") as info:
        resolve_weights(extract_model(doc, "float32"))
    assert info.value.node in ("fc1", "fc2", "bn")
    with pytest.raises(WiregradError, match="memory"):
        Trainer(doc)


def test_a_muted_node_with_a_malformed_bypass_is_refused_or_reported():
    from tests import blowup_docs

    raw = blowup_docs.muted_fan_out(3)
    raw["layers"]["Fan"]["nodes"][0]["bypass"] = {"out": ["x"]}  # found by the fuzzer
    with pytest.raises(DocumentError) as info:
        document.loads(json.dumps(raw))
    assert info.value.field.endswith(".bypass")
    from engine.core.compile import compile_graph

    doc = document.loads(json.dumps(blowup_docs.muted_fan_out(3)))
    doc["layers"]["Fan"]["nodes"][0]["bypass"] = {"out": ["x"]}  # past the loader
    assert not compile_graph(doc).ok


@pytest.mark.parametrize("where", ["id", "port", "symbol", "layer"])
def test_names_with_a_trailing_newline_are_refused(where):
    raw = json.loads(document.dumps(classifier(steps=1)))
    if where == "id":
        raw["nodes"][1]["id"] = "fc1\n"
    elif where == "port":
        raw["edges"][0]["dst"]["port"] = "x\n"
    elif where == "symbol":
        raw["nodes"].append({"id": "inp", "type": "input", "params": {"shape": ["B\n", 2]}})
    else:
        raw["layers"] = {"Bad\n": {"nodes": [], "edges": []}}
    try:
        doc = document.from_dict(raw)
    except DocumentError:
        return
    assert not api.validate(doc)["ok"]
