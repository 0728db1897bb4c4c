"""The headless CLI: output contracts, exit codes, docs/ops.md kept current."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine import cli
from engine.core import document, registry
from tests.helpers import e, n

ROOT = Path(__file__).resolve().parent.parent


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_validate_preset_by_name(capsys):
    code, out, err = run(capsys, "validate", "spiral_mlp")
    assert code == 0
    assert "fc1" in out and "B×64" in out and "387 parameters" in out


def test_validate_json_contract(capsys):
    code, out, _ = run(capsys, "validate", "spiral_mlp", "--json")
    data = json.loads(out)
    assert code == 0 and data["ok"] is True
    assert set(data) >= {"ok", "nodes", "total_params", "total_flops", "diagnostics"}
    fc1 = next(x for x in data["nodes"] if x["id"] == "fc1")
    assert fc1 == {"id": "fc1", "type": "Linear", "outputs": {"y": ["B", 64]},
                   "param_count": 192, "flops": 320}
    assert data["total_params"] == 387


def _broken_doc(tmp_path):
    doc = document.load(ROOT / "presets" / "spiral_mlp.json")
    fc2 = next(x for x in doc["nodes"] if x["id"] == "fc2")
    fc2["params"]["in_features"] = 32  # fc2 expects 32, gets 64
    doc["nodes"].append(n("orphan", "relu"))
    path = tmp_path / "broken.json"
    document.save(doc, path)
    return path


def test_validate_invalid_graph_exits_2_and_still_prints_json(capsys, tmp_path):
    code, out, _ = run(capsys, "validate", str(_broken_doc(tmp_path)), "--json")
    data = json.loads(out)
    assert code == 2 and data["ok"] is False
    nodes = {d["node"] for d in data["diagnostics"]}
    assert nodes == {"fc2", "orphan"}
    assert all(set(d) == {"node", "port", "severity", "message"} for d in data["diagnostics"])


def test_validate_human_output_lists_diagnostics_on_stderr(capsys, tmp_path):
    code, out, err = run(capsys, "validate", str(_broken_doc(tmp_path)))
    assert code == 2
    assert "error: fc2" in err and "error: orphan:x" in err


@pytest.mark.parametrize("argv,needle", [
    (["validate", "no_such_preset"], "neither a file nor a preset"),
    (["validate", "missing/file.json"], "no such file"),
    (["gradcheck", "spiral_mlp", "--node", "nope"], "node 'nope'"),
])
def test_bad_input_exits_2_with_a_message(capsys, argv, needle):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert needle in err
    assert "Traceback" not in err


def test_malformed_file_exits_2(capsys, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"format": "wiregrad-graph", "format_version": 2, "nodes": [{"id": 3}]}')
    code, _, err = run(capsys, "validate", str(path))
    assert code == 2 and "nodes[0].id" in err


def test_gradcheck_passes_on_preset(capsys):
    code, out, _ = run(capsys, "gradcheck", "spiral_mlp", "--json")
    data = json.loads(out)
    assert code == 0 and data["ok"]
    assert {x["id"] for x in data["nodes"]} == {"fc1", "act1", "fc2", "loss", "accuracy"}
    assert all(set(x) >= {"id", "max_rel_err", "ok"} for x in data["nodes"])


def test_gradcheck_single_node(capsys):
    code, out, _ = run(capsys, "gradcheck", "spiral_mlp", "--node", "fc2", "--json")
    assert code == 0 and [x["id"] for x in json.loads(out)["nodes"]] == ["fc2"]


def test_gradcheck_exits_1_when_a_backward_is_wrong(capsys, monkeypatch):
    spec = registry.get("relu")
    original = spec.backward
    monkeypatch.setattr(spec, "backward", lambda ctx, p, g: (3 * original(ctx, p, g)[0],))
    code, out, _ = run(capsys, "gradcheck", "spiral_mlp", "--json")
    data = json.loads(out)
    assert code == 1 and not data["ok"]
    assert [x["id"] for x in data["nodes"] if not x["ok"]] == ["act1"]


def test_ops_markdown_matches_committed_docs(capsys):
    code, out, _ = run(capsys, "ops", "--markdown")
    assert code == 0
    committed = (ROOT / "docs" / "ops.md").read_text(encoding="utf-8")
    assert out == committed, "docs/ops.md is stale: run `wiregrad ops --markdown > docs/ops.md`"


def test_ops_table_lists_every_registered_op(capsys):
    code, out, _ = run(capsys, "ops")
    assert code == 0
    for spec in registry.all_ops():
        assert spec.name in out


def test_catalog_is_plain_json():
    data = registry.catalog()
    assert json.loads(json.dumps(data)) == data
    names = {op["name"] for op in data["ops"]}
    assert {"input", "matmul", "cross_entropy", "Linear"} <= names


def test_usage_error_exits_2(capsys):
    code, _, err = run(capsys, "validate")
    assert code == 2 and "usage" in err


def test_module_runs_without_qt():
    code = ("import sys, engine.cli as c; rc = c.main(['validate', 'spiral_mlp']); "
            "assert not any(m.startswith(('PySide6', 'pyqtgraph', 'nodegraph')) "
            "for m in sys.modules), 'Qt imported'; sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_edge_shape_labels_in_validate_api():
    from engine import api
    from tests.helpers import doc_of

    doc = doc_of([n("x", "input", shape=["B", 64, 128]), n("r", "relu")], [e("x:out", "r:x")])
    report = api.validate(doc)
    assert report["edges"][0]["label"] == "B×64×128"


@pytest.mark.parametrize("argv,needle", [
    (["sample", "char_gpt", "-n", "-5"], "argument -n: must be an integer ≥ 1, got '-5'"),
    (["train", "spiral_mlp", "--threads", "0"], "argument --threads: must be an integer ≥ 1"),
    (["train", "spiral_mlp", "--steps", "-3"], "argument --steps: must be an integer ≥ 1"),
    (["train", "spiral_mlp", "--patience", "-1"], "argument --patience: must be an integer ≥ 0"),
    (["evaluate", "spiral_mlp", "--batches", "x"], "argument --batches: must be an integer"),
    (["sample", "char_gpt", "--temperature", "-1"], "must be a number ≥ 0"),
    (["sample", "char_gpt", "--temperature", "nan"], "must be a number ≥ 0"),
    (["sample", "char_gpt", "--top-p", "1.5"], "must be a number in (0, 1]"),
    (["sample", "char_gpt", "--top-k", "-2"], "must be an integer ≥ 0"),
    (["bench", "--threads", "0"], "argument --threads: must be an integer ≥ 1"),
    (["gradcheck", "spiral_mlp", "--seed", "-1"], "argument --seed: must be an integer from 0"),
    (["sample", "char_gpt", "--seed", "-1"], "argument --seed: must be an integer from 0"),
    (["train", "spiral_mlp", "--seed", str(2**32)], "argument --seed: must be an integer from 0"),
])
def test_bad_option_values_exit_2_with_a_message(capsys, argv, needle):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert needle in err


def _closed_pipe_run(*argv: str) -> subprocess.CompletedProcess:
    """Run the CLI with stdout on a pipe nobody reads (as `| head` leaves it)."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run([sys.executable, "-m", "engine.cli", *argv], cwd=ROOT,
                              stdout=write, stderr=subprocess.PIPE, text=True, timeout=240)
    finally:
        os.close(write)


@pytest.mark.parametrize("argv", [
    ["ops", "--json"],
    ["sample", "char_gpt", "-n", "40", "--prompt", "ROMEO:"],
    ["validate", "spiral_mlp"],
    ["--help"],
    ["train", "--help"],
])
def test_a_closed_stdout_ends_quietly(argv):
    proc = _closed_pipe_run(*argv)
    assert proc.returncode in (0, 141), proc.stderr  # 141 = 128 + SIGPIPE, as the shell shows
    assert proc.stderr == ""
