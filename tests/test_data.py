"""Data sources (engine/data/, engine/ops/data.py): generation, splits, batching, files."""

from __future__ import annotations

import importlib.util
import json
import os
from types import SimpleNamespace

import numpy as np
import pytest

from engine.base.errors import MissingExtraError, WiregradError
from engine.core import registry
from engine.core.run import Context
from engine.data import datasets as data
from engine.data import files as data_files
from engine.data.batching import Batcher, iterate_in_order
from engine.data.datasets import load_dataset

GENERATED = {
    "classification_2d": [{}, {"kind": "moons"}, {"kind": "circles"}, {"kind": "xor"},
                          {"classes": 5, "n_samples": 500}],
    "regression_1d": [{}, {"x_min": 0.0, "x_max": 1.0, "n_samples": 50}],
    "shapes_images": [{}, {"size": 28, "classes": 6, "n_samples": 300}],
    "digits": [{}],
}
CASES = [(op, p) for op, ps in GENERATED.items() for p in ps]
DATA_OPS = ("classification_2d", "regression_1d", "shapes_images", "digits", "table_file",
            "image_folder")


@pytest.fixture(autouse=True)
def fresh_cache():
    data.clear_cache()
    yield
    data.clear_cache()


def _concat(ds: data.Dataset, port: str) -> np.ndarray:
    return np.concatenate([ds.train[port], ds.val[port]])


def _check_against_infer(op: str, params: dict, ds: data.Dataset) -> None:
    spec = registry.get(op)
    types = spec.infer([], {**spec.defaults(), **params})
    assert [p.name for p in spec.outputs] == list(ds.train) == list(ds.val)
    for split in (ds.train, ds.val):
        batch = {len(a) for a in split.values()}
        assert len(batch) == 1
        for t, arr in zip(types, split.values()):
            assert arr.ndim == len(t.shape)
            want = tuple(len(arr) if isinstance(d, str) else d for d in t.shape)
            assert arr.shape == want, (op, arr.shape, t.shape)
            assert arr.dtype == (np.int64 if t.dtype == "int" else np.float32)


# ------------------------------------------------------------------ registry


@pytest.mark.parametrize("op", DATA_OPS)
def test_data_ops_are_registered_with_common_params(op):
    spec = registry.get(op)
    assert spec.category == "data" and spec.family == "data"
    assert {"batch_size", "val_fraction", "seed"} <= set(spec.defaults())
    assert spec.defaults()["val_fraction"] == 0.1
    assert spec.inputs == [] and spec.backward(None, {}, None, None) == ()
    json.dumps(spec.to_json())
    types = spec.infer([], spec.defaults())
    assert len(types) == len(spec.outputs) and all(t.shape[0] == "B" for t in types)


def test_table_infer_follows_params():
    spec = registry.get("table_file")
    p = {**spec.defaults(), "n_features": 7, "task": "regression"}
    feats, labels = spec.infer([], p)
    assert feats.shape == ("B", 7) and labels.dtype == "float"
    assert spec.infer([], {**p, "task": "classification"})[1].dtype == "int"
    spec = registry.get("image_folder")
    images, _ = spec.infer([], {**spec.defaults(), "size": 12, "grayscale": False})
    assert images.shape == ("B", 3, 12, 12)


# ------------------------------------------------------------------ generated sources


@pytest.mark.parametrize("op,params", CASES)
def test_shapes_match_infer_and_info_is_json(op, params):
    ds = load_dataset(op, params, node="d")
    _check_against_infer(op, params, ds)
    info = json.loads(json.dumps(ds.info))
    assert info["examples"] == info["train"] + info["val"]
    assert info["train"] == len(next(iter(ds.train.values())))
    assert info["description"]


@pytest.mark.parametrize("op,params", [c for c in CASES if c[0] != "digits"])
def test_generation_is_deterministic_from_the_seed(op, params):
    a = load_dataset(op, params)
    data.clear_cache()
    b = load_dataset(op, params)
    c = load_dataset(op, {**params, "seed": 1})
    assert a is not b
    for port in a.train:
        np.testing.assert_array_equal(a.train[port], b.train[port])
        np.testing.assert_array_equal(a.val[port], b.val[port])
    assert not np.array_equal(_concat(a, next(iter(a.train))), _concat(c, next(iter(c.train))))


