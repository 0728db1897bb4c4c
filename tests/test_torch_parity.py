"""Every registry op's forward and backward equal PyTorch's (float64 ≤ 1e-10 relative,
float32 within ``torch.testing.assert_close`` defaults), generated from the registry.

An op missing from ``tests/torch_refs`` fails ``test_every_op_has_a_torch_reference``.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine.core import registry
from engine.core.op_cases import build_case
from engine.core.run import Executor

torch = pytest.importorskip("torch")
from tests.torch_refs import TORCH_REFS  # noqa: E402

pytestmark = pytest.mark.torch
# Tensor ops only: data sources and the optimizer node compute nothing in the graph (the
# optimizer's arithmetic is compared with torch.optim in tests/test_optim.py).
PRIMITIVES = [s for s in registry.all_ops()
              if s.layer is None and s.forward is not None
              and s.category not in ("data", "optimizer")]
CASES = [pytest.param(s, i, id=f"{s.name}-{i}") for s in PRIMITIVES for i in range(len(s.examples))]


def test_every_op_has_a_torch_reference():
    missing = sorted(s.name for s in PRIMITIVES if s.name not in TORCH_REFS)
    assert missing == []


def _compare(ours, theirs, dtype):
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else np.asarray(theirs)
    ours = np.asarray(ours)
    assert ours.shape == theirs.shape, f"shape {ours.shape} vs torch {theirs.shape}"
    if dtype == np.float64:
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)
    else:
        torch.testing.assert_close(torch.from_numpy(np.array(ours)),
                                   torch.from_numpy(np.array(theirs)).to(
                                       torch.from_numpy(ours).dtype))


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("spec,index", CASES)
def test_forward_and_backward_match_torch(spec, index, dtype):
    if spec.name not in TORCH_REFS:
        pytest.fail(f"no torch reference for {spec.name}")
    example = spec.examples[index]
    case = build_case(spec, example, dtype, index)
    params, eq, values, weights, state = (case.params, case.equation, case.values,
                                          case.weights, case.state)
    rng = np.random.default_rng(1000 + index)
    ex = Executor(None, "float64" if dtype == np.float64 else "float32")
    torch_state = {s.name: torch.from_numpy(state[f"s:{s.name}"].copy()) for s in spec.state}
    tape = ex.forward({}, weights, state, training=True, seed=index, equations=[eq],
                      values=values)
    outs = [tape.values[o] for o in eq.outputs]

    t_inputs = []
    for name, t in zip(eq.inputs, eq.input_types):
        arr = torch.from_numpy(values[name].copy())
        if t.dtype == "float":
            arr.requires_grad_(True)
        t_inputs.append(arr)
    t_weights = {w.name: torch.from_numpy(weights[f"w:{w.name}"].copy()).requires_grad_(True)
                 for w in spec.weights}
    t_ours = [torch.from_numpy(np.ascontiguousarray(o)) for o in outs]
    t_outs = TORCH_REFS[spec.name](params, t_inputs, t_weights, torch_state, t_ours)
    if not isinstance(t_outs, tuple):
        t_outs = (t_outs,)
    assert len(t_outs) == len(outs)
    for o, t in zip(outs, t_outs):
        _compare(o, t, dtype)
    for s in spec.state:  # state updated in place (e.g. running statistics)
        _compare(state[f"s:{s.name}"], torch_state[s.name], dtype)

    projections = [rng.standard_normal(np.shape(o)).astype(dtype) for o in outs]
    wgrads, vgrads = ex.backward(tape, dict(zip(eq.outputs, projections)))
    differentiable = [t for t in t_outs if t.requires_grad]
    if not differentiable:
        return
    total = sum((t * torch.from_numpy(p)).sum() for t, p in zip(t_outs, projections)
                if t.requires_grad)
    total.backward()
    for name, t_in in zip(eq.inputs, t_inputs):
        if t_in.requires_grad:
            ours_g = vgrads.get(name, np.zeros_like(values[name]))
            theirs_g = t_in.grad if t_in.grad is not None else torch.zeros_like(t_in)
            _compare(np.broadcast_to(ours_g, values[name].shape), theirs_g, dtype)
    for w in spec.weights:
        theirs_g = t_weights[w.name].grad
        ours_g = wgrads.get(f"w:{w.name}", np.zeros_like(weights[f"w:{w.name}"]))
        _compare(ours_g, theirs_g if theirs_g is not None else torch.zeros(ours_g.shape), dtype)
