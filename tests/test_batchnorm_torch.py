"""batch_norm's running statistics and evaluation output follow torch.nn.BatchNorm2d."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tests.test_kernels_nn import run_op  # noqa: E402

pytestmark = pytest.mark.torch


def test_running_statistics_after_five_steps_equal_torch():
    rng = np.random.default_rng(7)
    c = 3
    bn = torch.nn.BatchNorm2d(c, eps=1e-5, momentum=0.1, dtype=torch.float64)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.5, 0.5, -1.0], dtype=torch.float64))
        bn.bias.copy_(torch.tensor([0.0, 0.2, 1.0], dtype=torch.float64))
    w, b = bn.weight.detach().numpy().copy(), bn.bias.detach().numpy().copy()
    state = {"s:running_mean": np.zeros(c), "s:running_var": np.ones(c)}
    bn.train()
    for step in range(5):
        x = rng.normal(step, 1.0 + step, size=(4, c, 5, 6))
        ours = run_op("batch_norm", [x, w, b], state=state)
        theirs = bn(torch.from_numpy(x)).detach().numpy()
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(state["s:running_mean"], bn.running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(state["s:running_var"], bn.running_var.numpy(), rtol=1e-12)
    assert not np.allclose(state["s:running_var"], 1.0)

    bn.eval()
    x = rng.normal(size=(2, c, 3, 3))
    ours = run_op("batch_norm", [x, w, b], state=state, training=False)
    np.testing.assert_allclose(ours, bn(torch.from_numpy(x)).detach().numpy(), rtol=1e-10,
                               atol=1e-12)