def test_split_sizes_are_exact_and_disjoint():
    ds = load_dataset("classification_2d", {"n_samples": 1000, "val_fraction": 0.2, "seed": 3})
    assert len(ds.train["points"]) == 800 and len(ds.val["points"]) == 200
    train = {tuple(p) for p in ds.train["points"].tolist()}
    val = {tuple(p) for p in ds.val["points"].tolist()}
    assert len(train) == 800 and len(val) == 200 and not train & val
    # Same seed, other batch size: the same split.
    other = load_dataset("classification_2d", {"n_samples": 1000, "val_fraction": 0.2,
                                               "seed": 3, "batch_size": 7})
    np.testing.assert_array_equal(other.val["points"], ds.val["points"])


def test_zero_val_fraction_and_tiny_sets():
    ds = load_dataset("regression_1d", {"n_samples": 10, "val_fraction": 0.0})
    assert ds.train["x"].shape == (10, 1) and ds.val["x"].shape == (0, 1)
    ds = load_dataset("regression_1d", {"n_samples": 2, "val_fraction": 0.01})
    assert (ds.info["train"], ds.info["val"]) == (1, 1)


def test_arrays_are_cached_and_read_only():
    a = load_dataset("classification_2d", {}, node="d")
    assert load_dataset("classification_2d", {"kind": "spirals"}) is a
    with pytest.raises(ValueError):
        a.train["points"][0, 0] = 5.0


@pytest.mark.parametrize("op,params,k", [
    ("classification_2d", {}, 3), ("classification_2d", {"classes": 7, "n_samples": 701}, 7),
    ("classification_2d", {"kind": "moons", "n_samples": 999}, 2),
    ("shapes_images", {"classes": 5, "n_samples": 502}, 5),
])
def test_classes_are_balanced(op, params, k):
    ds = load_dataset(op, params)
    counts = np.bincount(_concat(ds, "labels"), minlength=k)
    assert len(counts) == k and counts.max() - counts.min() <= 1
    assert ds.info["classes"] == k
    train = np.bincount(ds.train["labels"], minlength=k)
    assert train.min() >= 0.7 * train.max()


def test_non_spiral_kinds_have_two_classes():
    ds = load_dataset("classification_2d", {"kind": "xor", "classes": 5})
    assert set(_concat(ds, "labels").tolist()) == {0, 1} and ds.info["classes"] == 2


def test_regression_targets_follow_the_sine():
    ds = load_dataset("regression_1d", {"noise": 0.05, "n_samples": 2000})
    x, y = _concat(ds, "x"), _concat(ds, "y")
    assert -3.0 <= x.min() and x.max() <= 3.0
    resid = y - np.sin(x)
    assert 0.04 < resid.std() < 0.06 and abs(resid.mean()) < 0.01


def test_images_lie_in_unit_range():
    ds = load_dataset("shapes_images", {"n_samples": 200, "size": 16})
    im = _concat(ds, "images")
    assert im.min() >= 0.0 and im.max() <= 1.0 and im.std() > 0.1


def test_digits_load_from_scikit_learn():
    ds = load_dataset("digits", {}, node="d")
    im, labels = _concat(ds, "images"), _concat(ds, "labels")
    assert im.shape == (1797, 1, 8, 8) and 0.0 == im.min() and im.max() == 1.0
    assert sorted(set(labels.tolist())) == list(range(10)) and ds.info["classes"] == 10


def test_size_guards(monkeypatch):
    with pytest.raises(WiregradError, match="10,000,000") as err:
        load_dataset("classification_2d", {"n_samples": 10_000_001}, node="big")
    assert err.value.node == "big"
    with pytest.raises(WiregradError, match="GiB") as err:
        load_dataset("shapes_images", {"n_samples": 9_000_000, "size": 64}, node="big")
    assert err.value.node == "big"


# ------------------------------------------------------------------ learnability sanity


def _nearest_centroid_accuracy(ds: data.Dataset, port: str) -> float:
    x = ds.train[port].reshape(len(ds.train[port]), -1)
    xv = ds.val[port].reshape(len(ds.val[port]), -1)
    y = ds.train["labels"]
    centres = np.stack([x[y == c].mean(0) for c in range(int(y.max()) + 1)])
    pred = ((xv[:, None] - centres[None]) ** 2).sum(-1).argmin(1)
    return float((pred == ds.val["labels"]).mean())


def test_shapes_are_not_trivially_separable():
    ds = load_dataset("shapes_images", {})
    acc = _nearest_centroid_accuracy(ds, "images")
    assert 0.3 < acc < 0.8  # above chance (0.25) yet far from solved


