"""Hot settings — params that may change while a run trains — are declared once, on the op
spec (``Param.hot``), and everything else reads them from there (engine/core/hot.py)."""

from __future__ import annotations

import numpy as np
import pytest

from engine import api
from engine.base.errors import WiregradError
from engine.core import registry
from engine.core.hot import definition_hot_params, hot_targets
from engine.train.trainer import Trainer
from tests.training_docs import classifier


def test_every_primitive_op_reads_its_hot_params_from_its_spec():
    for spec in registry.all_ops():
        if spec.layer is not None:
            continue
        declared = {p.name for p in spec.params if p.hot}
        assert set(hot_targets(spec.name)) == declared, spec.name
        assert all(t == [("", name)] for name, t in hot_targets(spec.name).items())


def test_layers_pass_hot_params_on_only_when_every_use_is_hot():
    assert hot_targets("Dropout") == {"p": [("drop", "p")]}
    assert set(hot_targets("BatchNorm2d")) == {"momentum"}
    block = hot_targets("TransformerBlock")
    assert set(block) == {"dropout"}  # embed_dim, num_heads… shape the graph: never hot
    assert sorted(block["dropout"]) == [("attn.drop", "p"), ("drop", "p")]
    mixed = {
        "params": [{"name": "p", "kind": "float", "default": 0.1},
                   {"name": "q", "kind": "float", "default": 0.1}],
        "nodes": [{"id": "a", "type": "dropout", "params": {"p": "$p"}},
                  {"id": "b", "type": "dropout", "params": {"p": "$q"}},
                  {"id": "c", "type": "Linear", "params": {"in_features": 4,
                                                           "out_features": "$q"}}],
    }
    assert definition_hot_params(mixed) == {"p"}  # q also sizes a Linear


def test_the_catalog_marks_layer_params_hot_like_their_ops():
    ops = {op["name"]: op for op in api.catalog()["ops"]}
    hot = {name: {p["name"] for p in op["params"] if p["hot"]} for name, op in ops.items()}
    assert hot["optimizer"] == {"lr", "weight_decay", "clip_norm"}
    assert hot["Dropout"] == {"p"} and hot["BatchNorm1d"] == {"momentum"}
    assert hot["Linear"] == set() and hot["TransformerBlock"] == {"dropout"}


def _until_hparams(gen):
    for record in gen:
        if record["kind"] == "hparams":
            return record
    raise AssertionError("no hparams record")


def test_dropout_and_momentum_change_in_the_running_program():
    trainer = Trainer(classifier(steps=20, eval_every=0))
    gen = trainer.run()
    next(gen)
    trainer.set_node_params("drop", {"p": 0.0})
    trainer.set_node_params("bn", {"momentum": 0.5})
    record = _until_hparams(gen)
    assert record["nodes"] == {"drop": {"p": 0.0}, "bn": {"momentum": 0.5}}
    eqs = {eq.path: eq for eq in trainer.program.equations}
    assert eqs["drop.drop"].params["p"] == 0.0
    assert eqs["bn.norm"].params["momentum"] == 0.5


def test_a_momentum_edit_changes_how_far_the_running_mean_moves():
    edited, plain = Trainer(classifier(steps=5)), Trainer(classifier(steps=5))
    mean = next(k for k in plain.state if k.endswith("running_mean"))
    start = plain.state[mean].copy()
    edited.set_node_params("bn", {"momentum": 0.5})
    for trainer in (edited, plain):  # the same seed: the same weights and the same batch
        first = next(r for r in trainer.run() if r["kind"] == "train")
        assert first["step"] == 1
    batch_step = (plain.state[mean] - start) / 0.1  # default momentum 0.1
    np.testing.assert_allclose(edited.state[mean], start + 0.5 * batch_step, rtol=1e-9)


def test_cold_and_out_of_range_edits_are_refused_naming_node_and_field():
    trainer = Trainer(classifier(steps=5))
    with pytest.raises(WiregradError, match="out_features") as err:
        trainer.set_node_params("fc1", {"out_features": 4})
    assert err.value.node == "fc1" and err.value.field == "out_features"
    with pytest.raises(WiregradError, match="maximum") as err:
        trainer.set_node_params("drop", {"p": 1.5})
    assert err.value.node == "drop" and err.value.field == "p"
    with pytest.raises(WiregradError, match="no node"):
        trainer.set_node_params("nowhere", {"p": 0.1})
    with pytest.raises(WiregradError, match="finite"):
        trainer.set_hparams(lr=float("inf"))
