"""File data sources: ``table_file`` (CSV/TSV/.npy/.npz tables) and ``image_folder``.

Each builder returns ``(arrays by port, info)``; the split is made by
:func:`engine.data.datasets.load_dataset`. Every problem in a user's file is a
:class:`~engine.base.errors.WiregradError` naming the node, the file and the line.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import zipfile
from pathlib import Path

import numpy as np

from engine.base.errors import WiregradError
from engine.data.common import (
    MAX_FILE_BYTES,
    MAX_SAMPLES,
    check_count,
    check_elements,
    missing_extra,
    resolve_path,
)

Built = tuple[dict[str, np.ndarray], dict]  # arrays by port, info

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".npy", ".npz")


def _existing(params: dict, base: Path | None, node: str | None, folder: bool) -> Path:
    given = str(params.get("path", "")).strip()
    if not given:
        raise WiregradError("no file chosen: set the 'path' param", node=node, field="path")
    p = resolve_path(given, base)
    kind = "folder" if folder else "file"
    if not p.exists():
        raise WiregradError(f"{kind} not found: {p}", node=node, field="path")
    if folder != p.is_dir():
        raise WiregradError(f"expected a {kind}: {p}", node=node, field="path")
    if not folder and p.stat().st_size > MAX_FILE_BYTES:
        raise WiregradError(f"file {p} is {p.stat().st_size / 1024**3:.1f} GiB; at most "
                            f"{MAX_FILE_BYTES / 1024**3:.0f} GiB is supported", node=node)
    return p


def table_file(params: dict, base: Path | None, node: str | None) -> Built:
    """Features and labels from a CSV/TSV, .npy or .npz table."""
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
                check_count(len(rows) + 1, node, "the number of rows")
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
    check_count(n, node, "the number of rows")
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


def image_folder(params: dict, base: Path | None, node: str | None) -> Built:
    """PNG/JPEG images from one subfolder per class, resized (Pillow)."""
    if importlib.util.find_spec("PIL") is None:
        raise missing_extra("Pillow", "images", node)
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
    check_count(len(files), node, "the number of images")
    channels = 1 if gray else 3
    check_elements(len(files), channels * size * size, node)
    images = np.empty((len(files), channels, size, size), np.float32)
    for i, (f, _) in enumerate(files):
        try:
            with Image.open(f) as opened:
                im = opened.convert("L" if gray else "RGB").resize(
                    (size, size), Image.Resampling.BILINEAR)
                arr = np.asarray(im, np.float32) / 255.0
        except (OSError, ValueError, UnidentifiedImageError) as exc:
            raise WiregradError(f"cannot read image {f}: {exc}", node=node) from None
        images[i] = arr[None] if gray else arr.transpose(2, 0, 1)
    labels = np.array([c for _, c in files], np.int64)
    info = {"classes": len(classes), "class_names": classes, "file": str(root),
            "description": f"{len(files)} images from {root.name}/ in {len(classes)} classes"}
    return {"images": images, "labels": labels}, info


BUILDERS = {"table_file": table_file, "image_folder": image_folder}
