"""Loader and compiler fuzzing: any input gives a document or the project's own error type —
never KeyError / TypeError / RecursionError — in bounded time."""

from __future__ import annotations

import copy
import json
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.base.errors import WiregradError
from engine.core import document
from engine.core.compile import compile_graph
from tests.helpers import spiral

SETTINGS = dict(deadline=None, max_examples=150,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12),
    st.sampled_from(["B", "$width", "$x*2", "out", "x", "inputs[0]", "linear", "relu"]),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=5),
                               st.dictionaries(st.text(max_size=8), children, max_size=5)),
    max_leaves=40,
)


def _load_and_compile(raw) -> None:
    start = time.perf_counter()
    try:
        doc = document.loads(json.dumps(raw))
    except WiregradError:
        return
    program = compile_graph(doc)
    assert isinstance(program.diagnostics, list)
    assert time.perf_counter() - start < 10


@settings(**SETTINGS)
@given(json_values)
def test_arbitrary_json(raw):
    _load_and_compile(raw)


@settings(**SETTINGS)
@given(st.dictionaries(st.sampled_from(list(document.TOP_KEYS)), json_values, max_size=6))
def test_arbitrary_top_level_objects(raw):
    raw = {"format": "wiregrad-graph", "format_version": 2, **raw}
    raw["format"] = "wiregrad-graph"
    _load_and_compile(raw)


BASE = json.loads(document.dumps(spiral()))
NODE_IDS = [nd["id"] for nd in BASE["nodes"]] + ["ghost", "$in"]
PORTS = ["out", "x", "y", "a", "b", "logits", "labels", "inputs[0]", "zz"]


@st.composite
def mutated(draw):
    doc = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["drop", "dup", "retarget", "param", "type", "nest",
                                     "huge", "layer"]))
        edges, nodes = doc["edges"], doc["nodes"]
        if kind == "drop" and edges:
            edges.pop(draw(st.integers(0, len(edges) - 1)))
        elif kind == "dup" and edges:
            edges.append(copy.deepcopy(edges[draw(st.integers(0, len(edges) - 1))]))
        elif kind == "retarget" and edges:
            edge = edges[draw(st.integers(0, len(edges) - 1))]
            end = edge[draw(st.sampled_from(["src", "dst"]))]
            end["node"] = draw(st.sampled_from(NODE_IDS))
            end["port"] = draw(st.sampled_from(PORTS))
        elif kind == "param":
            node = nodes[draw(st.integers(0, len(nodes) - 1))]
            key = draw(st.sampled_from(["shape", "in_features", "out_features", "dtype",
                                        "high", "axis", "bogus"]))
            node.setdefault("params", {})[key] = draw(json_values)
        elif kind == "type":
            node = nodes[draw(st.integers(0, len(nodes) - 1))]
            node["type"] = draw(st.sampled_from(["Linear", "relu", "matmul", "input", "sum",
                                                 "cross_entropy", "nope", "parameter"]))
        elif kind == "nest":
            deep: object = 1
            for _ in range(draw(st.integers(1, 80))):
                deep = [deep]
            doc["extra"]["deep"] = deep
        elif kind == "huge":
            node = nodes[draw(st.integers(0, len(nodes) - 1))]
            node.setdefault("params", {})["out_features"] = draw(
                st.sampled_from([10**12, 2**31, -1, 0, 10**30]))
        elif kind == "layer" and doc["layers"]:
            ldef = doc["layers"]["Linear"]
            target = draw(st.sampled_from(["nodes", "edges", "outputs", "params"]))
            if ldef[target]:
                ldef[target][draw(st.integers(0, len(ldef[target]) - 1))] = draw(json_values)
    return doc


@settings(**SETTINGS)
@given(mutated())
def test_mutated_documents(doc):
    _load_and_compile(doc)


# ------------------------------------------------------------------ issue 15: every preset, mutated
# at the JSON level (types, values, unicode, sizes, nesting, layer self-reference), pushed
# through load → validate → save → hash; checkpoint metadata; bundle members; export strings.

import random  # noqa: E402

import pytest  # noqa: E402

from tests.fuzz_mutations import mutate, presets_raw, run_document  # noqa: E402

PRESETS_RAW = presets_raw()
TIME_BOUND = 10.0  # seconds per document, on a busy 2-core machine


