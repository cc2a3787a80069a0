"""What the network sees, as Lightning callbacks: when to draw kernels, activations, top patches,
effective receptive fields, class activation maps, the test views and the shift curve, and
where to log them; how they are drawn lives in `src.core.drawing` and `src.core.lessons`."""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn
from torch import Tensor

from src.core.architecture import (
    LayerStats,
    analyze,
    receptive_field_box,
    unit_windows,
)
from src.core.drawing import (
    confusion_figure,
    crop,
    digits_figure,
    feature_map_figure,
    kernel_figure,
    kernel_norm_figure,
    mistakes_figure,
    order_mistakes,
    top_patches_figure,
    top_units,
)
from src.core.lessons import cam_figure, erf_figure, shift_figure
from src.core.model import Net, mass_side
from src.data.datamodule import denormalize, shift
from src.lit.callbacks import TensorBoardCallback
from src.lit.module import tally

DIRECTIONS = ((1, 0), (-1, 0), (0, 1), (0, -1))  # right, left, down, up


def conv_names(net: torch.nn.Module) -> list[str]:
    return [spec.name for spec in net.specs if spec.kind == "conv"]


class KernelImages(TensorBoardCallback):
    """Every conv layer's kernels (`kernels/NN_<layer>`, see `drawing.kernel_figure`), for a
    deeper kxk conv also the norms of all its kernels (`kernels/NN_<layer>_norms`), and its
    weights as a histogram (`weights/<layer>`), at fit start and every `every_n_epochs`."""

    def __init__(self, every_n_epochs: int = 1, max_shown: int = 8) -> None:
        self.every_n_epochs, self.max_shown = every_n_epochs, max_shown

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
        names = conv_names(pl_module.net)
        for index, name in enumerate(names, start=1):
            weight = pl_module.net.get_submodule(name).weight.detach().cpu()
            rows = "digit" if name == names[-1] else "output channel"  # the last conv: logits
            step, tag = trainer.global_step, f"kernels/{index:02d}_{name}"
            writer.add_figure(tag, kernel_figure(weight, name, self.max_shown, rows), step)
            if weight.shape[1] > 1 and weight.shape[-1] > 1:
                writer.add_figure(f"{tag}_norms", kernel_norm_figure(weight, name, rows), step)
            writer.add_histogram(f"weights/{name}", weight, step)


class ActivationImages(TensorBoardCallback):
    """What each layer makes of a fixed probe batch (the first validation image of each digit).

    At the end of every validation epoch, one eval-mode, no-grad forward pass records the chosen
    layers' outputs (by name; default: every conv and max-pool whose output is bigger than 1x1)
    through forward hooks that `Net.record` removes in a `finally`, so training never runs with a
    hook on. Logs `activations/00_inputs` and one image per layer,
    `activations/NN_<layer>` in network order (see `drawing.feature_map_figure`).
    """

    def __init__(self, layers: Sequence[str] | None = None, max_maps: int = 12) -> None:
        self.layers = list(layers) if layers else None
        self.max_maps = max_maps
        self.probe: tuple[Tensor, Tensor] | None = None

    def hooked_layers(self, net: Net) -> list[str]:
        """The layers to draw, in network order."""
        if self.layers is None:
            return net.spatial_layers()
        names = [name for name, _ in net.named_children()]
        return [name for name in names if name in self.layers]

    @rank_zero_only
    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        writer = self.writer(trainer)
        if writer is None or trainer.sanity_checking:
            return
        if self.probe is None:
            self.probe = trainer.datamodule.probe_batch()
        images, labels = self.probe
        net: Net = pl_module.net
        layers = self.hooked_layers(net)
        _, captured = net.record(images.to(pl_module.device), outputs=layers)
        step = trainer.global_step
        digits = denormalize(images)
        title = "probe digits, the same every epoch"
        figure = digits_figure(digits, [str(d) for d in labels.tolist()], title)
        writer.add_figure("activations/00_inputs", figure, step)
        for index, name in enumerate(layers, start=1):
            figure = feature_map_figure(captured[name].cpu(), digits, name, self.max_maps)
            writer.add_figure(f"activations/{index:02d}_{name}", figure, step)


