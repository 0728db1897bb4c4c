"""Small builders for documents in tests, and stand-ins and references for calling ops
directly."""

from __future__ import annotations

import copy

import numpy as np

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


def record_native_runs(monkeypatch, modules: bool = False) -> list[str]:
    """engine.kernels.parallel.run as it is (the real parallel kernels), recording the name
    of each kernel that ran; with *modules*, ``module.kernel`` (``conv_direct.forward_parallel``).
    """
    from engine.kernels import parallel

    ran: list[str] = []
    real = parallel.run

    def run(kernel, *args, **kwargs):
        done = real(kernel, *args, **kwargs)
        if done:
            name = kernel.py_func.__name__
            module = kernel.py_func.__module__.rsplit(".", 1)[-1]
            ran.append(f"{module}.{name}" if modules else name)
        return done

    monkeypatch.setattr(parallel, "run", run)
    return ran


class OpCtx:
    """Stands in for the executor's per-op context when a test calls an op's forward and
    backward itself: what the forward saves, and which inputs need a gradient."""

    def __init__(self, needs: tuple = (True, True, True)) -> None:
        self.needs_input_grad = needs

    def save(self, *arrays) -> None:
        self.saved = arrays


def run_matmul(a, b, params: dict, g):
    """The registry's matmul on *a*, *b*: (out, grad a, grad b) for the output gradient *g*."""
    from engine.core.registry import get

    op = get("matmul")
    ctx = OpCtx()
    out = op.forward(ctx, params, a, b)
    ga, gb = op.backward(ctx, params, g)
    return out, ga, gb


def torch_conv(torch, x, w, b, g, s: int, p: int, d: int, groups: int = 1):
    """PyTorch's conv2d in float64 on the same values: (y, gx, gw, gb or None)."""
    f = torch.nn.functional
    xt = torch.tensor(np.ascontiguousarray(x, np.float64), requires_grad=True)
    wt = torch.tensor(w.astype(np.float64), requires_grad=True)
    bt = None if b is None else torch.tensor(b.astype(np.float64), requires_grad=True)
    y = f.conv2d(xt, wt, bt, stride=s, padding=p, dilation=d, groups=groups)
    y.backward(torch.tensor(np.asarray(g, np.float64)))
    return (y.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(),
            None if bt is None else bt.grad.numpy())


def numpy_conv(x, w, b, g, s: int, p: int, d: int):
    """conv2d (groups 1) in float64 numpy, tap by tap, on the same values as
    :func:`torch_conv`: (y, gx, gw, gb or None) for the output gradient *g*."""
    x64, w64 = np.asarray(x, np.float64), np.asarray(w, np.float64)
    n, c, h, wd = x64.shape
    cout, _, kh, kw = w64.shape
    ho, wo = (h + 2 * p - d * (kh - 1) - 1) // s + 1, (wd + 2 * p - d * (kw - 1) - 1) // s + 1
    xp = np.zeros((n, c, h + 2 * p, wd + 2 * p))
    xp[:, :, p:p + h, p:p + wd] = x64
    g64 = np.asarray(g, np.float64).reshape(n, cout, ho, wo)
    y = np.zeros((n, cout, ho, wo))
    gxp, gw = np.zeros_like(xp), np.zeros_like(w64)
    for i in range(kh):
        for j in range(kw):
            rows = slice(i * d, i * d + s * (ho - 1) + 1, s)
            cols = slice(j * d, j * d + s * (wo - 1) + 1, s)
            y += np.einsum("nchw,oc->nohw", xp[:, :, rows, cols], w64[:, :, i, j])
            gw[:, :, i, j] = np.einsum("nchw,nohw->oc", xp[:, :, rows, cols], g64)
            gxp[:, :, rows, cols] += np.einsum("nohw,oc->nchw", g64, w64[:, :, i, j])
    if b is not None:
        y += np.asarray(b, np.float64)[None, :, None, None]
    gb = None if b is None else g64.sum(axis=(0, 2, 3))
    return y, gxp[:, :, p:p + h, p:p + wd], gw, gb


def assert_close(got, want, dtype, what: str, tol32: float = 2e-5) -> None:
    """*got* (of *dtype*) against the float64 *want*, relative to want's largest magnitude."""
    assert got is not None, what
    assert got.shape == want.shape, (what, got.shape, want.shape)
    assert got.dtype == np.dtype(dtype), (what, got.dtype)
    tol = tol32 if np.dtype(dtype) == np.float32 else 1e-12
    scale = max(1.0, float(np.max(np.abs(want))) if want.size else 1.0)
    err = float(np.max(np.abs(got.astype(np.float64) - want))) if want.size else 0.0
    assert err <= tol * scale, f"{what}: max error {err:.3g} (scale {scale:.3g})"


def assert_conv_matches_torch(torch, x, w, b, g, s: int, p: int, d: int, needs: tuple,
                              y, grads) -> None:
    """conv2d's output *y* and *grads* (input — None where not *needs*[0] —, weight, bias)
    against PyTorch's on the same values and output gradient *g*."""
    assert_conv_matches(torch_conv(torch, x, w, b, g, s, p, d), x, b, needs, y, grads)


def assert_conv_matches(reference: tuple, x, b, needs: tuple, y, grads) -> None:
    """conv2d's output *y* and *grads* (as :func:`assert_conv_matches_torch`) against a
    float64 *reference* ``(y, gx, gw, gb)`` (:func:`torch_conv`, :func:`numpy_conv`)."""
    ry, rgx, rgw, rgb = reference
    assert_close(y, ry, x.dtype, "forward")
    if needs[0]:
        assert_close(grads[0], rgx, x.dtype, "input gradient")
    else:
        assert grads[0] is None
    assert_close(grads[1], rgw, x.dtype, "weight gradient")
    if b is None:
        assert len(grads) < 3 or grads[2] is None
    else:
        assert_close(grads[2], rgb, x.dtype, "bias gradient")
