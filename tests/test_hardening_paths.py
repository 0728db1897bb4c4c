"""Security: nothing a document says makes Wiregrad write outside the folder it belongs to,
weights paths stay beside their document, and reading data from elsewhere is announced
(issue 15.2; the engine side of 15.10)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine import api, cli
from engine.base import paths
from engine.base.errors import DocumentError, WiregradError
from engine.core import document
from tests.training_docs import classifier, save

HOSTILE_NAMES = ["../../../outside/x", "/tmp/abs/x", "..", ".", "", "a/../../b", "\x00x",
                 "C:\\Windows\\x", "~/x", "-rf", "名前 with spaces", "\ud800", "a" * 500,
                 "CON", ".hidden"]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_safe_name_is_one_plain_folder_name(name):
    slug = paths.safe_name(name)
    assert slug and len(slug) <= 40
    assert set(slug) <= set("abcdefghijklmnopqrstuvwxyz0123456789_-")
    assert slug[0].isalnum()
    assert (Path("/base") / slug).parent == Path("/base")


def test_contained_refuses_paths_leaving_their_folder(tmp_path):
    (tmp_path / "ok.bin").write_bytes(b"1")
    assert paths.contained(tmp_path, "ok.bin", "weights.path") == (tmp_path / "ok.bin").resolve()
    (tmp_path / "link").symlink_to(tmp_path.parent)
    for bad in ["../x", "/etc/passwd", "a\x00b", "sub/../../x", "link/x", "", "~/x"]:
        with pytest.raises(WiregradError) as info:
            paths.contained(tmp_path, bad, "weights.path")
        assert info.value.field == "weights.path"


def test_train_run_folder_from_a_hostile_name_stays_in_the_runs_folder(tmp_path, monkeypatch,
                                                                       capsys):
    home = tmp_path / "h"
    monkeypatch.setenv("WIREGRAD_HOME", str(home))
    for i, name in enumerate(["../../../outside/x", str(tmp_path / "abs" / "x")]):
        doc = classifier(steps=1, eval_every=0)
        doc["meta"]["name"] = name
        graph = save(doc, tmp_path / f"g{i}.json")
        assert cli.main(["train", graph, "--quiet"]) == 0
    assert not (tmp_path / "outside").exists() and not (tmp_path / "abs").exists()
    runs = list(paths.runs_dir().iterdir())
    assert len(runs) == 2 and all(r.is_dir() for r in runs)


@pytest.mark.parametrize("bad", ["../w.safetensors", "/tmp/w.safetensors", "w\x00.safetensors",
                                 "sub/../../w.safetensors", "", "C:\\w.safetensors"])
def test_weights_paths_leaving_the_document_folder_are_refused(bad, tmp_path, capsys):
    doc = classifier(steps=1)
    doc["weights"] = {"path": bad}
    with pytest.raises(DocumentError) as info:
        document.from_dict(json.loads(json.dumps(doc)))
    assert info.value.field == "weights.path"
    path = tmp_path / "g.json"
    path.write_text(json.dumps(doc))
    assert cli.main(["train", str(path), "--quiet"]) == 2
    assert "weights.path" in capsys.readouterr().err


def test_engine_functions_the_editor_calls_raise_project_errors(tmp_path):
    doc = classifier(steps=1)
    doc["weights"] = {"path": "w\x00.safetensors"}
    with pytest.raises(WiregradError):
        api.document_weights_path(doc, tmp_path / "g.json")
    with pytest.raises(WiregradError):
        api.document_weights(doc, tmp_path / "g.json")
    for bad in ["a\x00b.safetensors", str(tmp_path / "missing.safetensors"), str(tmp_path)]:
        with pytest.raises(WiregradError):
            api.load_weights_file(bad)
    with pytest.raises(WiregradError):
        api.open_graph("a\x00b.json")


def test_data_files_outside_the_document_folder_are_listed_and_announced(tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    folder = tmp_path / "doc"
    elsewhere.mkdir()
    folder.mkdir()
    rows = "\n".join(f"{i % 3},{i % 5},{i % 2}" for i in range(40))
    (elsewhere / "d.csv").write_text("a,b,label\n" + rows + "\n")
    (folder / "d.csv").write_text("a,b,label\n" + rows + "\n")
    doc = document.new_document("reads")
    doc["nodes"] = [{"id": "data", "type": "csv_dataset",
                     "params": {"path": "../elsewhere/d.csv"}}]
    assert api.files_outside(doc, folder / "g.json") == [str((elsewhere / "d.csv").resolve())]
    doc["nodes"][0]["params"]["path"] = "d.csv"
    assert api.files_outside(doc, folder / "g.json") == []
    doc["nodes"][0]["params"]["path"] = str(elsewhere / "d.csv")
    assert api.files_outside(doc, folder / "g.json") == [str((elsewhere / "d.csv").resolve())]
    assert api.files_outside(doc, None) == []


def test_train_announces_data_read_from_outside_the_document_folder(tmp_path, capsys):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "doc").mkdir()
    rows = "\n".join(f"{i % 3 * 0.5},{i % 5 * 0.1},{i % 3}" for i in range(60))
    (tmp_path / "elsewhere" / "d.csv").write_text("a,b,label\n" + rows + "\n")
    doc = classifier(steps=1, eval_every=0)
    doc["nodes"][0] = {"id": "data", "type": "table_file",
                       "params": {"path": "../elsewhere/d.csv", "n_features": 2,
                                  "batch_size": 8}}
    for edge in doc["edges"]:
        if edge["src"] == {"node": "data", "port": "points"}:
            edge["src"]["port"] = "features"
    graph = save(doc, tmp_path / "doc" / "g.json")
    assert cli.main(["train", graph, "--quiet", "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    assert "outside" in err and str((tmp_path / "elsewhere" / "d.csv").resolve()) in err


@pytest.mark.parametrize("bad", ["a" * 5000 + ".json", "a" * 5000, "\ud800.json", "x\x00.json",
                                 "/dev/null"], ids=["long.json", "long", "surrogate", "nul",
                                                    "devnull"])
def test_opening_unnameable_paths_is_a_project_error(bad):
    with pytest.raises(WiregradError):
        api.open_graph(bad)
    with pytest.raises(WiregradError):
        api.load_weights_file(bad)
    assert api.document_weights_path({}, bad) is None
    try:  # a name that cannot be a file there is no weights file, or a project error
        found = api.document_weights_path({"weights": {"path": bad}}, "/tmp/g.json")
    except WiregradError as exc:
        found = exc
    assert found is None or isinstance(found, WiregradError)
