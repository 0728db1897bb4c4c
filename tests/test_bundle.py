"""Model bundles (.wgz): pack → validate / evaluate / sample round trip; hostile archives
(traversal, extra members, zip bombs, damaged members, foreign weight paths) are refused
with exit 2."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from engine import cli
from engine.base import paths
from engine.graphs.builders import char_gpt
from engine.train.checkpoint import CheckpointManager
from engine.train.trainer import Trainer
from tests.training_docs import classifier, save


def _trained(doc: dict, folder: Path, steps: int) -> Path:
    trainer = Trainer(doc, steps=steps)
    list(trainer.run())
    return CheckpointManager(folder).save_model(trainer)


def test_pack_then_validate_and_evaluate_the_bundle(tmp_path, capsys):
    doc = classifier(steps=20, eval_every=0)
    graph = save(doc, tmp_path / "g.json")
    weights = _trained(doc, tmp_path / "run", 20)
    bundle = tmp_path / "spiral.wgz"
    assert cli.main(["pack", graph, "--weights", str(weights), "--out", str(bundle)]) == 0
    capsys.readouterr()
    with zipfile.ZipFile(bundle) as zf:
        assert sorted(zf.namelist()) == ["graph.json", "meta.json", "weights.safetensors"]
    assert cli.main(["validate", str(bundle)]) == 0
    capsys.readouterr()
    assert cli.main(["evaluate", str(bundle), "--json"]) == 0  # the bundle's own weights
    from_bundle = json.loads(capsys.readouterr().out)
    assert cli.main(["evaluate", graph, "--weights", str(weights), "--json"]) == 0
    assert from_bundle == json.loads(capsys.readouterr().out)


def test_a_packed_char_model_samples(tmp_path, capsys):
    doc = char_gpt(layers=1, heads=2, width=16, block=16, batch=2, steps=2)
    graph = save(doc, tmp_path / "gpt.json")
    weights = _trained(doc, tmp_path / "run", 2)
    bundle = tmp_path / "gpt.wgz"
    assert cli.main(["pack", graph, "--weights", str(weights), "--out", str(bundle)]) == 0
    capsys.readouterr()
    assert cli.main(["sample", str(bundle), "-n", "24", "--no-echo", "--seed", "3"]) == 0
    text = capsys.readouterr().out
    vocab = next(n for n in doc["nodes"] if n["type"] == "text_corpus")["params"]["vocab"]
    assert len(text) == 25 and text.endswith("\n")
    assert set(text[:-1]) <= set(vocab)


def _members(tmp_path: Path) -> dict[str, bytes]:
    """The members of a genuine bundle."""
    doc = classifier(steps=2, eval_every=0)
    graph = save(doc, tmp_path / "g.json")
    weights = _trained(doc, tmp_path / "run", 2)
    good = tmp_path / "good.wgz"
    assert cli.main(["pack", graph, "--weights", str(weights), "--out", str(good)]) == 0
    with zipfile.ZipFile(good) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    path.write_bytes(buffer.getvalue())
    return path


def _foreign_weights(members: dict[str, bytes]) -> dict[str, bytes]:
    doc = json.loads(members["graph.json"])
    doc["weights"] = {"path": "../run/weights.safetensors"}
    return {**members, "graph.json": json.dumps(doc).encode()}


def _damaged(path: Path, members: dict[str, bytes]) -> Path:
    _zip(path, members)
    data = bytearray(path.read_bytes())
    start = data.index(b"weights.safetensors") + len("weights.safetensors") + 40
    for i in range(start, start + 64):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("case,needle", [
    ("traversal", "unexpected member '../graph.json'"),
    ("extra", "unexpected member 'notes.txt'"),
    ("bomb", "zip bomb"),
    ("damaged", "damaged"),
    ("foreign_weights", "weights.path"),  # refused by the document check itself
    ("not_a_zip", "not a Wiregrad bundle"),
])
def test_hostile_bundles_are_refused(tmp_path, capsys, case, needle):
    members = _members(tmp_path)
    capsys.readouterr()
    path = tmp_path / "bad.wgz"
    if case == "traversal":
        _zip(path, {**members, "../graph.json": members["graph.json"]})
    elif case == "extra":
        _zip(path, {**members, "notes.txt": b"hello"})
    elif case == "bomb":
        _zip(path, {**members, "meta.json": b"{" + b" " * 5_000_000 + b"}"})
    elif case == "damaged":
        _damaged(path, members)
    elif case == "foreign_weights":
        _zip(path, _foreign_weights(members))
    else:
        path.write_bytes(b"\x80\x04not a zip at all")
    for command in (["validate", str(path)], ["evaluate", str(path)]):
        assert cli.main(command) == 2
        err = capsys.readouterr().err
        assert needle in err, err
    # nothing escaped the extraction folder (cache/bundles/<digest>/)
    assert not (paths.cache_dir() / "bundles" / "graph.json").exists()
