"""Every op in the registry is gradient-checked in float64 on its example cases.

The cases are generated from the registry, so an op added without examples, or with a wrong
backward, fails here.
"""

from __future__ import annotations

import pytest

from engine.core import registry
from engine.core.gradcheck import TOLERANCE, check_op

NO_GRADIENT = {"input", "constant"}  # nothing to differentiate: no inputs, no weights
# Data sources and the optimizer node have no tensor inputs to differentiate.
PRIMITIVES = [s for s in registry.all_ops()
              if s.layer is None and s.forward is not None
              and s.category not in ("data", "optimizer")]
CASES = [
    pytest.param(spec, i, id=f"{spec.name}-{i}")
    for spec in PRIMITIVES
    for i in range(len(spec.examples))
]


def test_every_differentiable_op_has_examples():
    missing = [s.name for s in PRIMITIVES if not s.examples and s.name not in NO_GRADIENT]
    assert missing == []


def test_every_example_has_float_inputs_or_weights():
    for spec in PRIMITIVES:
        for ex in spec.examples:
            has_float = any(case[1] == "float" for case in ex.inputs) or spec.weights
            assert has_float, f"{spec.name}: example {ex.note!r} has nothing to differentiate"


@pytest.mark.parametrize("spec,index", CASES)
def test_gradient_matches_central_differences(spec, index):
    report = check_op(spec, spec.examples[index], seed=index)
    assert report.checked > 0
    assert report.max_rel_err <= TOLERANCE, (
        f"{report.id}: max relative error {report.max_rel_err:.3e} in {report.worst}"
    )


def test_gradcheck_catches_a_wrong_backward(monkeypatch):
    """The harness itself must fail on a broken backward (e.g. a missing factor 2)."""
    spec = registry.get("mul")
    broken = registry.OpSpec(**{**spec.__dict__, "name": "mul_broken"})
    original = spec.backward

    def wrong(ctx, params, g):
        ga, gb = original(ctx, params, g)
        return 2 * ga, gb

    broken.backward = wrong
    report = check_op(broken, spec.examples[0])
    assert report.max_rel_err > TOLERANCE