def test_spirals_are_learnable_but_not_linear():
    ds = load_dataset("classification_2d", {})
    assert _nearest_centroid_accuracy(ds, "points") < 0.7
    x, xv = ds.train["points"], ds.val["points"]
    nearest = ((xv[:, None] - x[None]) ** 2).sum(-1).argmin(1)
    assert (ds.train["labels"][nearest] == ds.val["labels"]).mean() >= 0.97


# ------------------------------------------------------------------ batching


def test_batcher_covers_every_example_once_per_epoch_and_reshuffles():
    b = Batcher({"i": np.arange(10), "x": np.arange(10) * 2.0}, batch_size=3, seed=5)
    epochs = []
    for _ in range(3):
        start = b.epoch
        batches = [b.next() for _ in range(4)]
        assert [len(x["i"]) for x in batches] == [3, 3, 3, 1]
        assert b.epoch == start + 1
        order = np.concatenate([x["i"] for x in batches])
        assert sorted(order.tolist()) == list(range(10))
        np.testing.assert_array_equal(np.concatenate([x["x"] for x in batches]), order * 2.0)
        epochs.append(order.tolist())
    assert epochs[0] != epochs[1] != epochs[2]


def test_batcher_drop_last_and_no_shuffle():
    b = Batcher({"i": np.arange(10)}, batch_size=4, seed=0, shuffle=False, drop_last=True)
    got = [b.next()["i"].tolist() for _ in range(3)]
    assert got == [[0, 1, 2, 3], [4, 5, 6, 7], [0, 1, 2, 3]] and b.epoch == 1
    with pytest.raises(WiregradError):
        Batcher({"i": np.arange(3)}, batch_size=4, seed=0, drop_last=True)
    with pytest.raises(ValueError):
        Batcher({"a": np.arange(3), "b": np.arange(4)}, batch_size=2, seed=0)


def test_batcher_state_resumes_exactly():
    arrays = {"i": np.arange(23)}
    a = Batcher(arrays, batch_size=5, seed=11)
    for _ in range(7):
        a.next()
    state = json.loads(json.dumps(a.state()))
    b = Batcher(arrays, batch_size=5, seed=999)
    b.set_state(state)
    assert b.epoch == a.epoch == 1
    for _ in range(12):
        np.testing.assert_array_equal(a.next()["i"], b.next()["i"])
    assert a.epoch == b.epoch
    with pytest.raises(WiregradError, match="23"):
        Batcher({"i": np.arange(24)}, batch_size=5, seed=11).set_state(state)
    with pytest.raises(WiregradError):
        b.set_state({"n": 23})


