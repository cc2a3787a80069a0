"""The LightningModule: Net + loss, accuracy metrics, optimizer and LR schedule from config."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import hydra
import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import MaxMetric
from torchmetrics.classification import MulticlassAccuracy

from src.core.model import Net
from src.speed.graphs import TrainingGraphs

# Schedules Lightning steps after every batch; any other, after every epoch.
STEPPED_EVERY_BATCH = (torch.optim.lr_scheduler.OneCycleLR, torch.optim.lr_scheduler.CyclicLR)


def class_name(node: dict[str, Any]) -> str:
    """The short name of the class an optimizer or scheduler node builds ("none": no schedule)."""
    return str(node["_target_"]).rpartition(".")[2] if node else "none"


def build_optimization(
    params: Iterable[Tensor], optimizer_cfg: dict, scheduler_cfg: dict, total_steps: int
) -> tuple[torch.optim.Optimizer, Any]:
    """The optimizer and LR scheduler (None for an empty scheduler node) of the model config's
    `_target_` + `_partial_` nodes, given the parameters and the optimizer. OneCycle peaks at the
    optimizer's lr unless max_lr is given, over `total_steps` steps."""
    optimizer = hydra.utils.instantiate(optimizer_cfg)(params)
    if not scheduler_cfg:
        return optimizer, None
    schedule = hydra.utils.instantiate(scheduler_cfg)
    if schedule.func is not torch.optim.lr_scheduler.OneCycleLR:
        return optimizer, schedule(optimizer)
    options = {"max_lr": optimizer.defaults["lr"], **schedule.keywords, "total_steps": total_steps}
    if "pct_start" in options:  # torch's default, 0.3, never makes a one-step warm-up
        options["pct_start"] = nonzero_warm_up(options["pct_start"], total_steps)
    return optimizer, schedule.func(optimizer, **options)


def interval(scheduler: Any) -> str:
    """When Lightning steps `scheduler`: after every batch or every epoch."""
    return "step" if isinstance(scheduler, STEPPED_EVERY_BATCH) else "epoch"


def nonzero_warm_up(pct_start: float, total_steps: int) -> float:
    """OneCycle's `pct_start`, moved up to the next float or two where its warm-up would end at
    the step where it starts (pct_start x total_steps = 1, e.g. 0.2 of 5 steps, as a short run
    with trainer.limit_train_batches makes): torch divides by that phase's length of zero
    (pytorch/pytorch#180187 records it). The schedule is then torch's for a pct_start a hair
    larger: the first step at the lowest lr, and from the second on the annealing, as from a
    peak passed between the two steps (with three_phase, which also comes down, never at
    max_lr)."""
    while pct_start < 1 and pct_start * total_steps - 1 == 0:
        pct_start = math.nextafter(pct_start, 1.0)
    return pct_start


def tally(
    log_probs: Tensor, labels: Tensor, images: Tensor
) -> tuple[Tensor, tuple[Tensor, Tensor, Tensor, Tensor]]:
    """A batch's 10x10 confusion counts (true, predicted) and its mistakes: images, predicted
    digit, true digit and the net's probability for its prediction. All on the CPU."""
    log_probs, labels = log_probs.detach().float().cpu(), labels.cpu()
    log_confidence, preds = log_probs.max(dim=1)
    confusion = torch.bincount(labels * 10 + preds, minlength=100).view(10, 10)
    wrong = preds != labels
    mistakes = (images[wrong.to(images.device)].cpu(), preds[wrong], labels[wrong],
                log_confidence[wrong].exp())  # fmt: skip
    return confusion, mistakes


def logs_step_values(trainer: L.Trainer, steps_done: int) -> bool:
    """Whether the training step after which `steps_done` optimizer steps are done logs its step
    values: every `trainer.log_every_n_steps` steps (never when 0), and an epoch's last batch.
    Lightning writes step values to its loggers on those steps only; the module, the progress
    bar, the learning-rate curve and the divergence check all read or write on them."""
    every = trainer.log_every_n_steps
    return trainer.is_last_batch or (every > 0 and steps_done > 0 and steps_done % every == 0)


# The most batches the module keeps before adding them to the epoch's sums: it adds them on the
# steps that log, and this bounds what it holds (a loss and two label vectors a batch) where
# few or none log (trainer.log_every_n_steps large, or 0)
MAX_UNSUMMED = 100

