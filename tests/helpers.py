"""Small builders for documents in tests."""

from __future__ import annotations

import copy

from engine.core import document
from engine.graphs.presets import presets_dir


def e(src: str, dst: str) -> dict:
    """``"node:port"`` → ``"node:port"`` edge."""
    (sn, sp), (dn, dp) = src.split(":"), dst.split(":")
    return {"src": {"node": sn, "port": sp}, "dst": {"node": dn, "port": dp}}


def n(node_id: str, type_name: str, **params) -> dict:
    return {"id": node_id, "type": type_name, "params": params}


def doc_of(nodes: list[dict], edges: list[dict], **extra) -> dict:
    doc = document.new_document("test")
    doc["nodes"] = copy.deepcopy(nodes)
    doc["edges"] = copy.deepcopy(edges)
    doc.update(extra)
    return document.from_dict(doc)


def spiral() -> dict:
    return document.load(presets_dir() / "spiral_mlp.json")


def input_mlp() -> dict:
    """The spiral MLP's model fed by plain ``input`` nodes (forward runs, autodiff tests)."""
    nodes = [n("points", "input", shape=["B", 2]),
             n("labels", "input", shape=["B"], dtype="int", high=3),
             n("fc1", "Linear", in_features=2, out_features=64), n("act1", "relu"),
             n("fc2", "Linear", in_features=64, out_features=3), n("loss", "cross_entropy")]
    edges = [e("points:out", "fc1:x"), e("fc1:y", "act1:x"), e("act1:out", "fc2:x"),
             e("fc2:y", "loss:logits"), e("labels:out", "loss:labels")]
    return doc_of(nodes, edges)


def record_native_runs(monkeypatch) -> list[str]:
    """engine.kernels.parallel.run as it is (the real parallel kernels), recording the name of
    each kernel that ran."""
    from engine.kernels import parallel

    ran: list[str] = []
    real = parallel.run

    def run(kernel, *args, **kwargs):
        done = real(kernel, *args, **kwargs)
        if done:
            ran.append(kernel.py_func.__name__)
        return done

    monkeypatch.setattr(parallel, "run", run)
    return ran
