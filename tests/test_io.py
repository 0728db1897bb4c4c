"""engine.base.io: atomic writes survive failures; weights load only from safetensors."""

from __future__ import annotations

import errno
import hashlib
import os
import pickle
import zipfile

import numpy as np
import pytest

from engine.base import io
from engine.base.errors import WiregradError


class _CreatesFile:
    """A pickle payload: unpickling it calls the builtin ``open(target, "w")``."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def _tensors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "w": rng.standard_normal((3, 4)).astype(np.float32),
        "w_t": rng.standard_normal((4, 5)).T,  # non-contiguous float64 view
        "ids": np.arange(7, dtype=np.int64),
        "scalar": np.array(2.5, dtype=np.float64),
        "mask": np.array([True, False, True]),
    }


def test_weights_round_trip(tmp_path):
    tensors = _tensors()
    path = tmp_path / "model.safetensors"
    io.save_weights(path, tensors)
    loaded, metadata = io.load_weights(path)
    assert metadata == {}
    assert loaded.keys() == tensors.keys()
    for name, array in tensors.items():
        assert loaded[name].dtype == array.dtype, name
        assert loaded[name].shape == array.shape, name
        np.testing.assert_array_equal(loaded[name], array, err_msg=name)


def test_weights_metadata_round_trip(tmp_path):
    path = tmp_path / "m.safetensors"
    metadata = {"preset": "char_gpt", "step": "1200", "vocab": "abc\n é"}
    io.save_weights(path, {"x": np.ones(2, np.float32)}, metadata)
    _, loaded = io.load_weights(path)
    assert loaded == metadata


def test_weights_metadata_must_be_strings(tmp_path):
    path = tmp_path / "m.safetensors"
    with pytest.raises(WiregradError, match="metadata"):
        io.save_weights(path, {"x": np.ones(2)}, {"step": 3})  # type: ignore[dict-item]
    assert not path.exists()


def test_pickle_is_refused_and_never_executed(tmp_path):
    # The payload is live: unpickling a twin really creates its target file.
    twin = tmp_path / "twin_was_created"
    pickle.loads(pickle.dumps(_CreatesFile(str(twin))))
    assert twin.exists()

    target = tmp_path / "pwned"
    weights = tmp_path / "evil.safetensors"
    weights.write_bytes(pickle.dumps({"w": _CreatesFile(str(target))}))
    with pytest.raises(WiregradError) as info:
        io.load_weights(weights)
    assert str(weights) in str(info.value)
    assert "pickle" in str(info.value)
    assert not target.exists()


def test_torch_style_zip_checkpoint_is_refused(tmp_path):
    target = tmp_path / "pwned"
    checkpoint = tmp_path / "model.pt"
    with zipfile.ZipFile(checkpoint, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps(_CreatesFile(str(target))))
        archive.writestr("archive/version", "3\n")
    with pytest.raises(WiregradError, match="zip") as info:
        io.load_weights(checkpoint)
    assert str(checkpoint) in str(info.value)
    assert not target.exists()


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\x02\x00",
        (2).to_bytes(8, "little") + b"[]",
        (4).to_bytes(8, "little") + b'"x" ',
        (50).to_bytes(8, "little") + b"{}",  # header longer than the file
        (1 << 62).to_bytes(8, "little") + b"{}",
        (3).to_bytes(8, "little") + b"\xff\xfe{",
    ],
    ids=["empty", "short", "array-header", "string-header", "truncated", "huge", "not-utf8"],
)
def test_malformed_files_are_refused_with_their_name(tmp_path, content):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(WiregradError) as info:
        io.load_weights(path)
    assert str(path) in str(info.value)


def test_damaged_tensor_data_is_refused(tmp_path):
    path = tmp_path / "cut.safetensors"
    io.save_weights(path, {"w": np.ones((64, 64), np.float32)})
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(WiregradError, match="cut.safetensors"):
        io.load_weights(path)


def test_missing_file_is_a_wiregrad_error(tmp_path):
    with pytest.raises(WiregradError, match="nope.safetensors"):
        io.load_weights(tmp_path / "nope.safetensors")


def test_atomic_write_text_and_bytes(tmp_path):
    path = tmp_path / "doc.json"
    io.atomic_write_text(path, '{"a": 1}\r\n')
    assert path.read_bytes() == b'{"a": 1}\r\n'
    io.atomic_write_bytes(path, b"second")
    assert path.read_bytes() == b"second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["doc.json"]


def test_atomic_write_keeps_permissions(tmp_path):
    path = tmp_path / "doc.json"
    path.write_bytes(b"old")
    os.chmod(path, 0o640)
    io.atomic_write_bytes(path, b"new")
    assert os.stat(path).st_mode & 0o777 == 0o640


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_failed_write_leaves_previous_file_and_no_temp(tmp_path, monkeypatch, failing):
    path = tmp_path / "model.safetensors"
    io.save_weights(path, {"w": np.arange(10, dtype=np.float32)}, {"step": "1"})
    before = path.read_bytes()

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, failing, no_space)
    with pytest.raises(OSError) as info:
        io.save_weights(path, {"w": np.zeros(1000, dtype=np.float32)}, {"step": "2"})
    assert info.value.errno == errno.ENOSPC
    monkeypatch.undo()

    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]
    _, metadata = io.load_weights(path)
    assert metadata == {"step": "1"}


def test_interrupted_write_removes_temp(tmp_path, monkeypatch):
    path = tmp_path / "doc.json"
    path.write_text("old")
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        io.atomic_write_text(path, "new")
    monkeypatch.undo()
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["doc.json"]


def test_sha256_file(tmp_path):
    path = tmp_path / "blob"
    data = os.urandom(3 * (1 << 20) + 17)  # spans several read chunks
    path.write_bytes(data)
    assert io.sha256_file(path) == hashlib.sha256(data).hexdigest()
