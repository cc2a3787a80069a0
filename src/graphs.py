"""The net's training step as CUDA graphs: each step replays two recorded graphs (the forward and
the backward) instead of launching the hundred-odd kernels of an eager step one by one from
Python, and nothing is compiled (`model.compile_mode=cuda-graphs`)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn


class TrainingGraphs:
    """Calls `net` through CUDA graphs of its training-mode forward and backward, recorded
    (`torch.cuda.make_graphed_callables`) at the first call with a CUDA batch; later batches of
    that shape replay them. Anything else runs the net as it is: eval mode, a CPU tensor,
    another shape (a short last batch), and a net whose parameters have moved since the
    recording (e.g. to the CPU and back), which is then recorded again.

    Recording runs the net's forward and backward a few times on a side stream: batch norm's
    running statistics are put back as they were before them, so that a recorded run starts
    from the same state as an eager one. The parameters' gradients are not touched."""

    def __init__(self, net: nn.Module) -> None:
        self.net = net
        self.graphed: Callable[[Tensor], Tensor] | None = None
        self.shape: torch.Size | None = None
        self.first_parameter = -1  # its data_ptr when recorded: moved parameters re-record

    def __call__(self, x: Tensor) -> Tensor:
        if not (self.net.training and x.is_cuda and torch.is_grad_enabled()):
            return self.net(x)
        if self.graphed is None or self.first_parameter != self.parameters_at():
            self.record(x)
        if x.shape != self.shape:
            return self.net(x)
        return self.graphed(x)

    def parameters_at(self) -> int:
        return next(self.net.parameters()).data_ptr()

    def record(self, x: Tensor) -> None:
        buffers = [buffer.clone() for buffer in self.net.buffers()]
        graphed = torch.cuda.make_graphed_callables(self.net, (x.detach(),))
        with torch.no_grad():
            for buffer, saved in zip(self.net.buffers(), buffers, strict=True):
                buffer.copy_(saved)
        # make_graphed_callables puts the graphed forward on the net itself; it is kept here
        # instead, so that the net's own forward (eval mode, hooks, other shapes) stays as it is
        self.graphed = graphed.forward
        del self.net.forward
        self.shape = x.shape
        self.first_parameter = self.parameters_at()
