"""One implementation per concept: ops that mean the same thing share their code."""

from __future__ import annotations

import pytest

from engine.core import registry
from engine.core.registry import ShapeError, TensorType


def test_mse_loss_and_mean_squared_error_metric_share_one_implementation():
    loss, metric = registry.get("mse"), registry.get("mean_squared_error")
    assert loss.forward is metric.forward and loss.backward is metric.backward
    assert loss.infer is metric.infer is registry.get("mean_absolute_error").infer


@pytest.mark.parametrize("op, ports", [("mse", ("pred", "target")),
                                       ("mean_absolute_error", ("pred", "target")),
                                       ("binary_cross_entropy_with_logits",
                                        ("logits", "targets"))])
def test_pair_ops_refuse_a_shape_mismatch_naming_the_second_port(op, ports):
    spec = registry.get(op)
    a, b = TensorType(("B", 3), "float"), TensorType(("B", 4), "float")
    with pytest.raises(ShapeError, match="differs") as err:
        spec.infer([a, b], spec.defaults())
    assert err.value.port == ports[1]
    assert spec.infer([a, TensorType(("B", 3), "float")], spec.defaults())[0].shape == ()
