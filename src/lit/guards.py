"""What ends a run early and says so: a loss that diverged, or a signal (SIGTERM from a scheduler,
SIGINT from Ctrl+C). Both callbacks are always on (src/train.py adds them), and both stop between
batches, never in the middle of writing a checkpoint, by raising `Diverged` or `Interrupted`
(src/core/errors.py), which the entry point turns into result.json's status and the exit code."""

from __future__ import annotations

import math
import os
import signal
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch import Tensor

from src.core.errors import Diverged, Interrupted
from src.lit.module import class_name, logs_step_values

CHANCE_LOSS = math.log(10)  # the cross-entropy of guessing uniformly among 10 digits
# An epoch whose mean training loss is this many times worse than guessing has diverged, even
# when every loss was finite (SGD at a far too large lr can settle at a huge, finite loss).
DIVERGED_FACTOR = 10
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopOnDivergence(L.Callback):
    """Stops at a non-finite training loss, and after an epoch whose mean loss is above
    DIVERGED_FACTOR x chance, naming the step and the likely cure. The losses stay on the device
    and are read together on the steps that log (`logs_step_values`: every
    `trainer.log_every_n_steps` steps, when Lightning reads the logged loss anyway) and at an
    epoch's last batch, because a read every step would be a host-device sync every step on a
    GPU: a loss that became NaN stops the run within that many steps, before any checkpoint of
    its epoch, and the message names the step where it did."""

    def __init__(self) -> None:
        # (global_step, loss) of each batch since the last read; global_step moves once every
        # accumulate_grad_batches batches
        self.unread: list[tuple[int, Tensor]] = []
        self.read_at = -1  # the global_step of the last read
        self.loss_sum, self.steps = 0.0, 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.unread.clear()
        self.loss_sum, self.steps = 0.0, 0

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
        batch_idx: int,
    ) -> None:  # fmt: skip
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        # global_step already counts this batch's optimizer step, if it made one
        step = trainer.global_step
        self.unread.append((step, loss.detach()))
        if trainer.is_last_batch or (logs_step_values(trainer, step) and step != self.read_at):
            self.read(trainer, pl_module)

    def read(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Reads the unread losses (one device sync) and stops at a non-finite one."""
        if not self.unread:
            return
        steps = [step for step, _ in self.unread]
        losses = torch.stack([loss for _, loss in self.unread]).tolist()
        self.unread.clear()
        self.read_at = trainer.global_step
        bad = next((i for i, loss in enumerate(losses) if not math.isfinite(loss)), None)
        if everywhere(trainer, bad is not None):
            where = (
                f"became {losses[bad]} at step {steps[bad]}" if bad is not None
                else f"became non-finite in another process by step {trainer.global_step}"
            )  # fmt: skip
            raise Diverged(
                f"the training loss {where} (epoch {trainer.current_epoch}); {cure(pl_module)}",
                trainer.current_epoch,
            )
        self.loss_sum, self.steps = self.loss_sum + sum(losses), self.steps + len(losses)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.read(trainer, pl_module)
        mean = self.loss_sum / max(self.steps, 1)
        if everywhere(trainer, mean > DIVERGED_FACTOR * CHANCE_LOSS):
            raise Diverged(
                f"epoch {trainer.current_epoch}'s mean training loss is {mean:.4g}, more than "
                f"{DIVERGED_FACTOR}x guessing ({CHANCE_LOSS:.3f}); {cure(pl_module)}",
                trainer.current_epoch,
            )


def highest_everywhere(trainer: L.Trainer, value: int) -> int:
    """`value`, or with several processes the highest any of them holds (one all-reduce): what
    stops one stops all at the same batch, or the others would wait for it in their next
    all-reduce."""
    if trainer.world_size > 1:
        mine = torch.tensor(value, device=trainer.strategy.root_device)
        return int(trainer.strategy.reduce(mine, reduce_op="max"))
    return value


def everywhere(trainer: L.Trainer, stop: bool) -> bool:
    """Whether any process must stop."""
    return bool(highest_everywhere(trainer, int(stop)))


def cure(pl_module: L.LightningModule) -> str:
    optimizer = pl_module.hparams.get("optimizer", {})
    return (
        f"lower model.optimizer.lr (now {optimizer.get('lr')}, {class_name(optimizer)}), or turn "
        "on model.batch_norm"
    )


class StopOnSignal(L.Callback):
    """SIGTERM and SIGINT stop the run after the batch in progress; a second SIGINT stops it at
    once. last.ckpt keeps the last finished epoch (checkpoints are written whole, see
    `AtomicCheckpointIO`), which `resume=<run dir>` goes on from. Its handlers are installed for
    the `with` block around fit and test, and again in each process that runs a stage (see
    `take_signals`). With several processes, all stop at the same batch and name the same
    signal: after every batch they agree on it (`highest_everywhere`)."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> StopOnSignal:
        self.received = None
        self.previous = {number: signal.signal(number, self.handle) for number in STOP_SIGNALS}
        return self

    def __exit__(self, *exc_info: object) -> None:
        for number, handler in self.previous.items():
            signal.signal(number, handler)

    def handle(self, number: int, frame: FrameType | None) -> None:
        if self.received == signal.SIGINT and number == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl+C: the user does not want to wait
        self.received = number

    def interrupted(
        self, trainer: L.Trainer, testing: bool = False, number: int | None = None
    ) -> Interrupted:
        number = number or self.received or signal.SIGTERM  # Lightning's SIGTERM check was first
        finished = trainer.current_epoch  # epochs counted from 0: the one in progress
        where = "testing" if testing else f"epoch {finished} (step {trainer.global_step})"
        return Interrupted(number, where, finished)

    def take_signals(self) -> None:
        """Installs this handler in the process that runs a stage, whatever is there.
        Lightning installs its own SIGTERM handler as fit or test begins, chaining ours, and
        with several processes it broadcasts from inside it, wherever the signal lands: a
        SIGTERM to every rank (a SLURM time limit, `kill -- -<group>`) hung a 2-process run,
        one rank in that broadcast, the other in the next collective. Called at `setup`,
        before Lightning's handler goes in (Lightning puts back what it found there when the
        stage ends), and as the stage starts, to take SIGTERM back from it. Between the two,
        Lightning's handler stands for the few calls of the stage's own setup."""
        for number in STOP_SIGNALS:
            signal.signal(number, self.handle)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.take_signals()

    def on_sanity_check_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.take_signals()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.take_signals()

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.take_signals()

    def check(self, trainer: L.Trainer, testing: bool = False) -> None:
        # the same signal in every process (the highest number any got), so all say alike why
        number = highest_everywhere(trainer, self.received or 0)
        if number:
            raise self.interrupted(trainer, testing or bool(trainer.testing), number)

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        self.check(trainer)

    def on_validation_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        self.check(trainer)

    def on_test_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        self.check(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, *args: Any) -> None:
        self.check(trainer)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint beside its place and renames it there, so that a run killed while
    saving (SIGKILL, a full disk) leaves the previous last.ckpt whole."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None
    ) -> None:
        path = Path(path)
        partial = path.with_name(f".{path.name}.{os.getpid()}.part")
        try:
            super().save_checkpoint(checkpoint, partial, storage_options)
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
