"""The tutorial's Net, generalised: 3x3 convs, ReLU, 2x2 max-pools, no fully connected layer."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from torch import nn

from src.architecture import Layer, plan_layers


def build_layer(spec: Layer) -> nn.Module:
    if spec.kind == "conv":
        return nn.Conv2d(
            spec.in_channels,
            spec.out_channels,
            spec.kernel,
            stride=spec.stride,
            padding=spec.padding,
            dilation=spec.dilation,
            bias=spec.bias,
        )
    if spec.kind == "batchnorm":
        return nn.BatchNorm2d(spec.out_channels)
    if spec.kind == "maxpool":
        return nn.MaxPool2d(spec.kernel, spec.stride)
    if spec.kind == "relu":
        return nn.ReLU()
    if spec.kind == "dropout":
        return nn.Dropout(spec.rate)
    if spec.kind == "gap":
        return nn.AdaptiveAvgPool2d(1)
    raise ValueError(f"unknown layer kind {spec.kind!r}")


class Net(nn.Sequential):
    """Log-probabilities over 10 digits for (N, 1, 28, 28) images.

    The layers come from `plan_layers` (see `src.architecture` for the layout rule), and the
    same specs stay on the net as `net.specs`, so the architecture table can never drift from
    the model. Submodules carry the tutorial's names: conv1, relu1, pool1, ...

    `final_relu=True` reproduces the tutorial's ReLU on the logits. It hurts: a ReLU clamps every
    negative logit to 0, so the net cannot push wrong classes below zero and those units get
    no gradient; training is slower and can stall. It is off by default and kept for comparison.
    """

    def __init__(self, channels: Sequence[int], input_size: int = 28, **layout: Any) -> None:
        # layout: pool_every, valid_tail, kernels, head, batch_norm, dropout, final_relu,
        # in_channels, num_classes
        specs = plan_layers(channels, input_size=input_size, **layout)
        modules = OrderedDict((spec.name, build_layer(spec)) for spec in specs)
        modules["flatten"] = nn.Flatten()
        modules["log_softmax"] = nn.LogSoftmax(dim=1)
        super().__init__(modules)
        self.specs = specs
        self.input_size = input_size