def test_iterate_in_order():
    arrays = {"i": np.arange(10), "y": np.arange(10) + 1}
    batches = list(iterate_in_order(arrays, 4))
    assert [x["i"].tolist() for x in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [x["y"].tolist() for x in batches][2] == [9, 10]
    assert len(list(iterate_in_order(arrays, 3, max_batches=2))) == 2


# ------------------------------------------------------------------ forward


def _ctx(feed, dtype=np.float64) -> Context:
    return Context(SimpleNamespace(path="src"), {}, {}, True, None, feed, dtype)


def test_forward_checks_and_casts_the_feed():
    spec = registry.get("classification_2d")
    params = spec.defaults()
    pts, labels = spec.forward(_ctx((np.zeros((4, 2), np.float32), np.arange(4, dtype=np.int32))),
                               params)
    assert pts.dtype == np.float64 and labels.dtype == np.int64 and labels.tolist() == [0, 1, 2, 3]
    bad_feeds = [
        None,
        (np.zeros((4, 2)),),
        (np.zeros((4, 3)), np.zeros(4, np.int64)),
        (np.zeros((4, 2)), np.zeros(5, np.int64)),  # batch sizes disagree
        (np.zeros((4, 2)), np.zeros(4)),  # float labels
    ]
    for feed in bad_feeds:
        with pytest.raises(WiregradError) as err:
            spec.forward(_ctx(feed), params)
        assert err.value.node == "src"


def test_forward_of_regression_table_keeps_float_labels():
    spec = registry.get("table_file")
    params = {**spec.defaults(), "n_features": 3, "task": "regression"}
    feats, labels = spec.forward(_ctx((np.ones((2, 3)), np.ones(2)), np.float32), params)
    assert feats.dtype == np.float32 and labels.dtype == np.float32 and labels.shape == (2,)


# ------------------------------------------------------------------ table files


def _table(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


def _load_table(tmp_path, node="tbl", **params):
    return load_dataset("table_file", params, base_dir=tmp_path, node=node)


CSV = "a,b,name,label\n" + "".join(f"{i},{i * 0.5},row{i},{i % 3}\n" for i in range(30))


def test_csv_happy_path(tmp_path):
    _table(tmp_path, "t.csv", CSV)
    ds = _load_table(tmp_path, path="t.csv", n_features=2, feature_columns=["a", "1"],
                     label_column="label", val_fraction=0.0)
    _check_against_infer("table_file", {"n_features": 2}, ds)
    np.testing.assert_array_equal(ds.train["features"][:, 0], np.arange(30))
    np.testing.assert_allclose(ds.train["features"][:, 1], np.arange(30) * 0.5)
    assert ds.train["labels"].tolist() == [i % 3 for i in range(30)]
    assert ds.info["classes"] == 3 and ds.info["columns"] == ["a", "b"]


def test_csv_regression_without_header_and_default_columns(tmp_path):
    _table(tmp_path, "r.csv", "\n".join(f"{i},{-i},{i * 0.25}" for i in range(20)) + "\n\n")
    ds = _load_table(tmp_path, path=str(tmp_path / "r.csv"), n_features=2, has_header=False,
                     task="regression", val_fraction=0.25)
    _check_against_infer("table_file", {"n_features": 2, "task": "regression"}, ds)
    labels = np.sort(_concat(ds, "labels"))
    np.testing.assert_allclose(labels, np.arange(20) * 0.25)
    assert (ds.info["train"], ds.info["val"]) == (15, 5)


def test_npy_and_npz_tables(tmp_path):
    table = np.column_stack([np.arange(12.0), np.arange(12.0) ** 2, np.arange(12) % 2])
    np.save(tmp_path / "t.npy", table)
    ds = _load_table(tmp_path, path="t.npy", n_features=2, val_fraction=0.0)
    np.testing.assert_array_equal(ds.train["features"][:, 1], np.arange(12.0) ** 2)
    assert ds.train["labels"].tolist() == [i % 2 for i in range(12)]
    np.savez(tmp_path / "t.npz", inputs=table[:, :2], targets=table[:, 2])
    ds = _load_table(tmp_path, path="t.npz", n_features=1, x_key="inputs", y_key="targets",
                     feature_columns=["1"], val_fraction=0.0)
    np.testing.assert_array_equal(ds.train["features"][:, 0], np.arange(12.0) ** 2)
    with pytest.raises(WiregradError, match="'x'.*inputs, targets") as err:
        _load_table(tmp_path, path="t.npz", n_features=2)
    assert err.value.node == "tbl" and "t.npz" in str(err.value)


def test_edited_file_is_reloaded(tmp_path):
    path = _table(tmp_path, "t.csv", "x,y\n1,0\n2,1\n3,0\n")
    first = _load_table(tmp_path, path="t.csv", val_fraction=0.0)
    path.write_text("x,y\n1,0\n2,1\n3,0\n4,1\n")
    os.utime(path, ns=(0, 10**18))
    assert len(_load_table(tmp_path, path="t.csv", val_fraction=0.0).train["labels"]) == 4
    assert len(first.train["labels"]) == 3


@pytest.mark.parametrize("text,params,pattern", [
    ("a,b,label\n1,2,0\n3,oops,1\n", {}, r"line 3, column 'b': cannot parse 'oops'"),
    ("a,b,label\n1,2,0\n\n3,4\n", {}, r"line 4: 2 column\(s\), but line 1 has 3"),
    ("a,b,label\n1,2,0\n3,4,1\n", {"n_features": 3}, r"2 feature column\(s\) \(a, b\) but "
                                                     r"n_features is 3"),
    ("a,b,label\n1,2,0\n3,4,1.5\n", {}, r"line 3: class label 1.5 is not a non-negative"),
    ("a,b,label\n1,2,cat\n3,4,1\n", {}, r"line 2: class label 'cat' is not an integer"),
    ("a,b,label\n1,2,-1\n3,4,1\n", {}, r"line 2: class label -1 is not a non-negative"),
    ("a,b,label\n1,nan,0\n3,4,1\n", {}, r"line 2: a feature is not a finite number"),
    ("a,b,label\n", {}, r"has no data rows"),
    ("a,b,label\n1,2,0\n3,4,1\n", {"label_column": "z"}, r"no column 'z' \(columns: a, b, label"),
    ("a,b,label\n1,2,0\n3,4,1\n", {"feature_columns": ["a", "label"]}, r"both a feature"),
    ("a,b,label\n1,2,0\n3,4,1\n", {"feature_columns": ["7"]}, r"column 7 is out of range"),
    ('a,b,label\n1,2,0\n"3,4,1\n', {}, r"line 3"),
])
def test_csv_errors_name_node_file_and_line(tmp_path, text, params, pattern):
    _table(tmp_path, "bad.csv", text)
    with pytest.raises(WiregradError, match=pattern) as err:
        _load_table(tmp_path, path="bad.csv", **{"n_features": 2, **params})
    assert err.value.node == "tbl" and "bad.csv" in str(err.value)


def test_file_errors_name_node_and_file(tmp_path, monkeypatch):
    cases = [({"path": "missing.csv"}, "missing.csv", "not found"),
             ({"path": ""}, "", "set the 'path' param")]
    (tmp_path / "t.xlsx").write_bytes(b"PK")
    cases.append(({"path": "t.xlsx"}, "t.xlsx", "unsupported file type"))
    (tmp_path / "junk.npy").write_bytes(b"not an array")
    cases.append(({"path": "junk.npy"}, "junk.npy", "cannot read"))
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object))
    cases.append(({"path": "objects.npy"}, "objects.npy", "cannot read"))
    np.save(tmp_path / "flat.npy", np.arange(5.0))
    cases.append(({"path": "flat.npy"}, "flat.npy", "2-D numeric"))
    _table(tmp_path, "big.csv", CSV)
    for params, name, pattern in cases:
        with pytest.raises(WiregradError, match=pattern) as err:
            _load_table(tmp_path, n_features=1, **params)
        assert err.value.node == "tbl" and name in str(err.value)
    monkeypatch.setattr(data_files, "MAX_FILE_BYTES", 100)
    with pytest.raises(WiregradError, match="big.csv.*GiB"):
        _load_table(tmp_path, path="big.csv", n_features=3)


