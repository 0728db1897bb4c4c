"""Training settings in the editor (issue 14 §4): steps, evaluation interval, seed, dtype (the
document's ``training`` block) and the data source's batch size are editable in the training
dock, one undo step each, and saved with the graph."""

from __future__ import annotations

import copy
import json

import pytest

from engine import api

pytestmark = pytest.mark.gui


def _data_id(doc: dict) -> str:
    return next(n["id"] for n in doc["nodes"] if n["type"] == "classification_2d")


def test_fields_show_the_documents_settings(make_window):
    win = make_window("spiral_mlp")
    s = win.training.dock_widget.controls.settings
    training = api.document.training_settings(win.controller.model.doc)
    assert s.fields["steps"].value() == training["steps"]
    assert s.fields["eval_every"].value() == training["eval_every"]
    assert s.fields["seed"].value() == training["seed"]
    assert s.fields["dtype"].currentText() == training["dtype"]
    data = win.controller.model.node(_data_id(win.controller.model.doc))
    assert s.batch.value() == data["params"]["batch_size"]


def test_each_edit_is_one_undo_step_and_saved_with_the_graph(make_window, tmp_path):
    win = make_window("spiral_mlp")
    c, s = win.controller, win.training.dock_widget.controls.settings
    for edit, check in (
            (lambda: s.fields["steps"].setValue(321), lambda d: d["training"]["steps"] == 321),
            (lambda: s.fields["eval_every"].setValue(7),
             lambda d: d["training"]["eval_every"] == 7),
            (lambda: s.fields["seed"].setValue(99), lambda d: d["training"]["seed"] == 99),
            (lambda: s.fields["dtype"].setCurrentText("float64"),
             lambda d: d["training"]["dtype"] == "float64"),
            (lambda: s.batch.setValue(17),
             lambda d: next(n for n in d["nodes"] if n["id"] == _data_id(d))["params"][
                 "batch_size"] == 17)):
        before, count = copy.deepcopy(c.model.doc), c.stack.count()
        edit()
        assert check(c.model.doc)
        assert c.stack.count() == count + 1
        c.stack.undo()
        assert c.model.doc == before
        c.stack.redo()
    assert s.fields["steps"].value() == 321  # the field follows undo / redo
    c.stack.undo()
    c.stack.undo()
    assert s.fields["seed"].value() == 99 and s.batch.value() != 17
    path = tmp_path / "g.json"
    assert win.files.save_to(path)
    saved = json.loads(path.read_text())
    assert saved["training"]["steps"] == 321 and saved["training"]["seed"] == 99


def test_a_document_without_a_training_block_round_trips(make_window):
    win = make_window()
    c, s = win.controller, win.training.dock_widget.controls.settings
    assert "training" not in c.model.doc
    before = copy.deepcopy(c.model.doc)
    s.fields["seed"].setValue(5)
    assert c.model.doc["training"] == {"seed": 5}
    c.stack.undo()
    assert c.model.doc == before
    assert not s.batch.isEnabled()  # no data source: no batch size to edit


def test_settings_are_locked_while_a_run_is_live(make_window):
    win = make_window("spiral_mlp")
    ui = win.training
    s = ui.dock_widget.controls.settings
    ui.dock_widget.controls.set_state("running", True)
    assert not any(w.isEnabled() for w in (*s.fields.values(), s.batch))
    ui.lock.engage(win.controller.model.snapshot())
    try:
        assert ui.lock.guard([("set_training", "steps", 5)]) is not None
    finally:
        ui.lock.release()
    ui.dock_widget.controls.set_state("idle", False)
    assert all(w.isEnabled() for w in (*s.fields.values(), s.batch))


def test_train_can_start_from_the_documents_shipped_weights(make_window, monkeypatch):
    win = make_window("char_gpt")
    ui = win.training
    s = ui.dock_widget.controls.settings
    shipped = api.document_weights_path(win.controller.model.doc, win.files.document_source())
    assert shipped is not None and s.start.isEnabled() and s.start.count() == 2
    assert shipped.name in s.start.itemText(1)
    sent: list[dict] = []
    monkeypatch.setattr(ui.session, "train", lambda *a, **k: sent.append(k) or 1)
    monkeypatch.setattr(ui.lock, "engage", lambda doc: None)
    ui.train(steps=1)
    assert sent[-1]["weights"] is None  # a fresh initialisation unless chosen
    s.start.setCurrentIndex(1)
    assert not ui.session.active  # the mocked session started nothing
    ui.train(steps=1)
    assert sent[-1]["weights"] == str(shipped)
    assert len(ui.runs) == 2


def test_no_weights_no_fine_tune_choice(make_window):
    win = make_window("spiral_mlp")
    s = win.training.dock_widget.controls.settings
    assert s.start.count() == 1 and not s.start.isEnabled() and s.start_weights() is None

