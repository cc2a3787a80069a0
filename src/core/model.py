"""The tutorial's Net, generalised: 3x3 convs, ReLU, 2x2 max-pools, no fully connected layer."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from src.core.architecture import Layer, analyze, plan_layers


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

    The layers come from `plan_layers` (see `src.core.architecture` for the layout rule), and the
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

    def forward(self, x: Tensor) -> Tensor:
        # nn.Sequential's own, written here: Module.compile() can find no frame to compile when
        # forward lives in torch's own files (pytorch/pytorch#150915), and the net would then
        # run uncompiled.
        for layer in self:
            x = layer(x)
        return x

    def spatial_layers(self) -> list[str]:
        """The convs and max-pools whose output is a map (bigger than 1x1), in network order:
        the layers whose activations can be drawn."""
        return [
            row.layer.name
            for row in analyze(self.specs, self.input_size)
            if row.layer.kind in ("conv", "maxpool") and row.out_size > 1
        ]

    @torch.no_grad()
    def record(
        self, images: Tensor, outputs: Sequence[str] = (), inputs: Sequence[str] = ()
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """(log-probabilities, {layer: tensor}) of one eval-mode, no-grad forward pass, with the
        output of each layer in `outputs` and the input of each in `inputs` (keyed
        "<layer>:input"). Forward hooks live only for this pass (removed in a `finally`), and
        the net's train/eval mode is restored."""
        store: dict[str, Tensor] = {}

        def keep(key: str, index: int | None):
            def hook(module: nn.Module, args: tuple, output: Tensor) -> None:
                store[key] = (output if index is None else args[index]).detach()

            return hook

        handles = [self.get_submodule(n).register_forward_hook(keep(n, None)) for n in outputs]
        handles += [
            self.get_submodule(n).register_forward_hook(keep(f"{n}:input", 0)) for n in inputs
        ]
        was_training = self.training
        try:
            self.eval()
            # forward, not __call__: a compiled net (model.compile) would skip the hooks
            log_probs = self.forward(images)
        finally:
            for handle in handles:
                handle.remove()
            self.train(was_training)
        return log_probs, store

    def centre_gradient(self, images: Tensor, layer: str) -> Tensor:
        """The effective receptive field (Luo et al., 2016) of `layer`'s centre unit: the
        magnitude of the gradient of its output (summed over channels) with respect to the
        input, averaged over `images` (N, 1, H, W) -> (H, W). In eval mode, so that batch norm
        uses its running statistics and images do not mix; the hook lives for this pass only."""
        captured: dict[str, Tensor] = {}
        handle = self.get_submodule(layer).register_forward_hook(
            lambda module, args, output: captured.setdefault("output", output)
        )
        inputs = images.detach().clone().requires_grad_(True)
        was_training = self.training
        try:
            self.eval()
            with torch.enable_grad():
                self.forward(inputs)  # not compiled: the hook must fire
                output = captured["output"]
                centre = (output.shape[-1] - 1) // 2  # the unit unit_windows calls the centre
                output[:, :, centre, centre].sum().backward(inputs=[inputs])
        finally:
            handle.remove()
            self.train(was_training)
        return inputs.grad.abs().mean(dim=(0, 1))

    @property
    def gap_head(self) -> bool:
        """Global average pooling then a 1x1 logits conv (`head="gap"`)."""
        return any(spec.kind == "gap" for spec in self.specs)

    @torch.no_grad()
    def class_activation_maps(self, features: Tensor) -> Tensor:
        """For a `head="gap"` net: from the last feature maps (N, C, h, w), the input of the
        global average pool ("gap"), the (N, 10, h, w) maps of the 1x1 logits conv applied at
        every position; each map's mean is its logit (exactly: the conv is linear)."""
        logits_conv = self.get_submodule([s.name for s in self.specs if s.kind == "conv"][-1])
        return torch.nn.functional.conv2d(features, logits_conv.weight, logits_conv.bias)


def mass_side(gradient: Tensor, centre: tuple[int, int], fraction: float = 0.9) -> int:
    """The side of the smallest square centred on pixel `centre` (row, column) that holds
    `fraction` of the gradient's mass (odd sides are centred on it, even ones reach one pixel
    less to the left and above)."""
    total = float(gradient.sum())
    if total == 0:
        return 0
    row, column = centre
    for side in range(1, 2 * max(gradient.shape) + 1):
        top, left = row - side // 2, column - side // 2
        window = gradient[max(top, 0) : max(top + side, 0), max(left, 0) : max(left + side, 0)]
        if float(window.sum()) >= fraction * total:
            return side
    return 2 * max(gradient.shape)
