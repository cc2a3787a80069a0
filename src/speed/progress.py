"""The progress bar of every run: Lightning's RichProgressBar without a host read a step, and
without waiting for its redraw thread when a stage ends.

Lightning's and Rich's private names this relies on (tests/test_speed_private.py checks each
against the installed libraries): RichProgressBar's `_stop_progress`, which Lightning calls at
the end of every stage, and Rich Live's `_refresh_thread`, which Lightning's progress joins
when it stops."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar

from src.lit.module import logs_step_values


class ProgressBar(RichProgressBar):
    """Lightning's RichProgressBar, without reading values from the device after every batch
    (on a GPU, a host-device sync a step): the shown metrics are gathered again only on the
    steps that log (every `trainer.log_every_n_steps`), at an epoch's start and end and outside
    training. It also shows `step_metrics`, values logged per step without prog_bar=True
    (Lightning would read those from the device after every batch), read when they are logged.
    """

    def __init__(
        self,
        refresh_rate: int = 1,
        leave: bool = False,
        step_metrics: Sequence[str] = ("train/loss",),
    ) -> None:
        super().__init__(refresh_rate=refresh_rate, leave=leave)
        self.step_metrics = tuple(step_metrics)
        self.step_values: dict[str, float] = {}  # as last logged
        self.shown: dict[str, Any] = {}
        self.shown_in_training = False  # gathered on a training step: still true until it logs

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        # the last epoch's train/acc is logged after this bar's epoch-end refresh
        self.shown_in_training = False

    def _stop_progress(self) -> None:
        # Lightning's redraw thread sleeps 1/refresh_rate seconds between redraws, and stopping
        # the bar waited for it to wake: up to a second at the end of every stage (fit, test).
        # Told to stop, it ends on its own at its next wake, drawing nothing more.
        live = self.progress.live if self.progress is not None else None
        thread = getattr(live, "_refresh_thread", None)
        if thread is not None:
            thread.stop()
            live._refresh_thread = None
        super()._stop_progress()

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        training = trainer.training  # read once: each read is a chain of calls
        if training and logs_step_values(trainer, trainer.global_step):
            logged = trainer.logged_metrics
            self.step_values = {n: float(logged[n]) for n in self.step_metrics if n in logged}
        elif training and self.shown_in_training:
            return self.shown
        # epoch values are numbers already (Lightning reads them once, at the epoch's end)
        self.shown = self.step_values | super().get_metrics(trainer, pl_module)
        self.shown_in_training = training
        return self.shown