# ------------------------------------------------------------------ optional packages


def test_missing_packages_raise_missing_extra(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("PIL", "sklearn") else real(name, *a))
    with pytest.raises(MissingExtraError, match=r'pip install "wiregrad\[datasets\]"') as err:
        load_dataset("digits", {}, node="dig")
    assert err.value.node == "dig" and err.value.package == "scikit-learn"
    with pytest.raises(MissingExtraError, match=r'pip install "wiregrad\[images\]"') as err:
        load_dataset("image_folder", {"path": str(tmp_path)}, node="imgs")
    assert err.value.node == "imgs" and err.value.package == "Pillow"


def test_image_folder_loads_when_pillow_is_installed(tmp_path):
    for name in ("cats", "dogs"):
        (tmp_path / name).mkdir()
        for i in range(3):
            (tmp_path / name / f"{i}.png").write_bytes(b"")
    if importlib.util.find_spec("PIL") is None:
        with pytest.raises(MissingExtraError):
            load_dataset("image_folder", {"path": str(tmp_path)}, node="imgs")
        return
    from PIL import Image

    for c, name in enumerate(("cats", "dogs")):
        for i in range(3):
            Image.new("RGB", (10, 6), (200 * c, 50, 100)).save(tmp_path / name / f"{i}.png")
    params = {"path": str(tmp_path), "size": 5, "grayscale": False, "val_fraction": 0.0}
    ds = load_dataset("image_folder", params, node="imgs")
    _check_against_infer("image_folder", params, ds)
    assert ds.info["class_names"] == ["cats", "dogs"]
    assert sorted(ds.train["labels"].tolist()) == [0, 0, 0, 1, 1, 1]
    assert ds.train["images"].max() <= 1.0


def test_data_nodes_compile_in_a_document():
    from engine.core.compile import compile_graph
    from tests.helpers import doc_of, n

    doc = doc_of([n("t", "table_file", path="x.csv", n_features=3, task="regression",
                    feature_columns=["a", "b", "2"]),
                  n("s", "shapes_images", size=28)], [])
    prog = compile_graph(doc)
    assert [d for d in prog.diagnostics if d.severity == "error"] == []
    types = {eq.path: eq.output_types for eq in prog.equations}
    assert [(t.shape, t.dtype) for t in types["t"]] == [(("B", 3), "float"), (("B",), "float")]
    assert types["s"][0].shape == ("B", 1, 28, 28)
