"""Files: save / load round-trip, templates, recent files, malformed files, unsaved prompt,
autosave → crash → recovery, copy / paste between windows."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest
from guihelp import preset_names

from engine import api
from engine.base import paths
from engine.core import document

pytestmark = pytest.mark.gui


def test_save_and_reload_round_trip_exactly(make_window, dialogs, tmp_path):
    win = make_window("spiral_mlp")
    assert win.template and win.path is None
    win.controller.move({"fc1": (333.5, 12.0)}, 1)
    target = tmp_path / "mine.json"
    dialogs.save_path = str(target)
    assert win.files.save()  # a template: Save asks for a path
    assert win.path == target and not win.template and not win.files.is_dirty()
    saved = document.load(target)
    assert saved == api.embed_layer_definitions(win.controller.model.doc)
    again = make_window(str(target))
    assert again.controller.model.doc == saved and not again.template
    from nodegraph.files import read_recent

    assert read_recent()[0] == str(target)


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_opens(make_window, dialogs, name):
    win = make_window(None)
    assert win.files.open_document(name)
    assert not dialogs.errors and win.controller.validation["ok"]
    assert set(win.scene.nodes) == {n["id"] for n in win.controller.model.doc["nodes"]}


BAD = {
    "not_json.json": "{nodes: [",
    "newer.json": json.dumps({"format": "wiregrad-graph", "format_version": 99,
                              "min_reader_version": 99, "nodes": [], "edges": []}),
    "deep.json": "[" * 5000 + "]" * 5000,
    "bad_id.json": json.dumps({"format": "wiregrad-graph", "format_version": 2,
                               "nodes": [{"id": "<script>", "type": "relu"}], "edges": []}),
    "pickle.json": "\x80\x04\x95 not a document",
    "wrong_format.json": json.dumps({"format": "something-else", "format_version": 2}),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_malformed_files_error_cleanly_and_keep_the_open_graph(make_window, dialogs, tmp_path,
                                                               name):
    win = make_window("spiral_mlp")
    before = copy.deepcopy(win.controller.model.doc)
    path = tmp_path / name
    path.write_bytes(BAD[name].encode("utf-8", "surrogateescape"))
    assert not win.files.open_document(str(path))
    assert len(dialogs.errors) == 1 and dialogs.errors[0][1]
    assert win.controller.model.doc == before and win.template


def test_unknown_types_and_dangling_edges_open_with_diagnostics(make_window, dialogs, tmp_path):
    doc = document.new_document()
    doc["nodes"] = [{"id": "a", "type": "no_such_op", "params": {}}]
    doc["edges"] = [{"src": {"node": "ghost", "port": "out"}, "dst": {"node": "a", "port": "x"}}]
    path = tmp_path / "odd.json"
    path.write_text(json.dumps(doc))
    win = make_window(None)
    assert win.files.open_document(str(path))
    assert not win.controller.validation["ok"]
    assert win.diagnostics.count() >= 1 and "a" in win.scene.nodes


def test_unsaved_changes_prompt(make_window, dialogs):
    win = make_window("spiral_mlp")
    win.controller.set_param("fc1", "out_features", 8)
    dialogs.unsaved = "cancel"
    assert not win.close()
    assert dialogs.asked == ["unsaved"]
    dialogs.unsaved = "discard"
    assert win.close()


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_autosave_crash_and_recovery(make_window, dialogs):
    win = make_window("spiral_mlp")
    win.controller.set_param("fc1", "out_features", 48)
    win.controller.add_node("gelu", (100, 400))
    lost = copy.deepcopy(win.controller.model.doc)
    snap = win.files.autosave_now()
    assert snap is not None and snap.parent == paths.autosave_dir()
    lock = snap.with_suffix(".lock")
    assert lock.read_text() == str(__import__("os").getpid())
    assert document.load(snap) == document.from_dict(lost)
    # The process "crashes": its lock now names a pid that is gone; nothing was cleaned up.
    lock.write_text(str(dead_pid()))
    fresh = make_window(None)
    dialogs.recover = "later"
    assert not fresh.files.offer_recovery() and snap.exists()  # never deleted silently
    dialogs.recover = "recover"
    assert fresh.files.offer_recovery()
    assert fresh.controller.model.doc == document.from_dict(lost) and fresh.files.is_dirty()
    assert not snap.exists()  # moved into the recovering session's own autosave


def test_recovery_discard_removes_the_snapshot(make_window, dialogs):
    win = make_window("spiral_mlp")
    win.controller.set_param("fc1", "out_features", 48)
    snap = win.files.autosave_now()
    snap.with_suffix(".lock").write_text(str(dead_pid()))
    dialogs.recover = "discard"
    fresh = make_window(None)
    assert not fresh.files.offer_recovery()
    assert not snap.exists() and fresh.controller.model.doc["nodes"] == []


def test_copy_paste_between_two_windows(make_window):
    a = make_window("spiral_mlp")
    b = make_window(None)
    a.scene.select_nodes(["fc1", "act1"])
    assert a.edit.copy()
    ids = b.edit.paste()
    assert sorted(ids) == ["act1", "fc1"]
    doc = b.controller.model.doc
    assert doc["edges"] == [{"src": {"node": "fc1", "port": "y"},
                             "dst": {"node": "act1", "port": "x"}}]
    again = a.edit.paste()  # new readable ids where the old ones are taken
    assert sorted(again) == ["act1_2", "fc1_2"]
    assert {"src": {"node": "fc1_2", "port": "y"}, "dst": {"node": "act1_2", "port": "x"}} \
        in a.controller.model.doc["edges"]
    a.scene.select_nodes(["fc2"])
    assert a.edit.duplicate() == ["fc2_2"]


def test_export_png_and_svg(make_window, tmp_path):
    win = make_window("spiral_mlp")
    win.files.export_image(str(tmp_path / "g.png"))
    win.files.export_image(str(tmp_path / "g.svg"))
    assert (tmp_path / "g.png").stat().st_size > 1000
    assert b"<svg" in (tmp_path / "g.svg").read_bytes()[:2000]


def test_an_edit_is_autosaved_within_seconds(qtbot, qapp, dialogs, catalog, monkeypatch):
    """Not only every two minutes: each edit (re)starts a short timer, so an editor killed
    right after editing loses at most a few seconds of work (the timer is shortened here)."""
    from nodegraph import theme
    from nodegraph.editing import autosave
    from nodegraph.files import load_graph
    from nodegraph.mainwindow import MainWindow

    monkeypatch.setattr(autosave, "DEBOUNCE_MS", 50)
    theme.apply(qapp)
    doc, path, template = load_graph("spiral_mlp")
    win = MainWindow(doc, path, template, warm_up=False, autosave=True, catalog=catalog)
    qtbot.addWidget(win)
    assert win.files.autosave_soon.interval() == 50 and not win.files.autosave_soon.isActive()
    win.controller.set_param("fc1", "out_features", 40)
    assert win.files.autosave_soon.isActive()

    def snapshots():
        return [p for p in paths.autosave_dir().glob("*.json")
                if not p.name.endswith(".info.json")]

    qtbot.waitUntil(lambda: bool(snapshots()), timeout=10_000)
    fc1 = [next(n for n in document.load(p)["nodes"] if n["id"] == "fc1") for p in snapshots()]
    assert any(n["params"]["out_features"] == 40 for n in fc1)
    win.files.autosaver.clear()