class ClassActivationMaps(TensorBoardCallback):
    """For a `head=gap` net, where it is exact: the class activation map of each probe digit's
    predicted class (`cam/probe`, see `drawing.cam_figure`), after every validation epoch. A
    `head=conv` net has none: one warning at fit start, and no image."""

    @rank_zero_only
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not pl_module.net.gap_head:
            rank_zero_warn(
                "callbacks.cam: a head=conv net has no exact class activation map; none is drawn"
            )

    @rank_zero_only
    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        writer = self.writer(trainer)
        net: Net = pl_module.net
        if writer is None or trainer.sanity_checking or not net.gap_head:
            return
        images, labels = trainer.datamodule.probe_batch()
        log_probs, captured = net.record(images.to(pl_module.device), inputs=["gap"])
        predicted = log_probs.argmax(dim=1).cpu()
        maps = net.class_activation_maps(captured["gap:input"]).cpu()
        chosen = maps[torch.arange(len(predicted)), predicted]
        figure = cam_figure(denormalize(images), chosen, predicted, labels)
        writer.add_figure("cam/probe", figure, trainer.global_step)


def unit_patches(digits: Tensor, row: LayerStats, units: Tensor) -> Tensor:
    """For (channels, count, 3) units (image, row, column) of a layer's output, the windows of
    `digits` (N, 1, H, W) they see, where `receptive_field_box` puts them: (channels, count, rf,
    rf), blank paper where a window lies on padding."""
    side = row.receptive_field
    return torch.stack([
        torch.cat([crop(digits[n : n + 1], int(receptive_field_box(row, y)[0]),
                        int(receptive_field_box(row, x)[0]), side) for n, y, x in channel])
        for channel in units.tolist()
    ])  # fmt: skip


class TopPatches(TensorBoardCallback):
    """What excites each filter (Zeiler and Fergus): for each conv layer before global pooling,
    its first `max_channels` channels' `top_k` validation patches (of the first `images`
    validation images), each cropped to the receptive field of the unit that responded most
    (`top_patches/NN_<layer>`, see `drawing.top_patches_figure`), after every `every_n_epochs`
    epochs and after the last."""

    def __init__(
        self, every_n_epochs: int = 5, max_channels: int = 6, top_k: int = 8, images: int = 500
    ) -> None:
        self.every_n_epochs, self.max_channels = every_n_epochs, max_channels
        self.top_k, self.images = top_k, images

    @rank_zero_only
    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch, last = trainer.current_epoch, trainer.max_epochs - 1
        if trainer.sanity_checking or ((epoch + 1) % self.every_n_epochs and epoch != last):
            return
        writer = self.writer(trainer)
        if writer is None:
            return
        net: Net = pl_module.net
        images = trainer.datamodule.val_images(self.images)
        rows = [r for r in analyze(net.specs, net.input_size) if r.layer.kind == "conv"]
        rows = [r for r in rows if r.out_size > 1]  # before global pooling
        _, maps = net.record(images.to(pl_module.device), outputs=[r.layer.name for r in rows])
        digits = denormalize(images)
        for index, row in enumerate(rows, start=1):
            units = top_units(maps[row.layer.name].cpu(), self.max_channels, self.top_k)
            figure = top_patches_figure(unit_patches(digits, row, units), row.layer.name)
            writer.add_figure(f"top_patches/{index:02d}_{row.layer.name}", figure,
                              trainer.global_step)  # fmt: skip


