"""Datasets and batching: what the data nodes (``engine/ops/data.py``) produce when training.

:func:`load_dataset` builds the :class:`Dataset` of one data node — generated procedurally
(``classification_2d``, ``regression_1d``, ``shapes_images``), bundled (``digits``) or read
from the user's files (``table_file``, ``image_folder``) — and splits it deterministically
into train and validation parts from the node's ``val_fraction`` and ``seed``.
:class:`Batcher` deals out reproducible shuffled mini-batches whose position can be saved in
a checkpoint and resumed exactly; :func:`iterate_in_order` walks a split for evaluation.

Every problem a user can cause (a missing or malformed file, a missing optional package, an
absurd size) raises :class:`~engine.base.errors.WiregradError` naming the node and the file.
Arrays handed out are read-only: a cached dataset is shared by every caller.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.base.errors import MissingExtraError, WiregradError

MAX_SAMPLES = 10_000_000
MAX_FILE_BYTES = 2 * 1024**3
MAX_ELEMENTS = 512 * 1024**2  # per dataset: 2 GiB of float32
CACHE_SIZE = 8

KINDS_2D = ("spirals", "moons", "circles", "xor")
SPIRAL_TURNS = 0.7  # how far each spiral arm winds, in full turns
SHAPE_NAMES = ("circle", "square", "triangle", "cross", "ring", "bar")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".npy", ".npz")

# Independent random streams drawn from one user seed.
_GENERATE, _SPLIT = 1, 2


@dataclass
class Dataset:
    """Train and validation arrays by output port name (leading axis = examples).

    Sources that batch differently (text: random windows of one token stream) set
    ``make_batcher(batch_size, seed)`` and ``eval_batches(batch_size, max_batches)``.
    """

    train: dict[str, np.ndarray]
    val: dict[str, np.ndarray]
    info: dict = field(default_factory=dict)
    make_batcher: Callable | None = None
    eval_batches: Callable | None = None


def batcher_for(ds: Dataset, batch_size: int, seed: int):
    """The training batcher of *ds* (shuffled examples unless the source says otherwise)."""
    if ds.make_batcher is not None:
        return ds.make_batcher(batch_size, seed)
    return Batcher(ds.train, batch_size, seed)


def eval_batches_for(ds: Dataset, batch_size: int, max_batches: int = 0) -> Iterator[dict]:
    """Deterministic validation batches of *ds*."""
    if ds.eval_batches is not None:
        return ds.eval_batches(batch_size, max_batches)
    return iterate_in_order(ds.val, batch_size, max_batches)


# op name -> builder(params, base, node) -> Dataset, for sources with their own split.
DATASET_BUILDERS: dict[str, Callable] = {}


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, stream])


# ------------------------------------------------------------------ loading + caching

_CACHE: OrderedDict[tuple, Dataset] = OrderedDict()


def load_dataset(op_name: str, params: dict, base_dir: Path | None = None,
                 node: str | None = None) -> Dataset:
    """The (cached) dataset of a data node of type *op_name* with *params*.

    Missing params take the op's defaults. Relative paths resolve against *base_dir* (the
    document's folder; the working directory when ``None``). Cached by op, canonical params,
    base folder and, for file sources, the file's size and modification time.
    """
    from engine.core import registry

    builder = _BUILDERS.get(op_name) or DATASET_BUILDERS.get(op_name)
    if builder is None:
        raise WiregradError(f"'{op_name}' is not a data source", node=node)
    params = {**registry.get(op_name).defaults(), **params}
    base = Path(base_dir) if base_dir is not None else None
    key = (op_name, json.dumps(params, sort_keys=True, default=str), str(base or Path.cwd()),
           _stamp(params, base) if "path" in params else None)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    if op_name in DATASET_BUILDERS:
        dataset = builder(params, base, node)
    else:
        arrays, info = builder(params, base, node)
        dataset = _split(arrays, info, params, node)
    _CACHE[key] = dataset
    while len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    return dataset


def clear_cache() -> None:
    """Forget every cached dataset."""
    _CACHE.clear()


def _stamp(params: dict, base: Path | None) -> tuple | None:
    try:
        st = _resolve(params.get("path", ""), base).stat()
    except (OSError, ValueError):
        return None
    return (st.st_size, st.st_mtime_ns)


def _split(arrays: dict[str, np.ndarray], info: dict, params: dict, node: str | None) -> Dataset:
    """Deterministic train/validation split from (val_fraction, seed); order is kept."""
    n = len(next(iter(arrays.values())))
    frac = float(params.get("val_fraction", 0.1))
    if not 0.0 <= frac < 1.0:
        raise WiregradError(f"val_fraction must lie in [0, 1), got {frac}", node=node,
                            field="val_fraction")
    n_val = int(round(n * frac))
    if frac > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    if n - n_val < 1:
        raise WiregradError(f"only {n} example(s): nothing left to train on", node=node)
    perm = _rng(params.get("seed", 0), _SPLIT).permutation(n)
    val_idx, train_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    train = {k: _frozen(v[train_idx]) for k, v in arrays.items()}
    val = {k: _frozen(v[val_idx]) for k, v in arrays.items()}
    info = {**info, "examples": n, "train": n - n_val, "val": n_val,
            "val_fraction": frac, "seed": int(params.get("seed", 0)),
            "ports": {k: [None, *v.shape[1:]] for k, v in arrays.items()}}
    info.setdefault("classes", None)
    return Dataset(train, val, info)


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.flags.writeable = False
    return a


def _check_count(n: int, node: str | None, what: str = "n_samples") -> None:
    if n > MAX_SAMPLES:
        raise WiregradError(f"{what} is {n:,}; at most {MAX_SAMPLES:,} examples are supported",
                            node=node)
    if n < 2:
        raise WiregradError(f"{what} is {n}; at least 2 examples are needed", node=node)


def _check_elements(n: int, per_example: int, node: str | None) -> None:
    if n * per_example > MAX_ELEMENTS:
        raise WiregradError(
            f"{n:,} examples of {per_example:,} values each would need "
            f"{n * per_example * 4 / 1024**3:.1f} GiB; at most {MAX_ELEMENTS * 4 / 1024**3:.0f} "
            "GiB per dataset is supported (lower n_samples or size)", node=node)


# ------------------------------------------------------------------ batching


class Batcher:
    """Deterministic shuffled mini-batches over a dict of equally long arrays.

    Epoch *e* visits the examples in the order ``permutation(seed, e)``, so the whole batch
    sequence follows from ``(seed, epoch, position)``: that is what :meth:`state` saves. The
    last batch of an epoch is smaller unless ``drop_last``.
    """

    def __init__(self, arrays: dict[str, np.ndarray], batch_size: int, seed: int,
                 shuffle: bool = True, drop_last: bool = False) -> None:
        if not arrays:
            raise ValueError("Batcher needs at least one array")
        lengths = {k: len(v) for k, v in arrays.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"arrays differ in length: {lengths}")
        self.arrays = arrays
        self.n = next(iter(lengths.values()))
        if self.n == 0:
            raise WiregradError("the dataset has no examples to batch")
        if batch_size < 1:
            raise WiregradError(f"batch_size must be at least 1, got {batch_size}")
        if drop_last and batch_size > self.n:
            raise WiregradError(f"batch_size {batch_size} is larger than the {self.n} examples "
                                "and drop_last would drop them all")
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.epoch = 0
        self._pos = 0
        self._perm = self._order()

    def _order(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.n)
        return np.random.default_rng([self.seed & 0xFFFFFFFF, self.epoch]).permutation(self.n)

    def next(self) -> dict[str, np.ndarray]:
        """The next batch; wraps into a freshly shuffled epoch when this one is used up."""
        idx = self._perm[self._pos:self._pos + self.batch_size]
        self._pos += len(idx)
        remaining = self.n - self._pos
        if remaining == 0 or (self.drop_last and remaining < self.batch_size):
            self.epoch += 1
            self._pos = 0
            self._perm = self._order()
        return {k: v[idx] for k, v in self.arrays.items()}

    __next__ = next

    def __iter__(self) -> Batcher:
        return self

    def state(self) -> dict:
        """JSON-able position: enough for :meth:`set_state` to continue identically."""
        return {"version": 1, "n": self.n, "seed": self.seed, "epoch": self.epoch,
                "position": self._pos, "shuffle": self.shuffle, "batch_size": self.batch_size}

    def set_state(self, state: dict) -> None:
        """Continue from a saved :meth:`state` (the data must have as many examples)."""
        try:
            n, seed, epoch, pos = (int(state[k]) for k in ("n", "seed", "epoch", "position"))
            shuffle = bool(state.get("shuffle", self.shuffle))
        except (KeyError, TypeError, ValueError) as exc:
            raise WiregradError(f"malformed batcher state: {exc}", field="batcher") from None
        if n != self.n:
            raise WiregradError(f"the saved batch position is for {n} examples but the data "
                                f"now has {self.n}", field="batcher")
        if not (0 <= pos < self.n and epoch >= 0):
            raise WiregradError(f"saved batch position {pos} / epoch {epoch} is out of range",
                                field="batcher")
        self.seed, self.epoch, self._pos, self.shuffle = seed, epoch, pos, shuffle
        self._perm = self._order()


def iterate_in_order(arrays: dict[str, np.ndarray], batch_size: int,
                     max_batches: int = 0) -> Iterator[dict[str, np.ndarray]]:
    """Consecutive batches in stored order (for evaluation); ``max_batches`` 0 means all."""
    n = len(next(iter(arrays.values()))) if arrays else 0
    batch_size = max(int(batch_size), 1)
    for i, start in enumerate(range(0, n, batch_size)):
        if max_batches and i >= max_batches:
            return
        yield {k: v[start:start + batch_size] for k, v in arrays.items()}


# ------------------------------------------------------------------ generated sources


def _balanced_labels(n: int, k: int) -> np.ndarray:
    """Class ids with counts differing by at most one."""
    return np.arange(n) % k


def _classification_2d(params: dict, base: Path | None, node: str | None):
    n, kind, noise = int(params["n_samples"]), params["kind"], float(params["noise"])
    _check_count(n, node)
    if kind not in KINDS_2D:
        raise WiregradError(f"unknown kind {kind!r} (expected one of {', '.join(KINDS_2D)})",
                            node=node, field="kind")
    k = int(params["classes"]) if kind == "spirals" else 2
    if not 2 <= k <= 8:
        raise WiregradError(f"spirals need 2 to 8 classes, got {k}", node=node, field="classes")
    rng = _rng(params["seed"], _GENERATE)
    labels = _balanced_labels(n, k)
    t = rng.uniform(0.0, 1.0, n)
    if kind == "spirals":
        r = 0.15 + 0.85 * t
        theta = 2 * np.pi * (labels / k + SPIRAL_TURNS * t)
        pts = np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)
    elif kind == "moons":
        a = np.pi * t
        upper = np.stack([np.cos(a), np.sin(a)], axis=1)
        lower = np.stack([1.0 - np.cos(a), 0.5 - np.sin(a)], axis=1)
        pts = (np.where(labels[:, None] == 0, upper, lower) - [0.5, 0.25]) / 1.5
    elif kind == "circles":
        a = 2 * np.pi * t
        r = np.where(labels == 0, 1.0, 0.5)
        pts = np.stack([r * np.cos(a), r * np.sin(a)], axis=1)
    else:  # xor: quadrant parity, points kept off the axes by a small margin
        sx, sy = rng.choice([-1.0, 1.0], n), np.where(labels == 0, 1.0, -1.0)
        pts = np.stack([sx, sx * sy], axis=1) * rng.uniform(0.05, 1.0, (n, 2))
    pts = pts + rng.normal(0.0, noise, pts.shape)
    order = rng.permutation(n)
    info = {"classes": k, "kind": kind,
            "description": f"{n} 2-D points, {kind}, {k} classes, noise {noise:g}"}
    return {"points": pts[order].astype(np.float32), "labels": labels[order].astype(np.int64)}, info


def _regression_1d(params: dict, base: Path | None, node: str | None):
    n, noise = int(params["n_samples"]), float(params["noise"])
    lo, hi, freq = float(params["x_min"]), float(params["x_max"]), float(params["frequency"])
    _check_count(n, node)
    if not hi > lo:
        raise WiregradError(f"x_max ({hi:g}) must be greater than x_min ({lo:g})", node=node,
                            field="x_max")
    rng = _rng(params["seed"], _GENERATE)
    x = rng.uniform(lo, hi, (n, 1))
    y = np.sin(freq * x) + rng.normal(0.0, noise, (n, 1))
    info = {"classes": None,
            "description": f"{n} points of y = sin({freq:g}·x) + N(0, {noise:g}²), "
                           f"x in [{lo:g}, {hi:g}]"}
    return {"x": x.astype(np.float32), "y": y.astype(np.float32)}, info


def _shape_sdf(name: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Signed distance (negative inside) to a unit-sized shape centred at the origin."""
    au, av = np.abs(u), np.abs(v)

    def box(hw: float, hh: float) -> np.ndarray:
        return np.maximum(au - hw, av - hh)

    if name == "circle":
        return np.hypot(u, v) - 0.9
    if name == "ring":
        return np.abs(np.hypot(u, v) - 0.72) - 0.22
    if name == "square":
        return box(0.8, 0.8)
    if name == "cross":
        return np.minimum(box(0.95, 0.27), box(0.27, 0.95))
    if name == "bar":
        return box(1.0, 0.3)
    # equilateral triangle, circumradius 1: the largest distance past any of its three edges
    edges = [(np.cos(a), np.sin(a)) for a in (np.pi / 2, np.pi / 2 + 2 * np.pi / 3,
                                              np.pi / 2 + 4 * np.pi / 3)]
    return np.max([-(u * cx + v * cy) - 0.5 for cx, cy in edges], axis=0)


