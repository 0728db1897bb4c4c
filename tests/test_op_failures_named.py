"""An op whose inputs do not fit it at run time (shapes inference could not pin down: a
reshape to [-1, C] added back to its (B, T, C) input) stops with a WiregradError naming the
node, the op and the shapes, not a numpy traceback (found by the slow document fuzz)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.base.errors import WiregradError
from engine.core.compile import compile_document
from engine.core.run import Executor
from tests.helpers import doc_of, e, n


def test_a_runtime_broadcast_failure_names_the_node_and_shapes():
    doc = doc_of([n("x", "input", shape=["B", 4, 3]),
                  n("flat", "reshape", shape=[-1, 3]),
                  n("residual", "add")],
                 [e("x:out", "flat:x"), e("x:out", "residual:a"), e("flat:out", "residual:b")])
    program = compile_document(doc, "float64")
    assert program.ok  # inference cannot tell B·4 from 4 here
    with pytest.raises(WiregradError) as err:
        Executor(program, "float64").forward({"x": np.ones((2, 4, 3))}, {}, {})
    assert err.value.node == "residual"
    message = str(err.value)
    assert "'add'" in message and "[2, 4, 3]" in message and "[8, 3]" in message
    assert isinstance(err.value.__cause__, ValueError)
