"""Compiler: diagnostics name the node, layers expand with namespaced weights, shapes flow."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.base.errors import GraphError
from engine.core.compile import compile_document, compile_graph
from tests.helpers import doc_of, e, n, spiral


def _errors(doc):
    return [d for d in compile_graph(doc).diagnostics if d.severity == "error"]


def _mlp_nodes():
    return [
        n("x", "input", shape=["B", 4]),
        n("y", "input", shape=["B"], dtype="int", high=3),
        n("fc", "Linear", in_features=4, out_features=3),
        n("loss", "cross_entropy"),
    ]


def _mlp_edges():
    return [e("x:out", "fc:x"), e("fc:y", "loss:logits"), e("y:out", "loss:labels")]


def test_valid_mlp_compiles_with_shapes_and_counts():
    program = compile_document(doc_of(_mlp_nodes(), _mlp_edges()))
    assert program.ok
    assert set(program.parameters) == {"fc.weight", "fc.bias"}
    assert program.parameters["fc.weight"].shape == (3, 4)
    assert program.nodes["fc"].param_count == 15
    assert program.nodes["fc"].outputs["y"].shape == ("B", 3)
    assert program.edge_types[("fc", "y", "loss", "logits")].shape == ("B", 3)
    assert program.nodes["fc"].flops == 2 * 4 * 3 + 3
    order = [eq.path for eq in program.equations]
    assert order.index("fc.matmul") < order.index("fc.add") < order.index("loss")
    assert "fc.weight" in program.pretty()


def test_cycle_is_reported_with_every_node_on_it():
    nodes = [n("x", "input", shape=["B", 3]), n("a", "add"), n("b", "relu")]
    edges = [e("x:out", "a:a"), e("b:out", "a:b"), e("a:out", "b:x")]
    errors = _errors(doc_of(nodes, edges))
    cyc = [d for d in errors if "cycle" in d.message]
    assert {d.node for d in cyc} == {"a", "b"}
    assert "a → b → a" in cyc[0].message or "b → a → b" in cyc[0].message


def test_dangling_edge_names_the_missing_node():
    edges = _mlp_edges() + [e("ghost:out", "loss:labels")]
    errors = _errors(doc_of(_mlp_nodes(), edges))
    assert any("no node 'ghost'" in d.message and d.node == "loss" for d in errors)


def test_missing_input_names_node_and_port():
    edges = [e("x:out", "fc:x"), e("fc:y", "loss:logits")]
    errors = _errors(doc_of(_mlp_nodes(), edges))
    assert [(d.node, d.port) for d in errors] == [("loss", "labels")]
    assert "not connected" in errors[0].message


def test_shape_mismatch_names_node_port_and_both_shapes():
    nodes = _mlp_nodes()
    nodes[2]["params"]["in_features"] = 5
    errors = _errors(doc_of(nodes, _mlp_edges()))
    assert len(errors) == 1
    d = errors[0]
    assert d.node == "fc" and "fc.matmul" in d.message
    assert "B×4" in d.message and "5×3" in d.message


def test_unknown_op_is_reported_not_dropped():
    nodes = _mlp_nodes() + [n("mystery", "quantum_layer")]
    errors = _errors(doc_of(nodes, _mlp_edges()))
    assert [(d.node, d.message) for d in errors] == [("mystery", "unknown node type "
                                                                  "'quantum_layer'")]


def test_dtype_mismatch_is_reported():
    nodes = _mlp_nodes()
    edges = [e("x:out", "fc:x"), e("fc:y", "loss:logits"), e("x:out", "loss:labels")]
    errors = _errors(doc_of(nodes, edges))
    assert errors and errors[0].node == "loss" and errors[0].port == "labels"


def test_bad_param_type_names_the_param():
    nodes = _mlp_nodes()
    nodes[2]["params"]["out_features"] = "three"
    errors = _errors(doc_of(nodes, _mlp_edges()))
    assert any(d.node == "fc" and "out_features" in d.message for d in errors)


def test_unknown_port_is_reported():
    edges = _mlp_edges() + [e("x:nope", "loss:labels")]
    errors = _errors(doc_of(_mlp_nodes(), edges))
    assert any(d.node == "x" and d.port == "nope" for d in errors)


def test_input_connected_twice():
    edges = _mlp_edges() + [e("x:out", "fc:x")]
    errors = _errors(doc_of(_mlp_nodes(), edges))
    assert any(d.node == "fc" and "twice" in d.message for d in errors)


def test_compile_document_raises_with_all_diagnostics():
    nodes = _mlp_nodes() + [n("mystery", "quantum_layer")]
    with pytest.raises(GraphError) as info:
        compile_document(doc_of(nodes, [e("x:out", "fc:x")]))
    assert {d.node for d in info.value.diagnostics} >= {"mystery", "loss"}


def test_user_layer_nested_inside_another_gets_dotted_names():
    inner = {
        "doc": "Two linears.",
        "params": [{"name": "width", "kind": "int", "default": 8}],
        "inputs": [{"name": "x"}],
        "outputs": [{"name": "y", "node": "second", "port": "y"}],
        "nodes": [
            n("first", "Linear", in_features=4, out_features="$width"),
            n("act", "tanh"),
            n("second", "Linear", in_features="$width", out_features="$width//2"),
        ],
        "edges": [e("$in:x", "first:x"), e("first:y", "act:x"), e("act:out", "second:x")],
    }
    outer = {
        "doc": "Wraps the pair.",
        "params": [],
        "inputs": [{"name": "x"}],
        "outputs": [{"name": "y", "node": "pair", "port": "y"}],
        "nodes": [n("pair", "two_linear", width=6)],
        "edges": [e("$in:x", "pair:x")],
    }
    nodes = [n("x", "input", shape=["B", 4]), n("block1", "wrapper"), n("out", "sum")]
    doc = doc_of(nodes, [e("x:out", "block1:x"), e("block1:y", "out:x")],
                 layers={"two_linear": inner, "wrapper": outer})
    program = compile_document(doc)
    assert program.parameters["block1.pair.first.weight"].shape == (6, 4)
    assert program.parameters["block1.pair.second.weight"].shape == (3, 6)
    assert program.nodes["block1"].outputs["y"].shape == ("B", 3)
    assert program.nodes["block1"].param_count == 6 * 4 + 6 + 3 * 6 + 3


def test_self_containing_layer_is_refused():
    loop = {"doc": "Contains itself.", "inputs": [{"name": "x"}],
            "outputs": [{"name": "y", "node": "me", "port": "y"}],
            "nodes": [n("me", "loop")], "edges": [e("$in:x", "me:x")]}
    doc = doc_of([n("x", "input", shape=[2]), n("l", "loop")], [e("x:out", "l:x")],
                 layers={"loop": loop})
    errors = _errors(doc)
    assert errors and all(d.node == "l" for d in errors)
    assert any("nested deeper" in d.message for d in errors)


def test_unconnected_layer_input_is_reported_on_the_layer_node():
    doc = doc_of([n("fc", "Linear", in_features=2, out_features=2), n("s", "sum")],
                 [e("fc:y", "s:x")])
    errors = _errors(doc)
    assert any(d.node == "fc" and d.port == "x" for d in errors)


def test_spiral_preset_compiles_in_both_dtypes():  # also exercises layers from "layers"
    for dtype in ("float32", "float64"):
        program = compile_document(spiral(), dtype)
        assert program.dtype == dtype
        assert program.total_params == 2 * 64 + 64 + 64 * 3 + 3


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 12).flatmap(lambda n: st.tuples(
    st.just(n), st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)),
                         max_size=3 * n))))
def test_topological_order_equals_networkx_lexicographic_order(graph):
    """The compiler's heap-ordered Kahn sort gives networkx's order, and None on a cycle."""
    import networkx as nx

    from engine.core.compile import _kahn

    n, pairs = graph
    nodes = [f"n{i}" for i in reversed(range(n))]  # insertion order ≠ key order
    edges = [(f"n{a}", f"n{b}") for a, b in pairs]
    g = nx.DiGraph()
    g.add_nodes_from(nodes)
    g.add_edges_from(edges)
    ours = _kahn(nodes, edges, key=lambda p: int(p[1:]) % 3)
    if nx.is_directed_acyclic_graph(g):
        assert ours == list(nx.lexicographical_topological_sort(g, key=lambda p: int(p[1:]) % 3))
    else:
        assert ours is None
