"""The net's training step as CUDA graphs: each step replays two recorded graphs (the forward and
the backward) instead of launching the many kernels of an eager step one by one from Python,
and nothing is compiled (`model.compile_mode=cuda-graphs`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)


class TrainingGraphs:
    """Calls `net` through CUDA graphs of its training-mode forward and backward, recorded
    (`torch.cuda.make_graphed_callables`) at the first call with a CUDA batch; later batches of
    that shape replay them. Anything else runs the net as it is: eval mode, a CPU tensor, a
    shorter batch (an epoch's last); a longer one is recorded anew (the first batch was short).
    A net whose parameters have moved since the recording (to the CPU and back, as Lightning
    does after fit, or `.data` swapped) is recorded again: the graphs hold their addresses.

    Recording runs the net's forward and backward a few times on a side stream: batch norm's
    running statistics are put back as they were, and the random number generators too (a
    dropout net's masks stay those of the seeded stream). The parameters' gradients are not
    touched. The backward hands each batch's gradients back in its own buffers, which the next
    replay overwrites: gradients must be set to None between steps (Lightning's and torch's
    default), never added up over batches (src.config.checks refuses accumulate_grad_batches)."""

    def __init__(self, net: nn.Module) -> None:
        self.net = net
        self.graphed: Callable[[Tensor], Tensor] | None = None
        self.shape: torch.Size | None = None
        self.parameters: list[nn.Parameter] = []  # where they were recorded: `addresses`
        self.addresses: tuple[int, ...] = ()
        self.said_eager = False

    def __call__(self, x: Tensor) -> Tensor:
        if not (self.net.training and x.is_cuda and torch.is_grad_enabled()):
            if self.net.training and not x.is_cuda and not self.said_eager:
                self.said_eager = True
                log.info("model.compile_mode=cuda-graphs: on %s the net runs eagerly", x.device)
            return self.net(x)
        if self.graphed is None or self.moved() or x.shape[0] > self.shape[0]:
            self.record(x)
        if x.shape != self.shape:
            return self.net(x)
        return self.graphed(x)

    def parameters_at(self) -> tuple[int, ...]:
        return tuple(parameter.data_ptr() for parameter in self.parameters)

    def moved(self) -> bool:
        """Whether the parameters have left the addresses the graphs hold (moving a module
        moves its buffers with them)."""
        return self.parameters_at() != self.addresses

    def record(self, x: Tensor) -> None:
        started = time.perf_counter()
        buffers = [buffer.clone() for buffer in self.net.buffers()]
        # The recording's autograd graph lives on with the graphs, and with it the parameters'
        # gradient accumulators, made on the recording's side stream: gradients then reach
        # them across streams at every step, which torch would warn of on the console (once a
        # process; the switch stays off). That costs an event wait on the GPU, no host sync.
        torch.autograd.graph.set_warn_on_accumulate_grad_stream_mismatch(False)
        with torch.random.fork_rng(devices=[x.device]):
            # a copy: the example becomes the graphs' input buffer, into which each later batch
            # is copied; the batch itself may be a view of the dataset
            graphed = torch.cuda.make_graphed_callables(self.net, (x.detach().clone(),))
        with torch.no_grad():
            for buffer, saved in zip(self.net.buffers(), buffers, strict=True):
                buffer.copy_(saved)
        # make_graphed_callables puts the graphed forward on the net itself; it is kept here
        # instead, so that the net's own forward (eval mode, hooks, other shapes) stays as it is
        self.graphed = graphed.forward
        del self.net.forward
        self.shape = x.shape
        self.parameters = list(self.net.parameters())
        self.addresses = self.parameters_at()
        log.info(
            "training step recorded as CUDA graphs for batches of %s (%.2f s)",
            tuple(x.shape), time.perf_counter() - started,
        )  # fmt: skip
