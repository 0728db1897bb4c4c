"""Documents that used to make validation explode (issue 15.3), by size parameter."""

from __future__ import annotations

from engine.core import document


def _doc(nodes: list, edges: list, layers: dict | None = None) -> dict:
    doc = document.new_document("blowup")
    doc.update(nodes=nodes, edges=edges, layers=layers or {})
    return doc


def _edge(src: str, sp: str, dst: str, dp: str) -> dict:
    return {"src": {"node": src, "port": sp}, "dst": {"node": dst, "port": dp}}


def _input() -> dict:
    return {"id": "x", "type": "input", "params": {"shape": ["B", 4]}}


def _relu_layer(name: str, inner_type: str, uses: int) -> dict:
    nodes = [{"id": f"n{i}", "type": inner_type} for i in range(uses)]
    edges = [_edge("$in", "x", "n0", "x")]
    port = "out" if inner_type == "relu" else "y"
    edges += [_edge(f"n{i - 1}", port, f"n{i}", "x") for i in range(1, uses)]
    return {"inputs": [{"name": "x", "dtype": "float"}],
            "outputs": [{"name": "y", "node": f"n{uses - 1}", "port": port}],
            "params": [], "nodes": nodes, "edges": edges}


def nested(depth: int, uses: int) -> dict:
    """Layers nested *depth* deep, each using the one below *uses* times (uses**depth ops)."""
    layers = {"L0": _relu_layer("L0", "relu", uses)}
    for k in range(1, depth):
        layers[f"L{k}"] = _relu_layer(f"L{k}", f"L{k - 1}", uses)
    top = f"L{depth - 1}"
    return _doc([_input(), {"id": "net", "type": top}], [_edge("x", "out", "net", "x")], layers)


def self_twice() -> dict:
    """A layer that contains itself twice."""
    layers = {"Loop": _relu_layer("Loop", "Loop", 2)}
    return _doc([_input(), {"id": "net", "type": "Loop"}], [_edge("x", "out", "net", "x")],
                layers)


def chain(n: int) -> dict:
    """input → relu → relu → … (*n* relus)."""
    nodes = [_input()] + [{"id": f"r{i}", "type": "relu"} for i in range(n)]
    edges = [_edge("x", "out", "r0", "x")]
    edges += [_edge(f"r{i - 1}", "out", f"r{i}", "x") for i in range(1, n)]
    return _doc(nodes, edges)


def concats(n: int, fan_in: int = 40) -> dict:
    """*n* concat nodes of *fan_in* inputs each, all from one input."""
    nodes = [_input()] + [{"id": f"c{i}", "type": "concat", "params": {"axis": -1}}
                          for i in range(n)]
    edges = [_edge("x", "out", f"c{i}", f"inputs[{j}]") for i in range(n) for j in range(fan_in)]
    return _doc(nodes, edges)


def muted_fan_out(n: int) -> dict:
    """A layer whose muted node (bypass x → out) feeds *n* relus: 2n edges in one layer."""
    nodes = [{"id": "m", "type": "relu", "when": False, "bypass": {"out": "x"}}]
    nodes += [{"id": f"r{i}", "type": "relu"} for i in range(n)]
    edges = [_edge("$in", "x", "m", "x")] + [_edge("m", "out", f"r{i}", "x") for i in range(n)]
    edges += [_edge(f"r{i}", "out", f"r{i}", "x") for i in range(0)]
    layer = {"inputs": [{"name": "x", "dtype": "float"}],
             "outputs": [{"name": "y", "node": f"r{n - 1}", "port": "out"}],
             "params": [], "nodes": nodes, "edges": edges}
    return _doc([_input(), {"id": "net", "type": "Fan"}], [_edge("x", "out", "net", "x")],
                {"Fan": layer})