class EffectiveReceptiveField(TensorBoardCallback):
    """The effective receptive field (Luo et al., 2016) of the centre unit of each conv and pool,
    from the probe digits (`Net.centre_gradient`): `erf/maps` (see `drawing.erf_figure`) and
    `erf/<layer>`, the side of the centred square holding 90% of the gradient, at fit start
    (random weights) and after every `every_n_epochs` validation epochs."""

    def __init__(self, every_n_epochs: int = 1) -> None:
        self.every_n_epochs = every_n_epochs

    @rank_zero_only
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.log_fields(trainer, pl_module, "at initialisation")

    @rank_zero_only
    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking and (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self.log_fields(trainer, pl_module, f"after epoch {trainer.current_epoch}")

    def log_fields(self, trainer: L.Trainer, pl_module: L.LightningModule, when: str) -> None:
        writer = self.writer(trainer)
        if writer is None:
            return
        net: Net = pl_module.net
        images = trainer.datamodule.probe_batch()[0].to(pl_module.device)
        windows = unit_windows(analyze(net.specs, net.input_size))
        names = [name for name, _, _, _ in windows]
        fields = [centre for _, _, centre, _ in windows]
        gradients = [net.centre_gradient(images, name).cpu() for name in names]
        sides = []
        for name, field, gradient in zip(names, fields, gradients, strict=True):
            centre = int(sum(field) / 2)  # the pixel the window is centred on
            sides.append(mass_side(gradient, (centre, centre)))
            writer.add_scalar(f"erf/{name}", sides[-1], trainer.global_step)
        title = f"ERF (90%) vs RF (dashed), {when}"
        figure = erf_figure(gradients, names, fields, sides, title)
        writer.add_figure("erf/maps", figure, trainer.global_step)


class TestBatchView(TensorBoardCallback):
    """A view that reads every test batch: its images, labels and the module's log-probabilities
    (what test_step returns)."""

    def on_test_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Tensor,
        batch: tuple[Tensor, Tensor],
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self.read_test_batch(pl_module, outputs, *batch)

    def read_test_batch(
        self, pl_module: L.LightningModule, log_probs: Tensor, images: Tensor, labels: Tensor
    ) -> None:
        raise NotImplementedError


class TestViews(TestBatchView):
    """After testing: the confusion matrix (`test/confusion_matrix`) and the `max_mistakes`
    misclassified test digits the net was surest of (`test/mistakes`), out of all of them."""

    def __init__(self, max_mistakes: int = 18) -> None:
        self.max_mistakes = max_mistakes

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.confusion = torch.zeros(10, 10, dtype=torch.long)
        self.total_mistakes = 0
        # the surest mistakes so far: images, predicted, true, probability of the prediction
        self.kept = (torch.empty(0, 1, 28, 28), *(torch.empty(0, dtype=torch.long),) * 2)
        self.kept_confidence = torch.empty(0)

    def read_test_batch(
        self, pl_module: L.LightningModule, log_probs: Tensor, images: Tensor, labels: Tensor
    ) -> None:
        counts, (images, predicted, true, confidence) = tally(log_probs, labels, images)
        self.confusion += counts
        if len(true) == 0:
            return
        self.total_mistakes += len(true)
        kept = [torch.cat(pair) for pair in zip(self.kept, (images, predicted, true), strict=True)]
        confidence = torch.cat([self.kept_confidence, confidence])
        surest = order_mistakes(confidence, self.max_mistakes)
        self.kept = tuple(part[surest] for part in kept)
        self.kept_confidence = confidence[surest]

    @rank_zero_only
    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        writer = self.writer(trainer)
        if writer is None:
            return
        step = trainer.global_step
        writer.add_figure("test/confusion_matrix", confusion_figure(self.confusion), step)
        if self.total_mistakes:
            images, predicted, true = self.kept
            figure = mistakes_figure(
                denormalize(images), predicted, true, self.kept_confidence, self.total_mistakes
            )
            writer.add_figure("test/mistakes", figure, step)


class ShiftInvariance(TestBatchView):
    """After testing: test accuracy with every test image moved by 1 to `max_shift` pixels,
    each of the four ways (the mean of the four), logged as `shift/acc_<k>px` (so in the run's
    metrics, result.json and the sweep table) and drawn as a curve (`shift/accuracy`). It runs
    the net 4 x max_shift times more over every `every_nth` test image (5: 2,000 of 10,000,
    from the whole test set, whose first half holds the easier digits; 1: all), the same ones
    in every run; the curve's unshifted point is their accuracy."""

    def __init__(self, max_shift: int = 4, every_nth: int = 5) -> None:
        self.max_shift, self.every_nth = max_shift, every_nth

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.correct = torch.zeros(self.max_shift + 1, dtype=torch.long)
        self.seen = 0

    def read_test_batch(
        self, pl_module: L.LightningModule, log_probs: Tensor, images: Tensor, labels: Tensor
    ) -> None:
        # every nth of the whole test set as long as batches hold a multiple of n images
        images, labels, log_probs = (
            part[:: self.every_nth] for part in (images, labels, log_probs)
        )
        self.seen += len(labels)
        self.correct[0] += int((log_probs.argmax(dim=1) == labels).sum())
        for k in range(1, self.max_shift + 1):
            for right, down in DIRECTIONS:
                predicted = pl_module(shift(images, k * right, k * down)).argmax(dim=1)
                self.correct[k] += int((predicted == labels).sum())

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        counts = torch.tensor([self.seen] + [len(DIRECTIONS) * self.seen] * self.max_shift)
        accuracy = (self.correct / counts).tolist()
        for k in range(1, self.max_shift + 1):
            pl_module.log(f"shift/acc_{k}px", accuracy[k], sync_dist=True)
        writer = self.writer(trainer) if trainer.is_global_zero else None
        if writer is not None:
            writer.add_figure("shift/accuracy", shift_figure(accuracy), trainer.global_step)
