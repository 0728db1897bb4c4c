"""PyTorch references for convolution and pooling."""

from __future__ import annotations

import torch.nn.functional as F


def _conv2d(p, inputs, weights, state, ours):
    bias = inputs[2] if len(inputs) > 2 else None
    return F.conv2d(inputs[0], inputs[1], bias, stride=p["stride"], padding=p["padding"],
                    dilation=p["dilation"], groups=p["groups"])


def _max_pool2d(p, inputs, weights, state, ours):
    return F.max_pool2d(inputs[0], p["kernel"], p["stride"] or p["kernel"], p["padding"])


def _avg_pool2d(p, inputs, weights, state, ours):
    return F.avg_pool2d(inputs[0], p["kernel"], p["stride"] or p["kernel"], p["padding"],
                        count_include_pad=p["count_include_pad"])


REFS = {"conv2d": _conv2d, "max_pool2d": _max_pool2d, "avg_pool2d": _avg_pool2d}