def _fuzz(count: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    names = sorted(PRESETS_RAW)
    outcomes: dict[str, int] = {}
    for i in range(count):
        outcome, seconds = run_document(mutate(PRESETS_RAW[names[i % len(names)]], rng))
        assert seconds < TIME_BOUND, (i, seconds)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


def test_mutated_presets_default_slice():
    outcomes = _fuzz(250, seed=15)
    assert sum(outcomes.values()) == 250 and outcomes.get("refused", 0) < 250


@settings(**{**SETTINGS, "max_examples": 60})
@given(st.sampled_from(sorted(PRESETS_RAW)), st.integers(0, 2**32), st.integers(1, 8))
def test_mutated_presets_hypothesis(name, seed, count):
    run_document(mutate(PRESETS_RAW[name], random.Random(seed), count))


@pytest.mark.slow
@pytest.mark.timeout(3600)  # ~5 minutes on a loaded 2-core machine
def test_ten_thousand_mutated_presets():
    """Figures and command in docs/robustness.md."""
    outcomes = _fuzz(10_000, seed=2026)
    assert sum(outcomes.values()) == 10_000


@settings(**{**SETTINGS, "max_examples": 40})
@given(st.dictionaries(st.sampled_from(["graph_hash", "optimizer", "step", "seed", "schedule",
                                        "schedule_scale", "best", "clip_norm", "wall", "dtype",
                                        "batchers", "since_best", "format"]),
                       st.one_of(st.text(max_size=12), json_values.map(json.dumps)),
                       min_size=1, max_size=4))
def test_checkpoint_metadata_fuzz(checkpoint_file, changes):
    from engine.base.io import load_weights, save_weights
    from engine.train.checkpoint import restore

    path, trainer_for = checkpoint_file
    tensors, meta = load_weights(path)
    fuzzed = path.with_name("fuzzed.safetensors")
    save_weights(fuzzed, tensors, {**meta, **changes})
    trainer = trainer_for()
    try:
        restore(trainer, fuzzed)
    except WiregradError as exc:  # the only way out: a message for the user
        assert str(exc)
    else:
        assert trainer.step >= 0


@settings(**{**SETTINGS, "max_examples": 40})
@given(st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), min_size=1, max_size=6))
def test_bundle_byte_flips(bundle_file, flips):
    from engine.graphs import bundle

    data = bytearray(bundle_file.read_bytes())
    for where, byte in flips:
        data[int(where * (len(data) - 1))] = byte
    damaged = bundle_file.with_name("damaged.wgz")
    damaged.write_bytes(bytes(data))
    try:
        opened = bundle.unpack(damaged)
    except WiregradError as exc:  # the only way out: a message for the user
        assert str(exc)
    else:
        assert opened.is_file()


@settings(**{**SETTINGS, "max_examples": 40})
@given(st.text(max_size=40), st.text(max_size=40))
def test_export_strings_stay_inert(name, description):
    import ast

    from engine.core.inference import extract_model
    from engine.export.torch_project import generate_model_source

    doc = copy.deepcopy(spiral())
    doc["meta"] = {"name": name, "description": description}
    source = generate_model_source(extract_model(doc, "float32"))
    tree = ast.parse(source)  # compiles, and nothing but the expected top-level statements
    kinds = {type(node).__name__ for node in tree.body}
    assert kinds <= {"Expr", "ImportFrom", "Import", "Assign", "ClassDef", "FunctionDef"}
    assert [type(n).__name__ for n in tree.body if isinstance(n, ast.Expr)] == ["Expr"]
    assert ast.get_docstring(tree, clean=False).startswith((name or "Model") + " — exported")


@pytest.fixture(scope="module")
def checkpoint_file(tmp_path_factory):
    from engine.train.checkpoint import CheckpointManager
    from engine.train.trainer import Trainer
    from tests.training_docs import classifier

    folder = tmp_path_factory.mktemp("fuzz-ckpt")
    trainer = Trainer(classifier(steps=2, eval_every=0))
    list(trainer.run())
    CheckpointManager(folder).save(trainer)
    return folder / "last.safetensors", lambda: Trainer(classifier(steps=2, eval_every=0))


@pytest.fixture(scope="module")
def bundle_file(tmp_path_factory):
    from engine.graphs import bundle
    from engine.train.trainer import Trainer
    from tests.training_docs import classifier

    folder = tmp_path_factory.mktemp("fuzz-bundle")
    trainer = Trainer(classifier(steps=1, eval_every=0))
    return bundle.pack(trainer.doc, {**trainer.params, **trainer.state}, folder / "b.wgz")


def _train_fuzz(count: int, seed: int, names: list[str]) -> dict[str, int]:
    from tests.fuzz_mutations import train_document

    rng = random.Random(seed)
    outcomes: dict[str, int] = {}
    for i in range(count):
        outcome = train_document(mutate(PRESETS_RAW[names[i % len(names)]], rng,
                                        rng.randrange(1, 3)))
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


def test_mutated_presets_that_validate_also_train(monkeypatch):
    monkeypatch.setenv("WIREGRAD_MAX_MEMORY", "2GB")
    outcomes = _train_fuzz(60, seed=3, names=["sine_regression", "spiral_mlp"])
    assert outcomes.get("trained", 0) >= 1


@pytest.mark.slow
@pytest.mark.timeout(3600)  # ~4 minutes on a loaded 2-core machine
def test_a_thousand_mutated_presets_train_or_are_refused(monkeypatch):
    monkeypatch.setenv("WIREGRAD_MAX_MEMORY", "2GB")
    names = [n for n in sorted(PRESETS_RAW) if n != "char_gpt"]  # seconds per GPT step
    outcomes = _train_fuzz(1500, seed=4, names=names)
    assert outcomes.get("trained", 0) >= 100