def _shapes_images(params: dict, base: Path | None, node: str | None):
    n, k, size = int(params["n_samples"]), int(params["classes"]), int(params["size"])
    _check_count(n, node)
    _check_elements(n, size * size, node)
    if not 2 <= k <= len(SHAPE_NAMES):
        raise WiregradError(f"classes must lie in 2..{len(SHAPE_NAMES)}, got {k}", node=node,
                            field="classes")
    rng = _rng(params["seed"], _GENERATE)
    labels = rng.permutation(_balanced_labels(n, k))
    angle = np.deg2rad(float(params["rotation"])) * rng.uniform(-1, 1, n)
    scale = rng.uniform(float(params["min_scale"]), float(params["max_scale"]), n)
    shift = float(params["jitter"]) * rng.uniform(-1, 1, (n, 2)) * (1 - scale[:, None])
    fg, bg = rng.uniform(0.6, 1.0, n), rng.uniform(0.0, 0.25, n)
    images = np.empty((n, 1, size, size), np.float32)
    grid = (np.arange(size) + 0.5) / size * 2 - 1  # pixel centres in [-1, 1]
    gy, gx = np.meshgrid(-grid, grid, indexing="ij")
    pixel = 2.0 / size
    for cls, name in enumerate(SHAPE_NAMES[:k]):
        for chunk in np.array_split(np.flatnonzero(labels == cls), max(1, n // 512)):
            if not len(chunk):
                continue
            c, s = np.cos(angle[chunk])[:, None, None], np.sin(angle[chunk])[:, None, None]
            dx = gx[None] - shift[chunk, 0, None, None]
            dy = gy[None] - shift[chunk, 1, None, None]
            sc = scale[chunk, None, None]
            u, v = (c * dx + s * dy) / sc, (-s * dx + c * dy) / sc
            cover = np.clip(0.5 - _shape_sdf(name, u, v) * sc / pixel, 0.0, 1.0)
            lo, hi = bg[chunk, None, None], fg[chunk, None, None]
            images[chunk, 0] = lo + (hi - lo) * cover
    images += rng.normal(0.0, float(params["noise"]), images.shape).astype(np.float32)
    np.clip(images, 0.0, 1.0, out=images)
    info = {"classes": k, "class_names": list(SHAPE_NAMES[:k]),
            "description": f"{n} {size}×{size} grayscale images of "
                           f"{', '.join(SHAPE_NAMES[:k])} (rotated, scaled, shifted, noisy)"}
    return {"images": images, "labels": labels.astype(np.int64)}, info


def _digits(params: dict, base: Path | None, node: str | None):
    if importlib.util.find_spec("sklearn") is None:
        raise _missing("scikit-learn", "datasets", node)
    try:
        from sklearn.datasets import load_digits

        bunch = load_digits()
    except ImportError:
        raise _missing("scikit-learn", "datasets", node) from None
    images = (np.asarray(bunch.images, np.float32) / 16.0)[:, None]
    labels = np.asarray(bunch.target, np.int64)
    info = {"classes": 10, "description": f"{len(labels)} 8×8 handwritten digits "
                                          "(scikit-learn's bundled copy of the UCI set)"}
    return {"images": images, "labels": labels}, info


def _missing(package: str, extra: str, node: str | None) -> MissingExtraError:
    err = MissingExtraError(package, extra)
    err.node = node
    return err


# ------------------------------------------------------------------ file sources


def _resolve(path: str, base: Path | None) -> Path:
    p = Path(str(path)).expanduser()
    if not p.is_absolute():
        p = (base if base is not None else Path.cwd()) / p
    return p


def _existing(params: dict, base: Path | None, node: str | None, folder: bool) -> Path:
    given = str(params.get("path", "")).strip()
    if not given:
        raise WiregradError("no file chosen: set the 'path' param", node=node, field="path")
    p = _resolve(given, base)
    kind = "folder" if folder else "file"
    if not p.exists():
        raise WiregradError(f"{kind} not found: {p}", node=node, field="path")
    if folder != p.is_dir():
        raise WiregradError(f"expected a {kind}: {p}", node=node, field="path")
    if not folder and p.stat().st_size > MAX_FILE_BYTES:
        raise WiregradError(f"file {p} is {p.stat().st_size / 1024**3:.1f} GiB; at most "
                            f"{MAX_FILE_BYTES / 1024**3:.0f} GiB is supported", node=node)
    return p


def _table_file(params: dict, base: Path | None, node: str | None):
    path = _existing(params, base, node, folder=False)
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise WiregradError(f"{path}: unsupported file type '{suffix}' (use "
                            f"{', '.join(TABLE_SUFFIXES)})", node=node, field="path")
    if suffix == ".npz":
        x, y, columns, lines = _read_npz(path, params, node)
    else:
        table, names, lines = (_read_npy(path, node) if suffix == ".npy"
                               else _read_csv(path, params, node))
        x, y, columns, lines = _pick_columns(path, table, names, lines, params, node)
    return _finish_table(path, x, y, columns, lines, params, node)


def _read_csv(path: Path, params: dict, node: str | None):
    """Rows of stripped cells (blank lines skipped), the header names, each row's line number."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise WiregradError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})",
                            node=node) from None
    except OSError as exc:
        raise WiregradError(f"cannot read {path}: {exc.strerror or exc}", node=node) from None
    reader = csv.reader(io.StringIO(text), delimiter="\t" if path.suffix == ".tsv" else ",")
    rows: list[list[str]] = []
    lines: list[int] = []
    names: list[str] | None = None
    width, first = 0, 0
    try:
        for raw in reader:
            row = [c.strip() for c in raw]
            if not any(row):
                continue
            if not width:
                width, first = len(row), reader.line_num
                if params["has_header"]:
                    names = row
                    continue
            if len(row) != width:
                raise WiregradError(f"{path}, line {reader.line_num}: {len(row)} column(s), "
                                    f"but line {first} has {width}", node=node)
            if len(rows) >= MAX_SAMPLES:
                _check_count(len(rows) + 1, node, "the number of rows")
            rows.append(row)
            lines.append(reader.line_num)
    except csv.Error as exc:
        raise WiregradError(f"{path}, line {reader.line_num}: {exc}", node=node) from None
    if not rows:
        raise WiregradError(f"{path} has no data rows", node=node)
    return rows, names, lines


def _read_npy(path: Path, node: str | None):
    arr = _np_load(path, node)
    if not isinstance(arr, np.ndarray) or arr.ndim != 2 or arr.dtype.kind not in "biuf":
        raise WiregradError(f"{path}: expected a 2-D numeric array (rows = examples), got "
                            f"{_describe(arr)}", node=node)
    return arr, None, None


def _read_npz(path: Path, params: dict, node: str | None):
    archive = _np_load(path, node)
    keys = (params["x_key"] or "x", params["y_key"] or "y")
    with archive:
        missing = [k for k in keys if k not in archive.files]
        if missing:
            raise WiregradError(f"{path} has no array named {missing[0]!r} (it holds: "
                                f"{', '.join(archive.files) or 'nothing'}); set x_key / y_key",
                                node=node)
        try:
            x, y = archive[keys[0]], archive[keys[1]]
        except (ValueError, OSError, zipfile.BadZipFile) as exc:
            raise WiregradError(f"cannot read {path}: {exc}", node=node) from None
    if x.ndim == 1:
        x = x[:, None]
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    for key, a, nd in ((keys[0], x, 2), (keys[1], y, 1)):
        if a.ndim != nd or a.dtype.kind not in "biuf":
            raise WiregradError(f"{path}: array {key!r} must be {nd}-D and numeric, got "
                                f"{_describe(a)}", node=node)
    if len(x) != len(y):
        raise WiregradError(f"{path}: {keys[0]!r} has {len(x)} rows but {keys[1]!r} has "
                            f"{len(y)}", node=node)
    cols = [_column(c, None, x.shape[1], path, node) for c in params["feature_columns"]]
    if cols:
        x = x[:, cols]
    names = [f"{keys[0]}[{c}]" for c in (cols or range(x.shape[1]))]
    return x.astype(np.float64), y, names, None


def _np_load(path: Path, node: str | None):
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise WiregradError(f"cannot read {path}: {exc}", node=node) from None


def _describe(a) -> str:
    if isinstance(a, np.ndarray):
        return f"shape {list(a.shape)} of {a.dtype}"
    return type(a).__name__


def _column(spec, names: list[str] | None, ncols: int, path: Path, node: str | None) -> int:
    """Index of a column given by header name or by (possibly negative) number."""
    text = str(spec).strip()
    if names is not None and text in names:
        return names.index(text)
    try:
        index = int(text)
    except ValueError:
        known = f"columns: {', '.join(names)}" if names else "no header: number columns from 0"
        raise WiregradError(f"{path}: no column {text!r} ({known})", node=node) from None
    if not -ncols <= index < ncols:
        raise WiregradError(f"{path}: column {index} is out of range (the file has {ncols} "
                            "columns)", node=node)
    return index % ncols


def _pick_columns(path: Path, table, names, lines, params: dict, node: str | None):
    ncols = table.shape[1] if isinstance(table, np.ndarray) else len(table[0])
    label_spec = str(params["label_column"]).strip()
    label = _column(label_spec, names, ncols, path, node) if label_spec else ncols - 1
    feats = [_column(c, names, ncols, path, node) for c in params["feature_columns"]]
    feats = feats or [j for j in range(ncols) if j != label]
    if label in feats:
        raise WiregradError(f"{path}: column {_name(names, label)!r} is both a feature and the "
                            "label", node=node)
    if isinstance(table, np.ndarray):
        x, y = table[:, feats].astype(np.float64), table[:, label]
    else:
        x = np.zeros((len(table), 0))
        if feats:
            x = np.stack([_numbers(path, table, j, names, lines, node) for j in feats], axis=1)
        y = _label_cells(path, table, label, names, lines, params, node)
    return x, y, [_name(names, j) for j in feats], lines


def _name(names: list[str] | None, j: int) -> str:
    return names[j] if names is not None else str(j)


def _numbers(path, table, j, names, lines, node) -> np.ndarray:
    cells = [row[j] for row in table]
    try:
        return np.array(cells, dtype=np.float64)
    except ValueError:
        for i, cell in enumerate(cells):
            try:
                float(cell)
            except ValueError:
                raise WiregradError(f"{path}, line {lines[i]}, column {_name(names, j)!r}: "
                                    f"cannot parse {cell[:40]!r} as a number", node=node) from None
        raise


def _label_cells(path, table, j, names, lines, params, node) -> np.ndarray:
    if params["task"] != "classification":
        return _numbers(path, table, j, names, lines, node)
    cells = [row[j] for row in table]
    try:
        return np.array(cells, dtype=np.float64)
    except ValueError:
        i = next(i for i, c in enumerate(cells) if not _is_number(c))
        raise WiregradError(f"{path}, line {lines[i]}: class label {cells[i][:40]!r} is not an "
                            "integer (classification needs labels 0, 1, 2, …)", node=node) from None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _finish_table(path: Path, x: np.ndarray, y: np.ndarray, columns: list[str],
                  lines: list[int] | None, params: dict, node: str | None):
    """Checks shared by every table format, then features (float32) and labels."""
    where = (lambda i: f"line {lines[i]}") if lines else (lambda i: f"row {i}")
    n, want = len(x), int(params["n_features"])
    _check_count(n, node, "the number of rows")
    if x.shape[1] != want:
        raise WiregradError(f"{path} has {x.shape[1]} feature column(s) ({', '.join(columns)}) "
                            f"but n_features is {want}", node=node, field="n_features")
    bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
    if len(bad):
        raise WiregradError(f"{path}, {where(bad[0])}: a feature is not a finite number",
                            node=node)
    y = np.asarray(y)
    info = {"file": str(path), "columns": columns, "task": params["task"]}
    if params["task"] == "classification":
        yf = y.astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(yf) | (yf != np.round(yf)) | (yf < 0))
        if len(bad):
            raise WiregradError(f"{path}, {where(bad[0])}: class label {float(y[bad[0]]):g} is "
                                "not a non-negative integer (classification needs labels "
                                "0, 1, 2, …)", node=node)
        labels = yf.astype(np.int64)
        info["classes"] = int(labels.max()) + 1
    else:
        labels = y.astype(np.float64)
        if not np.isfinite(labels).all():
            i = int(np.flatnonzero(~np.isfinite(labels))[0])
            raise WiregradError(f"{path}, {where(i)}: target is not a finite number", node=node)
        info["classes"] = None
    info["description"] = (f"{n} rows of {want} feature(s) from {path.name} "
                           f"({params['task']})")
    return {"features": x.astype(np.float32), "labels": labels if labels.dtype == np.int64
            else labels.astype(np.float32)}, info


def _image_folder(params: dict, base: Path | None, node: str | None):
    if importlib.util.find_spec("PIL") is None:
        raise _missing("Pillow", "images", node)
    from PIL import Image, UnidentifiedImageError

    root = _existing(params, base, node, folder=True)
    size, gray = int(params["size"]), bool(params["grayscale"])
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    files = [(f, c) for c, name in enumerate(classes) for f in sorted((root / name).iterdir())
             if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]
    if len(classes) < 2 or not files:
        raise WiregradError(f"{root}: expected one subfolder of PNG/JPEG images per class "
                            f"(found {len(classes)} subfolder(s), {len(files)} image(s))",
                            node=node, field="path")
    _check_count(len(files), node, "the number of images")
    channels = 1 if gray else 3
    _check_elements(len(files), channels * size * size, node)
    images = np.empty((len(files), channels, size, size), np.float32)
    for i, (f, _) in enumerate(files):
        try:
            with Image.open(f) as im:
                im = im.convert("L" if gray else "RGB").resize((size, size), Image.BILINEAR)
                arr = np.asarray(im, np.float32) / 255.0
        except (OSError, ValueError, UnidentifiedImageError) as exc:
            raise WiregradError(f"cannot read image {f}: {exc}", node=node) from None
        images[i] = arr[None] if gray else arr.transpose(2, 0, 1)
    labels = np.array([c for _, c in files], np.int64)
    info = {"classes": len(classes), "class_names": classes, "file": str(root),
            "description": f"{len(files)} images from {root.name}/ in {len(classes)} classes"}
    return {"images": images, "labels": labels}, info


_BUILDERS: dict[str, Callable] = {
    "classification_2d": _classification_2d,
    "regression_1d": _regression_1d,
    "shapes_images": _shapes_images,
    "digits": _digits,
    "table_file": _table_file,
    "image_folder": _image_folder,
}
