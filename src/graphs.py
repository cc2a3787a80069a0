"""The net's training step as CUDA graphs: each step replays two recorded graphs (the forward and
the backward) instead of launching the hundred-odd kernels of an eager step one by one from
Python, and nothing is compiled (`model.compile_mode=cuda-graphs`)."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)


class TrainingGraphs:
    """Calls `net` through CUDA graphs of its training-mode forward and backward, recorded
    (`torch.cuda.make_graphed_callables`) at the first call with a CUDA batch; later batches of
    that shape replay them. Anything else runs the net as it is: eval mode, a CPU tensor,
    another shape (a short last batch). A net whose parameters or buffers have moved since the
    recording (e.g. to the CPU and back) is recorded again: the graphs hold their addresses.

    Recording runs the net's forward and backward a few times on a side stream: batch norm's
    running statistics are put back as they were before them, so that a recorded run starts
    from the same state as an eager one. The parameters' gradients are not touched."""

    def __init__(self, net: nn.Module) -> None:
        self.net = net
        self.graphed: Callable[[Tensor], Tensor] | None = None
        self.shape: torch.Size | None = None
        self.addresses: tuple[int, ...] = ()  # the net's tensors' where they were recorded
        self.said_eager = False

    def __call__(self, x: Tensor) -> Tensor:
        if not (self.net.training and x.is_cuda and torch.is_grad_enabled()):
            if self.net.training and not x.is_cuda and not self.said_eager:
                self.said_eager = True
                log.info("model.compile_mode=cuda-graphs: on %s the net runs eagerly", x.device)
            return self.net(x)
        if self.graphed is None or self.addresses != self.tensors_at():
            self.record(x)
        if x.shape != self.shape:
            return self.net(x)
        return self.graphed(x)

    def tensors_at(self) -> tuple[int, ...]:
        return tuple(
            t.data_ptr() for t in itertools.chain(self.net.parameters(), self.net.buffers())
        )

    def record(self, x: Tensor) -> None:
        started = time.perf_counter()
        buffers = [buffer.clone() for buffer in self.net.buffers()]
        # The recording's autograd graph lives on with the graphs, and with it the parameters'
        # gradient accumulators, made on the recording's side stream: gradients then reach
        # them across streams, which torch warns of on the console. That costs an event wait
        # on the GPU, no host sync (its time is in the figures measured).
        torch.autograd.graph.set_warn_on_accumulate_grad_stream_mismatch(False)
        # a copy: the example becomes the graphs' input buffer, into which each later batch is
        # copied; the batch itself may be a view of the dataset
        graphed = torch.cuda.make_graphed_callables(self.net, (x.detach().clone(),))
        with torch.no_grad():
            for buffer, saved in zip(self.net.buffers(), buffers, strict=True):
                buffer.copy_(saved)
        # make_graphed_callables puts the graphed forward on the net itself; it is kept here
        # instead, so that the net's own forward (eval mode, hooks, other shapes) stays as it is
        self.graphed = graphed.forward
        del self.net.forward
        self.shape = x.shape
        self.addresses = self.tensors_at()
        log.info(
            "training step recorded as CUDA graphs for batches of %s (%.2f s)",
            tuple(x.shape), time.perf_counter() - started,
        )  # fmt: skip
