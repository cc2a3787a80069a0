"""Lightning callbacks of every run: hyperparameters, the architecture report and the reading
guide, and the learning-rate curve. The views of what the network sees are in `src.lit.views`,
the progress bar in `src.speed.progress`."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from tensorboard.plugins.hparams import summary_v2 as hp
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.writer import FileWriter

from src.core.architecture import (
    analyze,
    markdown_table,
    totals,
    unit_windows,
)
from src.core.lessons import receptive_field_figure
from src.data.datamodule import denormalize
from src.lit.console import COMPACT_COLUMNS, console, print_architecture
from src.lit.module import class_name, logs_step_values

log = logging.getLogger(__name__)

READING_GUIDE = """\
### How to read these images

In the order of the Images tab. Colour scales: blue negative, white zero, red positive, one
scale for a whole card (its colour bar), so sign and strength compare within a card.

- **activations/NN_layer**: a layer's output for the probe digits (the first validation image
  of each digit, always the same ones): a row per digit, its image first, then the channels
  that respond most on average over the probe digits, most active first (the title says how many
  of the layer's channels are shown). Convs are drawn before their batch norm and ReLU (signed),
  pools after them (zero or positive). `activations/00_inputs` shows the probe digits.
- **architecture/receptive_field**: for each conv and pool layer, the window of the input that
  the centre unit (red) and the top-left corner unit (blue) of its output see, on a probe digit;
  the grey margin is padding. The last layer's window must cover the digit.
- **cam/probe**: for a net with global average pooling, where each probe digit's predicted class
  is found: red places add to that digit's score, blue ones take from it (the score is the
  map's mean); the digit's strokes are outlined in black.
- **erf/maps**: the effective receptive field of each layer's centre unit: how strongly each
  input pixel moves it (the gradient's size, averaged over the probe digits; dark is strong),
  with the theoretical window as a dashed box. The title gives the side of the centred square
  that holds 90% of it beside the window's side: the unit leans on its window's middle.
- **kernels/NN_convK**: a conv layer's weights. The first conv shows every kernel (how it weighs
  the 3x3 pixels it sees). Deeper convs show the kernels of the first 8 filters (rows) on their
  first 8 input channels (columns). A 1x1 conv (the logits layer) is one heatmap, a row per
  output (digit), a column per input.
- **kernels/NN_convK_norms**: the norm of every filter's kernel on every input channel of a
  deeper conv: a dark cell is an input that filter uses, a pale one an input it ignores.
- **shift/accuracy**: test accuracy with the test images (every 5th by default) moved by 0 to 4
  pixels, each of the four ways: how much of a small shift the net shrugs off.
- **test/confusion_matrix**: true digit by row, predicted by column; the diagonal counts the
  right answers (green), the other cells the mistakes, shaded on their own scale (red); empty
  cells are 0.
- **test/mistakes**: misclassified test digits, the ones the net was most sure of first, each
  with its prediction, the net's probability for it, and the true digit.
- **top_patches/NN_convK**: what excites a conv's channels (a row each): the validation digits
  in which that channel's strongest unit responds most, each cropped to that unit's receptive
  field (blank past the digit's edge). Early convs answer to stroke pieces, late ones to whole
  digits.
- When: kernels, receptive field and effective receptive fields at fit start; activations,
  effective receptive fields and class activation maps after every validation epoch; top
  patches every few epochs and after the last; test and shift after testing. The step slider
  above a card moves through them.
"""


def tensorboard_logger(trainer: L.Trainer) -> TensorBoardLogger | None:
    return next((lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)


class TensorBoardCallback(L.Callback):
    """A callback that draws into the run's TensorBoard. Without a TensorBoard logger it does
    nothing (`warn_unlogged_views` says so); with several processes only rank 0 draws (hooks
    are rank_zero_only)."""

    def writer(self, trainer: L.Trainer) -> SummaryWriter | None:
        logger = tensorboard_logger(trainer)
        return logger.experiment if logger is not None else None


def warn_unlogged_views(trainer: L.Trainer) -> None:
    """One line naming the TensorBoard views that have nowhere to draw (logger=none, or
    debug=fdr: fast_dev_run swaps the loggers for a dummy), where each warned in two lines."""
    views = [type(cb).__name__ for cb in trainer.callbacks if isinstance(cb, TensorBoardCallback)]
    if views and tensorboard_logger(trainer) is None and trainer.is_global_zero:
        log.warning("no TensorBoard logger, so these draw nothing: %s", ", ".join(views))


def run_hparams(
    data: Mapping[str, Any], model: Mapping[str, Any], seed: int, net: torch.nn.Module
) -> dict[str, bool | int | float | str]:
    """The hyperparameters a reader compares runs by, most telling first: the net's shape and
    the recipe, then its size and receptive field, then the layout's details. Booleans stay
    booleans; unset values, paths and worker counts are left out."""
    size = totals(analyze(net.specs, net.input_size))
    optimizer, scheduler = model["optimizer"], model["scheduler"]
    chosen = {
        "channels": str(list(model["channels"])),
        "lr": optimizer.get("lr"),
        "batch_size": data.get("batch_size"),
        "seed": seed,
        "rotation": data.get("rotation"),
        "translate": data.get("translate"),
        "augment_epochs": data.get("augment_epochs"),
        "label_smoothing": model.get("label_smoothing"),
        "params": size["params"],
        "receptive_field": size["receptive_field"],
        "optimizer": class_name(optimizer),
        "weight_decay": optimizer.get("weight_decay"),
        "scheduler": class_name(scheduler),
        "batch_norm": model.get("batch_norm"),
        "dropout": model.get("dropout"),
        "head": model.get("head"),
        "pool_every": model.get("pool_every"),
        "valid_tail": model.get("valid_tail"),
        "kernels": str(list(model["kernels"])) if model.get("kernels") else None,
        "final_relu": model.get("final_relu"),
        "val_size": data.get("val_size"),
        "loader": data.get("loader"),
    }
    return {key: value for key, value in chosen.items() if value is not None}


class HParamsSummary(TensorBoardCallback):
    """Registers the run in TensorBoard's HParams tab: the hyperparameters of `run_hparams`, in
    that order, and the metrics to compare runs by. TensorBoard sorts hyperparameters by name
    and ticks the first five, so each name carries its rank ("01 channels") and shows its plain
    display name ("channels"). The metrics' values come from the scalars the run logs."""

    def __init__(self, metrics: Sequence[str]) -> None:
        self.metrics = list(metrics)

    @rank_zero_only
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        writer = self.writer(trainer)
        if writer is None:
            return
        datamodule = trainer.datamodule
        data = dict(datamodule.hparams) if datamodule is not None else {}
        seed = torch.initial_seed()  # what seed_everything set
        values = run_hparams(data, dict(pl_module.hparams), seed, pl_module.net)
        names = {key: f"{rank:02d} {key}" for rank, key in enumerate(values, start=1)}
        experiment = hp.hparams_config_pb(
            [hp.HParam(names[key], display_name=key) for key in values],
            [hp.Metric(metric) for metric in self.metrics],
        )
        session = hp.hparams_pb({names[key]: value for key, value in values.items()})
        write_summaries(writer, [experiment, session])


def write_summaries(writer: SummaryWriter, summaries: Sequence[Any]) -> None:
    """Writes summary protos (TensorBoard's HParams plugin data) to the writer's event file, as
    SummaryWriter.add_hparams does, through its public `file_writer`. A writer that Lightning
    has closed (at the end of an earlier stage on the same logger) has none until its next
    add_*: the summaries then go to an event file of their own in the same folder, where
    TensorBoard reads them alike."""
    file_writer = writer.file_writer
    own = file_writer is None
    if own:
        file_writer = FileWriter(writer.get_logdir())
    for summary in summaries:
        file_writer.add_summary(summary)
    if own:
        file_writer.close()


class ArchitectureReport(TensorBoardCallback):
    """At fit start: the Net's architecture arithmetic (sizes, receptive field, params, MACs)
    printed as a compact table with its warnings, written in full to `path` and to
    TensorBoard's Text tab, beside a guide to the images the other callbacks draw; and, with
    `receptive_field_figure`, the receptive field of each layer's centre and corner units drawn
    on a probe digit (`architecture/receptive_field`; a matplotlib figure)."""

    def __init__(self, path: str, receptive_field_figure: bool = True) -> None:
        self.path = Path(path)
        self.receptive_field_figure = receptive_field_figure

    @rank_zero_only
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        net = pl_module.net
        stats = analyze(net.specs, net.input_size)
        title = f"architecture: model.channels={list(pl_module.hparams['channels'])}"
        print_architecture(stats, title, console(), COMPACT_COLUMNS)
        table = markdown_table(stats)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(table)
        writer = self.writer(trainer)
        if writer is not None:
            writer.add_text("architecture", table, global_step=trainer.global_step)
            writer.add_text("how_to_read_the_images", READING_GUIDE, global_step=0)
            if self.receptive_field_figure and trainer.datamodule is not None:
                images, _ = trainer.datamodule.probe_batch()
                digit = denormalize(images[-1])[0]  # the probe's last digit (a 9)
                figure = receptive_field_figure(digit, unit_windows(stats))
                writer.add_figure("architecture/receptive_field", figure, trainer.global_step)


class LearningRateCurve(L.Callback):
    """The learning rate at every training step (`train/lr`), so a schedule's shape shows:
    Lightning's LearningRateMonitor writes only every `log_every_n_steps` steps. The values are
    kept, and written together on those steps and at each epoch's end (or stop): a write every
    step would be costly, because each one wakes the event writer's thread, which then waits
    for the training loop's GIL."""

    def __init__(self) -> None:
        self.pending: list[tuple[int, float]] = []

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step  # a chain of calls: read once
        self.pending.append((step, trainer.optimizers[0].param_groups[0]["lr"]))
        if logs_step_values(trainer, step + 1):
            self.write(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.write(trainer)

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self.write(trainer)  # a stopped run's curve goes up to its last step

    def write(self, trainer: L.Trainer) -> None:
        for step, lr in self.pending:
            for logger in trainer.loggers:
                logger.log_metrics({"train/lr": lr}, step=step)
        self.pending.clear()
