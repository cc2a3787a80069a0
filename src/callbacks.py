"""Lightning callbacks that write what a run did to TensorBoard."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn
from torch.utils.tensorboard.summary import hparams

from src.architecture import analyze, check_architecture, markdown_table

log = logging.getLogger(__name__)


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'optimizer': {'lr': 0.1}} -> {'optimizer/lr': 0.1}; what TensorBoard cannot show -> str."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}/"))
        else:
            plain = isinstance(value, (bool, int, float, str))
            flat[f"{prefix}{key}"] = value if plain else str(value)
    return flat


def tensorboard_logger(trainer: L.Trainer) -> TensorBoardLogger | None:
    return next((lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)


class HParamsSummary(L.Callback):
    """Registers the run in TensorBoard's HParams tab: its hyperparameters (data, model, seed)
    and the metrics to compare runs by. TensorBoard takes those metrics' values from the
    scalars the run logs, so nothing is written as a placeholder."""

    def __init__(self, metrics: Sequence[str]) -> None:
        self.metrics = list(metrics)

    @rank_zero_only
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        logger = tensorboard_logger(trainer)
        if logger is None:
            rank_zero_warn("HParamsSummary: no TensorBoard logger, nothing to write")
            return
        datamodule = trainer.datamodule
        params = {
            "data": dict(datamodule.hparams) if datamodule is not None else {},
            "model": dict(pl_module.hparams),
            "seed": torch.initial_seed(),  # what seed_everything set
        }
        summaries = hparams(flatten(params), dict.fromkeys(self.metrics, 0.0))
        writer = logger.experiment._get_file_writer()
        for summary in summaries:
            writer.add_summary(summary)


class ArchitectureReport(L.Callback):
    """At fit start: the Net's architecture table (sizes, receptive field, params, MACs) written
    to `path` and to TensorBoard's Text tab, and its warnings logged."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    @rank_zero_only
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        net = pl_module.net
        stats = analyze(net.specs, net.input_size)
        for warning in check_architecture(stats):
            log.warning("architecture: %s", warning)
        table = markdown_table(stats)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(table)
        logger = tensorboard_logger(trainer)
        if logger is not None:
            logger.experiment.add_text("architecture", table, global_step=trainer.global_step)
