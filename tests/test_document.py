"""The graph document: round-trips, migrations, limits and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.base.errors import DocumentError
from engine.core import document
from engine.graphs.presets import presets_dir

FIXTURES = Path(__file__).parent / "fixtures" / "migrations"
PRESETS = sorted(presets_dir().glob("*.json"))


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_presets_round_trip_byte_identical(path, tmp_path):
    original = path.read_text(encoding="utf-8")
    doc = document.loads(original)
    first = document.dumps(doc)
    assert first == original, "preset is not in canonical form: re-save it with document.save"
    out = tmp_path / "again.json"
    document.save(document.loads(first), out)
    assert out.read_text(encoding="utf-8") == first
    assert document.load(out) == doc


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_presets_match_the_json_schema(path):
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((Path(document.__file__).parents[1] / "schema" / "graph.schema.json")
                        .read_text())
    jsonschema.validate(json.loads(path.read_text()), schema)


def test_schema_rejects_what_the_loader_rejects():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((Path(document.__file__).parents[1] / "schema" / "graph.schema.json")
                        .read_text())
    bad = json.loads((presets_dir() / "spiral_mlp.json").read_text())
    bad["nodes"][0]["id"] = "has space"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    with pytest.raises(DocumentError):
        document.from_dict(bad)


def test_floats_keep_shortest_repr_and_keys_sorted():
    doc = document.new_document("floats")
    doc["extra"] = {"b": 0.1, "a": 1e-7, "c": 12345.678}
    text = document.dumps(doc)
    assert '"a": 1e-07' in text and '"b": 0.1' in text and '"c": 12345.678' in text
    assert text.index('"a"') < text.index('"b"') < text.index('"c"')
    assert document.dumps(document.loads(text)) == text


@pytest.mark.parametrize("fixture", sorted(FIXTURES.glob("v*_*[!d].json")), ids=lambda p: p.stem)
def test_migration_fixture(fixture):
    expected = FIXTURES / fixture.name.replace(".json", ".expected.json")
    migrated = document.load(fixture)
    assert migrated["format_version"] == document.FORMAT_VERSION
    assert document.dumps(migrated) == expected.read_text(encoding="utf-8")


def test_migration_is_pure():
    raw = json.loads((FIXTURES / "v1_tiny_mlp.json").read_text())
    snapshot = json.dumps(raw, sort_keys=True)
    document.migrate(raw)
    assert json.dumps(raw, sort_keys=True) == snapshot


def test_newer_reader_version_is_refused():
    doc = document.new_document()
    doc["format_version"] = 9
    doc["min_reader_version"] = 7
    with pytest.raises(DocumentError, match="reader 7 or newer") as info:
        document.from_dict(doc)
    assert info.value.field == "min_reader_version"


def test_newer_format_readable_by_us_is_accepted_when_min_reader_allows():
    doc = document.new_document()
    doc["format_version"] = 2
    assert document.from_dict(doc)["format_version"] == 2


@pytest.mark.parametrize("text,needle", [
    ('{"format": "wiregrad-graph", "format_version": 2, "extra": {"x": NaN}}', "NaN"),
    ('{"format": "wiregrad-graph", "format_version": 2, "extra": {"x": Infinity}}', "Infinity"),
    ('{"format": "wiregrad-graph", "format_version": 2, "extra": {"x": 1e999}}', "finite"),
    ('{"format": "wiregrad-graph", "format_version": 2, "extra": {"x": 1' + "0" * 5000 + "}}",
     "digits"),
    ("[" * 100_000 + "]" * 100_000, "nested"),
    ('{"format": "wiregrad-graph", "format_version": 2, "extra": ' + '{"a": ' * 60 + "1"
     + "}" * 61, "nested"),
    ("{not json", "not valid JSON"),
    ("[1, 2]", "JSON object"),
    ('{"format": "other", "format_version": 2}', "wiregrad-graph"),
])
def test_hostile_text_gets_a_clear_error(text, needle):
    with pytest.raises(DocumentError, match=needle):
        document.loads(text)


def test_oversized_file_is_refused_before_reading(tmp_path, monkeypatch):
    monkeypatch.setattr(document, "MAX_BYTES", 1000)
    path = tmp_path / "big.json"
    path.write_text(" " * 2000)
    with pytest.raises(DocumentError, match="larger than"):
        document.load(path)


@pytest.mark.parametrize("mutate,field", [
    (lambda d: d["nodes"][0].update(id="1bad"), "nodes[0].id"),
    (lambda d: d["nodes"][1].update(id=d["nodes"][0]["id"]), "nodes[1].id"),
    (lambda d: d["nodes"][0].update(params=[1]), "nodes[0].params"),
    (lambda d: d["nodes"][0].update(ui={"pos": [1]}), "nodes[0].ui.pos"),
    (lambda d: d["edges"][0].update(src="fc1"), "edges[0].src"),
    (lambda d: d["edges"][0]["dst"].update(port="x y"), "edges[0].dst.port"),
    (lambda d: d.update(training={"steps": -1}), "training.steps"),
    (lambda d: d.update(training={"lr": 1}), "training.lr"),
    (lambda d: d.update(surprise=1), "surprise"),
    (lambda d: d.update(weights={"sha256": "x"}), "weights"),
])
def test_structural_errors_name_the_field(mutate, field):
    doc = json.loads((presets_dir() / "spiral_mlp.json").read_text())
    mutate(doc)
    with pytest.raises(DocumentError) as info:
        document.from_dict(doc)
    assert info.value.field == field
    assert field in str(info.value)


def test_extra_is_preserved_on_round_trip():
    doc = document.new_document()
    doc["extra"] = {"plugin": {"nested": [1, 2, {"k": "v"}]}}
    assert document.loads(document.dumps(doc))["extra"] == doc["extra"]


def test_unknown_node_type_is_kept_not_dropped():
    doc = document.new_document()
    doc["nodes"] = [{"id": "a", "type": "from_the_future", "params": {"k": 1}}]
    loaded = document.loads(document.dumps(doc))
    assert loaded["nodes"][0]["type"] == "from_the_future"
    assert document.loads(document.dumps(loaded)) == loaded
