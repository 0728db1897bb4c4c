"""Bounded validation (issue 15.3): an expanded-size limit with a clear error naming the layer,
and compilation work linear in the expanded size (doubling the size about doubles the calls)."""

from __future__ import annotations

import json
import sys
import time

import pytest

from engine import api
from engine.core import document
from engine.core.compile import MAX_EXPANDED_EDGES, MAX_EXPANDED_NODES, compile_graph
from engine.graphs import builders
from tests import blowup_docs as blowups


def _checked(doc: dict) -> dict:
    return document.loads(json.dumps(doc))


def test_the_limit_is_stated_and_holds_a_96_layer_char_gpt():
    assert (MAX_EXPANDED_NODES, MAX_EXPANDED_EDGES) == (200_000, 400_000)
    program = compile_graph(_checked(builders.char_gpt(layers=96)))
    assert program.ok and len(program.equations) > 2000


def test_a_7kb_document_expanding_to_a_million_nodes_is_refused_naming_the_layer():
    doc = _checked(blowups.nested(6, 10))
    assert len(document.dumps(doc)) < 20_000
    result = api.validate(doc)
    assert not result["ok"]
    [diag] = result["diagnostics"]
    assert diag["node"] == "net" and "'L5'" in diag["message"]
    assert "200,000 primitive nodes" in diag["message"] and "400,000 edges" in diag["message"]


def test_a_layer_containing_itself_twice_is_reported_once():
    result = api.validate(_checked(blowups.self_twice()))
    assert not result["ok"]
    assert len(result["diagnostics"]) == 1
    assert "contains itself" in result["diagnostics"][0]["message"]


def test_wide_documents_just_under_the_limit_still_compile():
    doc = _checked(blowups.nested(3, 10))  # 1,000 primitive ops in 111 layer instances
    program = compile_graph(doc)
    assert program.ok and len(program.equations) == 1 + 1000


@pytest.mark.parametrize("make, small", [
    (blowups.chain, 1500),
    (blowups.concats, 60),
    (blowups.muted_fan_out, 1500),
    (lambda n: blowups.nested(2, round(n ** 0.5)), 3600),
])
def test_compilation_work_is_linear_in_the_expanded_size(make, small):
    # Work counted as Python and builtin function calls (deterministic: a CPU-time ratio, even
    # best of 5, read 3.18 for the nested case on a busy CI host against 2.1-2.3 quiet). A
    # linear compile calls about twice as often for twice the size; a quadratic loop in Python
    # would call 4x as often.
    docs = [_checked(make(small)), _checked(make(2 * small))]
    assert all(compile_graph(d).ok for d in docs)
    ratio = _calls(docs[1]) / _calls(docs[0])
    assert ratio <= 2.5, ratio


def _calls(doc: dict) -> int:
    """Function calls (Python and builtin) of one compilation of *doc*, after a first one has
    warmed the caches (imports, registry)."""
    compile_graph(doc)
    count = 0

    def note(frame, event, arg) -> None:
        nonlocal count
        if event in ("call", "c_call"):
            count += 1

    sys.setprofile(note)
    try:
        compile_graph(doc)
    finally:
        sys.setprofile(None)
    return count


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("make, bound", [
    (lambda: blowups.nested(6, 10), 2.0), (blowups.self_twice, 2.0),
    (lambda: blowups.chain(19_999), 10.0), (lambda: blowups.concats(2000), 10.0),
    (lambda: blowups.muted_fan_out(15_000), 10.0)])
def test_the_issue_blowups_validate_or_are_refused_within_seconds(make, bound):
    """The issue's documents (a 2-core shared machine measured 6 s for 80,000 concat edges)."""
    doc = _checked(make())
    api.validate(doc)  # imports and registry loading are not the document's cost
    start = time.perf_counter()
    api.validate(doc)
    assert time.perf_counter() - start <= bound


def test_thirty_distinct_layer_types_nested_are_refused_with_one_diagnostic():
    doc = _checked(blowups.nested(30, 2))  # 2**30 ops, past the depth limit too
    result = api.validate(doc)
    assert not result["ok"] and len(result["diagnostics"]) == 1
    assert result["diagnostics"][0]["node"] == "net"


def test_documents_up_to_32_mib_load_and_larger_ones_are_refused():
    doc = blowups.chain(10)
    text = json.dumps({**doc, "extra": {"pad": ""}})
    pad = document.MAX_BYTES - len(text.encode())
    big = json.dumps({**doc, "extra": {"pad": "x" * pad}})
    assert len(big.encode()) <= document.MAX_BYTES
    assert api.validate(document.loads(big))["ok"]
    too_big = json.dumps({**doc, "extra": {"pad": "x" * (pad + 1)}})
    with pytest.raises(document.DocumentError, match="larger than 32 MiB"):
        document.loads(too_big.encode())
