"""Bundles (issue 15.7, 15.8): encrypted or unknown-compression members are clear errors,
extraction is bounded by the declared sizes and leaves nothing behind on failure, and a full
disk while packing or opening is a clear error (exit 2) with nothing half-written."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import zipfile
from pathlib import Path

import pytest

from engine import cli
from engine.base import io as wio
from engine.base import paths
from engine.base.errors import WiregradError
from engine.graphs import bundle
from tests.test_bundle import _members, _zip
from tests.training_docs import classifier, save


@pytest.fixture
def members(tmp_path) -> dict[str, bytes]:
    return _members(tmp_path)


def _stored(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _patch_headers(path: Path, *, flag: int = 0, method: int | None = None) -> Path:
    """Set general-purpose *flag* bits and/or the compression *method* of every member."""
    data = bytearray(path.read_bytes())
    for sig, flag_at, method_at in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
        start = 0
        while (i := data.find(sig, start)) >= 0:
            bits = int.from_bytes(data[i + flag_at:i + flag_at + 2], "little") | flag
            data[i + flag_at:i + flag_at + 2] = bits.to_bytes(2, "little")
            if method is not None:
                data[i + method_at:i + method_at + 2] = method.to_bytes(2, "little")
            start = i + 4
    path.write_bytes(bytes(data))
    return path


def _cache_entries() -> list[Path]:
    folder = paths.cache_dir() / "bundles"
    return sorted(folder.iterdir()) if folder.exists() else []


@pytest.mark.parametrize("case, needle", [("encrypted", "encrypted"),
                                          ("method", "compression")])
def test_encrypted_or_unknown_compression_is_a_clear_error(tmp_path, capsys, members, case,
                                                           needle):
    path = _stored(tmp_path / "b.wgz", members)
    if case == "encrypted":
        _patch_headers(path, flag=0x1)
    else:
        _patch_headers(path, method=99)
    with pytest.raises(WiregradError, match=needle):
        bundle.unpack(path)
    capsys.readouterr()
    assert cli.main(["validate", str(path)]) == 2
    assert needle in capsys.readouterr().err
    assert _cache_entries() == []


def test_a_checksum_failure_leaves_nothing_in_the_cache(tmp_path, members):
    doc = json.loads(members["graph.json"])
    doc["weights"]["sha256"] = hashlib.sha256(b"other").hexdigest()
    path = _zip(tmp_path / "b.wgz", {**members, "graph.json": json.dumps(doc).encode()})
    with pytest.raises(WiregradError, match="checksum"):
        bundle.unpack(path)
    assert _cache_entries() == []


def test_a_member_longer_than_declared_is_refused_and_cleaned_up(tmp_path, members):
    path = _stored(tmp_path / "b.wgz", members)
    data = bytearray(path.read_bytes())
    i = data.find(b"PK\x01\x02")  # central directory entry of the first member
    size = int.from_bytes(data[i + 24:i + 28], "little")
    data[i + 24:i + 28] = (size - 10).to_bytes(4, "little")  # declare 10 bytes less
    path.write_bytes(bytes(data))
    with pytest.raises(WiregradError):
        bundle.unpack(path)
    assert _cache_entries() == []


def test_a_good_bundle_opens_twice_and_stale_extractions_are_removed(tmp_path, members):
    path = _zip(tmp_path / "b.wgz", members)
    stale = paths.ensure(paths.cache_dir() / "bundles") / ".0123abcd.0a1b2c3d4e5f.tmp"
    stale.mkdir()
    (stale / "graph.json").write_text("{}")
    old = 1_000_000_000
    os.utime(stale, (old, old))
    first = bundle.unpack(path)
    second = bundle.unpack(path)
    assert first == second and first.is_file()
    assert not stale.exists()
    assert [p.name for p in _cache_entries()] == [first.parent.name]


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_while_opening_a_bundle_is_a_clear_error(tmp_path, members, monkeypatch,
                                                            capsys):
    path = _zip(tmp_path / "b.wgz", members)
    monkeypatch.setattr(wio.os, "fsync", _enospc)
    with pytest.raises(WiregradError, match="No space left"):
        bundle.unpack(path)
    capsys.readouterr()
    assert cli.main(["validate", str(path)]) == 2
    assert "No space left" in capsys.readouterr().err
    monkeypatch.undo()
    assert _cache_entries() == []


def test_a_full_disk_while_packing_is_exit_2_with_nothing_written(tmp_path, members,
                                                                  monkeypatch, capsys):
    graph = save(classifier(steps=2, eval_every=0), tmp_path / "g.json")
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(members["weights.safetensors"])
    out = tmp_path / "out" / "m.wgz"
    out.parent.mkdir()
    monkeypatch.setattr(wio.os, "fsync", _enospc)
    assert cli.main(["pack", graph, "--weights", str(weights), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "No space left" in err and "Traceback" not in err
    monkeypatch.undo()
    assert list(out.parent.iterdir()) == []
