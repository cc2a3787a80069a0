"""A run on one CUDA device starts CUDA in a thread beside its set-up, and its fit waits for that
thread before its first step (src/cuda_warmup.py). CI has no CUDA: the thread's work is stood in
for here; the GPU machine runs the CUDA test at the end."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

import lightning as L
import pytest
import torch

import src.cuda_warmup
from src.cuda_warmup import WaitForCuda, first_convolution, warm_up_cuda
from src.train import train

from .conftest import ROOT, compose_train


@pytest.fixture
def warm_ups(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, float]]:
    """A new process (no warm-up started yet, CUDA not started) whose warm-up records the device
    it was given and when it ended, after 0.3 s."""
    ran: list[tuple[int, float]] = []

    def slow_warm_up(device: int) -> None:
        time.sleep(0.3)
        ran.append((device, time.perf_counter()))

    monkeypatch.setattr(src.cuda_warmup, "_started", [])
    monkeypatch.setattr(src.cuda_warmup, "first_convolution", slow_warm_up)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    return ran


@pytest.mark.parametrize(
    "trainer",
    [
        {"accelerator": "cpu"},
        {"accelerator": "auto"},  # no CUDA found
        {"accelerator": "gpu"},  # Apple's mps, where there is no CUDA
    ],
)
def test_no_warm_up_where_torch_finds_no_cuda(
    monkeypatch: pytest.MonkeyPatch, warm_ups: list, trainer: dict
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert warm_up_cuda(trainer) is None
    assert src.cuda_warmup._started == []


@pytest.mark.parametrize(
    "trainer",
    [
        {"accelerator": "cuda", "devices": 2},
        {"accelerator": "gpu", "devices": -1, "strategy": "ddp"},
        {"accelerator": "cuda", "devices": 1, "num_nodes": 2},
        {"accelerator": "auto", "devices": "auto"},  # Lightning picks: maybe all of them
    ],
)
def test_no_warm_up_for_several_devices(
    monkeypatch: pytest.MonkeyPatch, warm_ups: list, trainer: dict
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert warm_up_cuda(trainer) is None
    assert src.cuda_warmup._started == []


@pytest.mark.parametrize(
    ("trainer", "device"),
    [
        ({"accelerator": "cuda", "devices": 1}, 0),
        ({"accelerator": "gpu", "devices": [1]}, 1),
        ({"accelerator": "auto", "devices": 1, "strategy": "single_device"}, 0),
    ],
)
def test_one_warm_up_a_process_on_the_trainers_device(
    monkeypatch: pytest.MonkeyPatch, warm_ups: list, trainer: dict, device: int
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    first = warm_up_cuda(trainer)
    second = warm_up_cuda(trainer)  # a sweep's next job, while the first job's may still run
    assert isinstance(first, WaitForCuda) and isinstance(second, WaitForCuda)
    assert first.warm_up is second.warm_up
    assert first.warm_up.daemon  # never keeps a failed run's process alive
    first.on_fit_start(None, None)  # type: ignore[arg-type]
    assert not first.warm_up.is_alive()
    assert [d for d, _ in warm_ups] == [device]


def test_no_warm_up_where_cuda_has_started(monkeypatch: pytest.MonkeyPatch, warm_ups: list) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    assert warm_up_cuda({"accelerator": "cuda", "devices": 1}) is None


class FirstStep(L.Callback):
    def __init__(self) -> None:
        self.at: float | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
        if self.at is None:
            self.at = time.perf_counter()


def test_the_fit_waits_for_the_warm_up_before_its_first_step(
    monkeypatch: pytest.MonkeyPatch, warm_ups: list, tiny_data_dir: Path, tmp_path: Path
) -> None:
    """On the CPU, with the trainer taken for a CUDA one: the real run's own set-up (data, net,
    trainer) goes on beside the thread, and its first step comes after the thread's end."""
    monkeypatch.setattr(src.cuda_warmup, "trains_on_cuda", lambda trainer: True)
    started = time.perf_counter()
    first_step = FirstStep()
    overrides = [f"data.data_dir={tiny_data_dir}", "data.val_size=100", "data.batch_size=32",
                 "+trainer.max_steps=2", "logger=none", "test=false"]  # fmt: skip
    train(compose_train(overrides, tmp_path), extra_callbacks=[first_step])
    [(device, warmed_at)] = warm_ups
    assert device == 0
    assert started + 0.3 <= warmed_at <= first_step.at


def test_a_failed_warm_up_is_left_to_the_run(caplog: pytest.LogCaptureFixture) -> None:
    """Without CUDA (as in CI), the warm-up's own failure: logged for debugging, not raised."""
    if torch.cuda.is_available():
        pytest.skip("CUDA is here: the warm-up works (see the CUDA test)")
    caplog.set_level(logging.DEBUG, logger="src.cuda_warmup")
    thread = threading.Thread(target=first_convolution, args=(0,))
    thread.start()
    thread.join()
    assert "CUDA warm-up failed" in caplog.text


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_warm_up_starts_cuda_and_draws_no_random_numbers() -> None:
    """In a new process: CUDA starts in the thread, and the seed set before it still gives the
    first random numbers after it."""
    program = """
import threading, torch
from src.cuda_warmup import first_convolution
torch.manual_seed(0)  # before CUDA starts: applied as it starts
warm_up = threading.Thread(target=first_convolution, args=(0,))
warm_up.start()
warm_up.join()
assert torch.cuda.is_initialized()
after_warm_up = torch.rand(4, device="cuda")
torch.manual_seed(0)
assert torch.equal(after_warm_up, torch.rand(4, device="cuda"))
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.stdout.strip() == "ok", done.stderr
