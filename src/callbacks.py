"""Lightning callbacks: what a run does, drawn into TensorBoard (hyperparameters, architecture,
kernels, activations, test views), and the process-group clean-up that ddp_spawn needs."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn
from matplotlib.figure import Figure
from torch import Tensor
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams
from torchvision.utils import make_grid

from src.architecture import analyze, check_architecture, markdown_table
from src.data import MNIST_MEAN, MNIST_STD
from src.errors import ConfigError

log = logging.getLogger(__name__)
NORMALIZATIONS = ("per_kernel", "per_layer")


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


class TensorBoardCallback(L.Callback):
    """A callback that draws into the run's TensorBoard. Without a TensorBoard logger it warns
    once and does nothing; with several processes only rank 0 draws (hooks are rank_zero_only)."""

    warned = False

    def writer(self, trainer: L.Trainer) -> SummaryWriter | None:
        logger = tensorboard_logger(trainer)
        if logger is None and not self.warned:
            rank_zero_warn(f"{type(self).__name__}: no TensorBoard logger, nothing is logged")
            self.warned = True
        return logger.experiment if logger is not None else None


class HParamsSummary(TensorBoardCallback):
    """Registers the run in TensorBoard's HParams tab: its hyperparameters (data, model, seed)
    and the metrics to compare runs by. TensorBoard takes those metrics' values from the
    scalars the run logs, so nothing is written as a placeholder."""

    def __init__(self, metrics: Sequence[str]) -> None:
        self.metrics = list(metrics)

    @rank_zero_only
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        writer = self.writer(trainer)
        if writer is None:
            return
        datamodule = trainer.datamodule
        params = {
            "data": dict(datamodule.hparams) if datamodule is not None else {},
            "model": dict(pl_module.hparams),
            "seed": torch.initial_seed(),  # what seed_everything set
        }
        # hparams() takes only the metric names from this dict; it writes no values
        summaries = hparams(flatten(params), dict.fromkeys(self.metrics, 0.0))
        for summary in summaries:
            writer._get_file_writer().add_summary(summary)


class ArchitectureReport(TensorBoardCallback):
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
        writer = self.writer(trainer)
        if writer is not None:
            writer.add_text("architecture", table, global_step=trainer.global_step)


def scale_to_unit(x: Tensor, dims: tuple[int, ...]) -> Tensor:
    """Min-max scale to [0, 1] over `dims` (a constant block becomes 0)."""
    low, high = x.amin(dim=dims, keepdim=True), x.amax(dim=dims, keepdim=True)
    return (x - low) / (high - low).clamp_min(1e-12)


GRID_LINE = torch.tensor([0.25, 0.45, 0.85])  # blue: no grey value can be mistaken for it


def tile_grid(tiles: Tensor, columns: int, scale: int = 1) -> Tensor:
    """(N, 1, h, w) grey tiles in [0, 1] -> one (3, H, W) image, tiles enlarged `scale` times
    and framed by 1-pixel blue lines: H = rows*(h*scale + 1) + 1, W = columns*(w*scale + 1) + 1."""
    tiles = tiles.repeat_interleave(scale, dim=-2).repeat_interleave(scale, dim=-1)
    grid = make_grid(tiles, nrow=columns, padding=1, pad_value=-1.0)
    lines = grid[0] < 0
    grid[:, lines] = GRID_LINE[:, None]
    return grid


def kernel_grid(weight: Tensor, max_filters: int, normalize: str, scale: int) -> Tensor:
    """A conv's kernels as one image. A first layer (one input channel) is a grid of its `out`
    kernels, 8 to a row; a deeper one has a row per output filter and a column per input
    channel, each capped at `max_filters`. normalize="per_kernel" stretches each kxk kernel to
    the full grey range (shapes show, sizes don't); "per_layer" uses one range for the whole
    layer (strong and weak kernels compare)."""
    w = weight[:max_filters, :max_filters].detach().float().cpu()
    w = scale_to_unit(w, (2, 3) if normalize == "per_kernel" else (0, 1, 2, 3))
    out_c, in_c, kh, kw = w.shape
    columns = min(8, out_c) if in_c == 1 else in_c
    return tile_grid(w.reshape(out_c * in_c, 1, kh, kw), columns, scale)


def feature_map_grid(maps: Tensor, max_maps: int) -> Tensor:
    """One image's (C, H, W) feature maps as a grid of the first `max_maps`, 8 to a row, each
    stretched to the full grey range and enlarged to at least 28 pixels."""
    maps = scale_to_unit(maps[:max_maps].float().cpu().unsqueeze(1), (2, 3))
    return tile_grid(maps, min(8, len(maps)), scale=max(1, 28 // maps.shape[-1]))


class KernelImages(TensorBoardCallback):
    """Every conv layer's kernels as an image (`kernels/<layer>`) and its weights as a histogram
    (`weights/<layer>`), at fit start and every `every_n_epochs` epochs."""

    def __init__(
        self,
        every_n_epochs: int = 1,
        max_filters: int = 32,
        normalize: str = "per_kernel",
        scale: int = 8,
    ) -> None:
        if normalize not in NORMALIZATIONS:
            raise ConfigError(
                f"callbacks.kernels.normalize={normalize!r}: must be one of "
                + ", ".join(NORMALIZATIONS)
            )
        for key, value in [("every_n_epochs", every_n_epochs), ("max_filters", max_filters)]:
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"callbacks.kernels.{key}={value!r}: must be a positive integer")
        self.every_n_epochs, self.max_filters = every_n_epochs, max_filters
        self.normalize, self.scale = normalize, scale

    @rank_zero_only
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.log_kernels(trainer, pl_module)

    @rank_zero_only
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self.log_kernels(trainer, pl_module)

    def log_kernels(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        writer = self.writer(trainer)
        if writer is None:
            return
        for spec in pl_module.net.specs:
            if spec.kind != "conv":
                continue
            weight = pl_module.net.get_submodule(spec.name).weight
            grid = kernel_grid(weight, self.max_filters, self.normalize, self.scale)
            writer.add_image(f"kernels/{spec.name}", grid, trainer.global_step)
            writer.add_histogram(f"weights/{spec.name}", weight.detach().cpu(), trainer.global_step)


class ActivationImages(TensorBoardCallback):
    """What each layer makes of a fixed probe batch (the first validation image of each digit).

    At the end of every validation epoch, forward hooks are put on the chosen layers (by name;
    default: every conv and max-pool whose output is bigger than 1x1), one forward pass runs in
    eval mode without gradients, and the hooks are removed in a `finally`, so training never
    runs with a hook on. Logs `activations/inputs` and `activations/<layer>/<digit>`.
    """

    def __init__(self, layers: Sequence[str] | None = None, max_maps: int = 16) -> None:
        self.layers = list(layers) if layers else None
        self.max_maps = max_maps
        self.probe: tuple[Tensor, Tensor] | None = None

    def hooked_layers(self, net: torch.nn.Module) -> list[str]:
        if self.layers is None:
            stats = analyze(net.specs, net.input_size)
            return [
                r.layer.name
                for r in stats
                if r.layer.kind in ("conv", "maxpool") and r.out_size > 1
            ]
        names = dict(net.named_children())
        unknown = [name for name in self.layers if name not in names]
        if unknown:
            raise ConfigError(
                f"callbacks.activations.layers: no layer {unknown[0]!r} in the net "
                f"(layers: {', '.join(names)})"
            )
        return self.layers

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.hooked_layers(pl_module.net)  # a wrong layer name stops the run before training

    @rank_zero_only
    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        writer = self.writer(trainer)
        if writer is None or trainer.sanity_checking:
            return
        if self.probe is None:
            self.probe = trainer.datamodule.probe_batch()
        images, labels = self.probe
        net = pl_module.net
        captured: dict[str, Tensor] = {}
        handles = []
        was_training = net.training
        try:
            for name in self.hooked_layers(net):
                hook = partial(self.capture, captured, name)
                handles.append(net.get_submodule(name).register_forward_hook(hook))
            net.eval()
            with torch.no_grad():
                net(images.to(pl_module.device))
        finally:
            for handle in handles:
                handle.remove()
            net.train(was_training)
        step = trainer.global_step
        shown = (images * MNIST_STD + MNIST_MEAN).clamp(0, 1)
        writer.add_image("activations/inputs", tile_grid(shown, len(shown), scale=2), step)
        for name, maps in captured.items():
            for one_image, digit in zip(maps, labels.tolist(), strict=True):
                grid = feature_map_grid(one_image, self.max_maps)
                writer.add_image(f"activations/{name}/{digit}", grid, step)

    @staticmethod
    def capture(store: dict[str, Tensor], name: str, module, inputs, output: Tensor) -> None:
        store[name] = output.detach()


class TestViews(TensorBoardCallback):
    """After testing: the confusion matrix (`test/confusion_matrix`) and a grid of misclassified
    test digits titled with predicted and true labels (`test/mistakes`)."""

    def __init__(self, max_mistakes: int = 32) -> None:
        self.max_mistakes = max_mistakes

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.confusion = torch.zeros(10, 10, dtype=torch.long)
        self.mistakes: list[tuple[Tensor, int, int]] = []

    def on_test_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Tensor,
        batch: tuple[Tensor, Tensor],
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        images, labels = batch
        preds, labels = outputs.cpu(), labels.cpu()
        self.confusion += torch.bincount(labels * 10 + preds, minlength=100).view(10, 10)
        room = self.max_mistakes - len(self.mistakes)
        for i in (preds != labels).nonzero().flatten()[:room].tolist():
            self.mistakes.append((images[i, 0].cpu(), int(preds[i]), int(labels[i])))

    @rank_zero_only
    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        writer = self.writer(trainer)
        if writer is None:
            return
        writer.add_figure(
            "test/confusion_matrix", confusion_figure(self.confusion), trainer.global_step
        )
        if self.mistakes:
            writer.add_figure("test/mistakes", mistakes_figure(self.mistakes), trainer.global_step)


def confusion_figure(confusion: Tensor) -> Figure:
    figure = Figure(figsize=(6, 5.5), dpi=100)
    ax = figure.subplots()
    ax.imshow(confusion.numpy(), cmap="Blues")
    for (true, pred), count in np.ndenumerate(confusion.numpy()):
        color = "white" if count > confusion.max() / 2 else "black"
        ax.text(pred, true, str(count), ha="center", va="center", fontsize=8, color=color)
    ax.set(xticks=range(10), yticks=range(10), xlabel="predicted", ylabel="true")
    ax.set_title(f"confusion matrix ({int(confusion.trace())}/{int(confusion.sum())} right)")
    figure.tight_layout()
    return figure


def mistakes_figure(mistakes: list[tuple[Tensor, int, int]]) -> Figure:
    columns = 8
    rows = -(-len(mistakes) // columns)
    figure = Figure(figsize=(columns * 1.2, rows * 1.4), dpi=100)
    axes = figure.subplots(rows, columns, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (image, pred, true) in zip(axes.flat, mistakes, strict=False):
        ax.imshow((image * MNIST_STD + MNIST_MEAN).numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"pred {pred} / true {true}", fontsize=8)
    figure.tight_layout()
    return figure


class ReleaseProcessGroup(L.Callback):
    """Destroys the process group at the end of each stage in `ddp_spawn` workers. Those
    processes end without running atexit hooks, so Lightning's own clean-up never runs there
    and a worker could abort on exit ("terminate called without an active exception")."""

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.barrier()
            torch.distributed.destroy_process_group()
