"""CUDA's start-up, beside a training run's set-up. A new process's first CUDA training step pays
about a second once: the CUDA context (0.34 s on an H100), then loading cuDNN and running its
first convolution with batch norm, forward and backward (0.62-0.68 s). A thread pays it while
the main one builds the data, the net and the trainer, and the fit waits for it as it starts.
On an H200 the speedrun's first job fitted in 1.04-1.14 s with it, against 1.35-2.48 s
without (docs/gpu-runs/2026-11-27d)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F

from src.checks import the_one_device, trains_on_cuda

log = logging.getLogger(__name__)
# One per process: a sweep's later jobs find CUDA started, and none of them may record CUDA
# graphs while an earlier job's warm-up still runs
_started: list[threading.Thread] = []


class WaitForCuda(L.Callback):
    """Waits for the warm-up as the fit starts, before anything records CUDA graphs (the
    recording's global capture mode fails on another thread's CUDA calls)."""

    def __init__(self, warm_up: threading.Thread) -> None:
        self.warm_up = warm_up

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.warm_up.join()


def warm_up_cuda(trainer: Mapping[str, Any]) -> WaitForCuda | None:
    """Starts CUDA in a thread for a trainer that trains on one CUDA device, unless the process
    has done so already; the callback that waits for it, None for other trainers. Several
    devices are left alone: each DDP process starts its own."""
    device = the_one_device(trainer) if trains_on_cuda(trainer) else None
    if device is None:
        return None
    if not _started and not torch.cuda.is_initialized():
        _started.append(threading.Thread(target=first_convolution, args=(device,), daemon=True))
        _started[0].start()
    return WaitForCuda(_started[0]) if _started else None


def first_convolution(device: int) -> None:
    """Starts CUDA on `device` and runs a convolution with batch norm, forward and backward, on
    zeros: no random numbers drawn, so seeding stays exact. A failure is left to the run, which
    meets it again and reports it."""
    try:
        with torch.cuda.device(device):
            images = torch.zeros(256, 1, 28, 28, device="cuda", requires_grad=True)
            first = torch.zeros(16, 1, 3, 3, device="cuda", requires_grad=True)
            second = torch.zeros(16, 16, 3, 3, device="cuda", requires_grad=True)
            features = F.batch_norm(F.conv2d(images, first, padding=1), None, None, training=True)
            F.conv2d(F.relu(features), second, padding=1).sum().backward()
            torch.cuda.synchronize()
    except Exception as err:  # noqa: BLE001 - the run itself reports what went wrong
        log.debug("CUDA warm-up failed: %s", err)