COMPILE_MODES = (
    "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs", "cuda-graphs"
)  # fmt: skip


class MNISTClassifier(L.LightningModule):
    """Trains a `Net` built from `net` keyword arguments (channels, pool_every, head, ...),
    on cross-entropy with `label_smoothing` (0: the tutorial's NLL loss), with the optimizer and
    LR schedule that `optimizer` and `scheduler` name: Hydra `_target_` + `_partial_` mappings
    (conf/model/optimizer, conf/model/scheduler), kept as mappings so that a checkpoint holds
    plain values; an empty `scheduler` is no schedule.

    `compile=True` compiles the net's forward with torch.compile (`compile_mode`, e.g.
    "reduce-overhead" for CUDA graphs on a GPU) on the CPU as on a GPU; the net's parameters
    and checkpoints stay as they are. The first steps then pay for the compilation, and the
    first validation step for a second one (no gradients: another graph).
    `compile_mode="cuda-graphs"` compiles nothing: on a CUDA device the training forward and
    backward are recorded as CUDA graphs at the first step and replayed after
    (`src.speed.graphs.TrainingGraphs`); evaluation, and everything on a CPU, runs eagerly.
    `compile_eval=False` runs the module's forward eagerly in eval mode instead (validation,
    test, the shift-invariance check): no second compilation, for evaluations too short to pay
    it back. The other views call the net's own forward, never compiled.

    Logs train/loss (every `trainer.log_every_n_steps` steps), train/loss_epoch, train/acc,
    val/loss, val/acc, val/acc_best, test/loss, test/acc.
    """

    def __init__(
        self,
        optimizer: dict[str, Any],
        scheduler: dict[str, Any],
        label_smoothing: float = 0.0,
        compile: bool = False,
        compile_mode: str = "default",
        compile_eval: bool = True,
        **net: Any,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = Net(**net)
        self.eval_eagerly = compile and not compile_eval
        graphs = compile and compile_mode == "cuda-graphs"
        self.training_graphs = TrainingGraphs(self.net) if graphs else None
        if compile and not graphs:  # in place: the state dict keeps its keys (no _orig_mod.)
            self.net.compile(mode=compile_mode)
        # Lets the model summary show each layer's input and output sizes and its FLOPs.
        side = self.net.input_size
        self.example_input_array = torch.zeros(1, self.net.specs[0].in_channels, side, side)
        # The epoch's training loss and accuracy are sums kept on the device, read once at the
        # epoch's end: torchmetrics updates at every step cost host time, which on a GPU the
        # loop cannot hide. Plain tensors, not buffers: DDP would copy rank 0's buffers to the
        # other ranks before every step, and a half-precision run would round them. Batches are
        # added to them together (`add_unsummed`).
        self.reset_train_sums()
        self.val_acc = MulticlassAccuracy(num_classes=10, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes=10, average="micro")
        self.val_acc_best = MaxMetric()
        # in the checkpoint, so that a resumed run keeps the best accuracy of its first part
        self.val_acc_best.persistent(True)
        # the run's seed (train() seeds before building the module), for each epoch's own stream
        self.seed = torch.initial_seed()

    def forward(self, x: Tensor) -> Tensor:
        if self.training_graphs is not None:
            return self.training_graphs(x)
        if self.training or not self.eval_eagerly:
            return self.net(x)
        with torch.compiler.set_stance("force_eager"):
            return self.net(x)

    def step(
        self, batch: tuple[Tensor, Tensor], label_smoothing: float = 0.0
    ) -> tuple[Tensor, Tensor, Tensor]:
        """(loss, log-probabilities, labels) of a batch."""
        x, y = batch
        log_probs = self(x)
        if label_smoothing:  # cross_entropy leaves log-probabilities as they are, then smooths
            loss = F.cross_entropy(log_probs, y, label_smoothing=label_smoothing)
        else:
            loss = F.nll_loss(log_probs, y)
        return loss, log_probs, y

    def on_train_epoch_start(self) -> None:
        # Each epoch draws dropout from its own seeded stream, so that a resumed run repeats
        # exactly the epochs that the run it continues would have run.
        torch.manual_seed((self.seed * 1_000_003 + self.current_epoch) % 2**63)
        self.reset_train_sums()

    def on_train_start(self) -> None:
        self.reset_train_sums()  # on the training device, also when a run resumes mid-epoch

    def reset_train_sums(self) -> None:
        self.train_loss_sum = torch.zeros((), dtype=torch.float32, device=self.device)
        self.train_correct = torch.zeros((), dtype=torch.int64, device=self.device)
        self.train_images = 0
        # (mean loss, predicted digits, labels) of the batches not yet in the sums
        self.unsummed: list[tuple[Tensor, Tensor, Tensor]] = []

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        loss, log_probs, y = self.step(batch, self.hparams.label_smoothing)
        # Kept, and added to the epoch's sums in a few operations for many batches: on a GPU
        # every device operation a step is host time the step waits for (one a step here: the
        # argmax). The predictions are taken at once: a step recorded as CUDA graphs writes the
        # next batch's log-probabilities where these are.
        self.unsummed.append((loss.detach(), log_probs.argmax(dim=1), y))
        # Lightning writes step values to the logger every log_every_n_steps steps only, and
        # each self.log call costs host time: log on those steps, and on an epoch's last batch
        # so that the run's final metrics hold its last loss. Not prog_bar=True: Lightning would
        # then read the value from the device after every batch (src.speed.progress.ProgressBar
        # shows it, read once per logged value).
        logs = logs_step_values(self.trainer, self.global_step + 1)
        if logs:
            self.log("train/loss", loss)
        if logs or len(self.unsummed) >= MAX_UNSUMMED:
            self.add_unsummed()
        return loss

    def add_unsummed(self) -> None:
        """Adds the batches kept since the last call to the epoch's loss sum (each batch's mean
        loss times its size), its count of right predictions and its count of images."""
        if not self.unsummed:
            return
        losses, predictions, labels = zip(*self.unsummed, strict=True)
        self.unsummed.clear()
        per_image = torch.cat([loss.expand(len(y)) for loss, y in zip(losses, labels, strict=True)])
        self.train_images += len(per_image)
        # in float32 whatever the losses' precision (bf16-true: 8 significant bits)
        self.train_loss_sum.add_(per_image.sum(dtype=torch.float32))
        self.train_correct.add_((torch.cat(predictions) == torch.cat(labels)).sum())

    def on_train_epoch_end(self) -> None:
        self.add_unsummed()
        images = self.train_loss_sum.new_tensor(self.train_images)
        totals = torch.stack((self.train_loss_sum, self.train_correct.float(), images))
        loss_sum, correct, images = self.trainer.strategy.reduce(totals, reduce_op="sum")
        images = images.clamp_min(1)  # an epoch with no batch (a resume at its very end)
        # sums over all processes already: sync_dist's mean leaves them as they are
        self.log("train/loss_epoch", loss_sum / images, sync_dist=True)
        self.log("train/acc", correct / images, prog_bar=True, sync_dist=True)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        loss, log_probs, y = self.step(batch)
        self.val_acc(log_probs.argmax(dim=1), y)
        self.log("val/loss", loss, on_epoch=True, prog_bar=True, sync_dist=True)
        self.log("val/acc", self.val_acc, on_epoch=True, prog_bar=True)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:  # its two batches must not count towards the best
            return
        self.val_acc_best(self.val_acc.compute())
        # the same on every process (val_acc's compute gathers them all); synced all the same,
        # once an epoch, as Lightning otherwise warns under DDP (max: exact, where a mean of
        # equal floats may not be)
        best = self.val_acc_best.compute()
        self.log("val/acc_best", best, prog_bar=True, sync_dist=True, reduce_fx="max")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        loss, log_probs, y = self.step(batch)
        self.test_acc(log_probs.argmax(dim=1), y)
        self.log("test/loss", loss, on_epoch=True, sync_dist=True)
        self.log("test/acc", self.test_acc, on_epoch=True)
        return log_probs.detach()  # for callbacks that look at the mistakes

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer, scheduler = build_optimization(
            self.parameters(),
            self.hparams.optimizer,
            self.hparams.scheduler,
            # at least one: a run without training steps (+trainer.limit_train_batches=0,
            # +trainer.max_steps=0) still tests, on a schedule never stepped
            total_steps=max(1, int(self.trainer.estimated_stepping_batches)),
        )
        if scheduler is None:
            return {"optimizer": optimizer}
        return {
            "optimizer": optimizer,
            # monitor: what a ReduceLROnPlateau schedule steps on (the others ignore it)
            "lr_scheduler": {
                "scheduler": scheduler,
                "interval": interval(scheduler),
                "monitor": "val/loss",
            },
        }
