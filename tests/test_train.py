from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import lightning.fabric.accelerators.cuda
import pytest
import torch
from lightning.fabric.accelerators.cuda import _check_cuda_matmul_precision
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

import src.lit.module
from src.lit.console import DropChatter
from src.lit.module import MAX_UNSUMMED
from src.train import train

from .helpers import NO_VIEWS, TINY, compose_train, read_events, run_cli, tiny_cfg


def test_fast_dev_run_through_the_hydra_config(tiny_data_dir: Path, tmp_path: Path) -> None:
    metrics = train(tiny_cfg(tiny_data_dir, tmp_path, "debug=fdr"))["metrics"]
    assert {"train/loss", "val/acc", "val/acc_best", "test/acc", "test/loss"} <= set(metrics)
    assert 0.0 <= metrics["test/acc"] <= 1.0


def test_a_short_run_whose_one_cycle_warm_up_is_one_step(
    tiny_data_dir: Path, tmp_path: Path
) -> None:
    # 0.2 of 5 steps: torch's OneCycleLR alone divides by zero at the first step
    lr_curve = "+callbacks.learning_rate._target_=src.lit.callbacks.LearningRateCurve"
    overrides = ["trainer.max_epochs=1", "+trainer.limit_train_batches=5", "test=false",
                 "callbacks=none", lr_curve]  # fmt: skip
    result = train(tiny_cfg(tiny_data_dir, tmp_path, "model.scheduler.pct_start=0.2", *overrides))
    assert result["epochs"] == 1
    lrs = [event.value for event in read_events(tmp_path).Scalars("train/lr")]
    assert len(lrs) == 5 and lrs[0] < lrs[1] and lrs[1:] == sorted(lrs[1:], reverse=True)


@pytest.mark.parametrize("no_steps", ["+trainer.limit_train_batches=0", "+trainer.max_steps=0"])
def test_a_run_without_training_steps_still_tests(
    tiny_data_dir: Path, tmp_path: Path, no_steps: str
) -> None:
    # OneCycle over 0 steps: torch refuses (total_steps must be positive); the schedule is
    # built over one step, never taken
    result = train(tiny_cfg(tiny_data_dir, tmp_path, "callbacks=none", no_steps))
    assert "train/loss" not in result["metrics"] and 0 <= result["test_acc"] <= 1


def test_channels_override_runs_and_reports_the_net_size(
    tiny_data_dir: Path, tmp_path: Path
) -> None:
    result = train(tiny_cfg(tiny_data_dir, tmp_path, "debug=fdr", "model.channels=[32,64]"))
    # conv 1->32 (288 + bn 64), 32->64 (18,432 + bn 128), 1x1 64->10 (650)
    assert result["params"] == 288 + 64 + 18_432 + 128 + 650
    assert result["receptive_field"] == 5
    assert result["val_acc_best"] == result["metrics"]["val/acc_best"]


def test_tensorboard_event_file_holds_scalars_and_hparams(
    tiny_data_dir: Path, tmp_path: Path
) -> None:
    # the image views off (test_callbacks.py reads theirs): the rest of the default callbacks
    overrides = ["trainer.max_epochs=2", "trainer.log_every_n_steps=5", *NO_VIEWS]
    metrics = train(tiny_cfg(tiny_data_dir, tmp_path, *overrides))["metrics"]
    events = read_events(tmp_path)
    scalars = set(events.Tags()["scalars"])
    assert {
        "train/loss",
        "train/loss_epoch",
        "train/acc",
        "val/loss",
        "val/acc",
        "val/acc_best",
    } <= scalars
    assert {"test/acc", "test/loss", "train/lr"} <= scalars
    val_acc = events.Scalars("val/acc")
    assert [e.step for e in val_acc] == [6, 13]  # one per epoch of 7 batches
    assert [e.step for e in events.Scalars("train/loss")] == [4, 9]  # every 5th of 14 steps
    best = events.Scalars("val/acc_best")[-1].value
    assert best == pytest.approx(max(e.value for e in val_acc))
    assert events.Scalars("test/acc")[-1].value == pytest.approx(metrics["test/acc"])
    # HParams tab: the run's hyperparameters and the metrics to compare by, no placeholder
    plugin = events.PluginTagToContent("hparams")
    session = HParamsPluginData.FromString(plugin["_hparams_/session_start_info"])
    hparams = session.session_start_info.hparams
    # ranked names, so that TensorBoard (which sorts by name, ticks the first five) shows these
    assert sorted(hparams)[:5] == [
        "01 channels",
        "02 lr",
        "03 batch_size",
        "04 seed",
        "05 rotation",
    ]
    assert hparams["01 channels"].string_value == "[16, 16, 32, 32, 64, 64]"
    assert hparams["02 lr"].number_value == pytest.approx(0.05)
    assert hparams["03 batch_size"].number_value == 32
    assert hparams["04 seed"].number_value == 42
    named = {name.split(" ", 1)[1]: value for name, value in hparams.items()}
    assert named["params"].number_value == 72_666 and named["receptive_field"].number_value == 32
    assert named["batch_norm"].WhichOneof("kind") == "bool_value" and named["batch_norm"].bool_value
    assert named["final_relu"].WhichOneof("kind") == "bool_value"
    assert not named["final_relu"].bool_value
    # paths, worker counts and unset values are left out: no "None" strings
    assert not {"data_dir", "offline_dir", "num_workers", "augment_epochs", "kernels"} & set(named)
    assert all(v.string_value != "None" for v in hparams.values())
    experiment = HParamsPluginData.FromString(plugin["_hparams_/experiment"]).experiment
    shown = [(info.name, info.display_name) for info in experiment.hparam_infos]
    assert shown[:2] == [("01 channels", "channels"), ("02 lr", "lr")]
    metric_tags = {m.name.tag for m in experiment.metric_infos}
    assert {"val/acc_best", "test/acc"} <= metric_tags <= scalars
    assert "hp_metric" not in scalars
    # the architecture table, in the run directory and in the Text tab
    table = (tmp_path / "architecture.md").read_text()
    assert "| conv6 | 7x7x64 |" in table and "| total |" in table
    text = events.Tensors("architecture/text_summary")[0].tensor_proto.string_val[0].decode()
    assert text == table
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()


def test_runs_without_a_logger(tiny_data_dir: Path, tmp_path: Path) -> None:
    metrics = train(tiny_cfg(tiny_data_dir, tmp_path, "logger=none", "trainer.max_epochs=1"))[
        "metrics"
    ]
    assert "test/acc" in metrics
    assert not (tmp_path / "tensorboard").exists()


def test_a_preset_runs_with_callbacks_none(
    tiny_data_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # experiment=speedrun sets options of callbacks that callbacks=none does not have: those
    # settings are left out with a warning, not handed to the Trainer as callbacks
    cfg = tiny_cfg(tiny_data_dir, tmp_path, "experiment=speedrun", "callbacks=none",
                   "logger=none", "model.compile=false", "data.eval_batch_size=50")  # fmt: skip
    assert "_target_" not in cfg.callbacks.last_checkpoint
    seen = {}

    class Probe(L.Callback):
        def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            seen["callbacks"] = trainer.callbacks

    assert "test/acc" in train(cfg, extra_callbacks=[Probe()])["metrics"]
    assert all(isinstance(callback, L.Callback) for callback in seen["callbacks"])
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert (
        "callbacks.last_checkpoint has no _target_ (the callbacks group chosen has no such "
        "entry): its settings {'every_n_epochs': 1} are left out" in warned
    )
    assert any(message.startswith("callbacks.architecture has no _target_") for message in warned)


def test_resume_from_checkpoint_continues_the_run(tiny_data_dir: Path, tmp_path: Path) -> None:
    first = tmp_path / "first"
    # OneCycle's length is fixed by max_epochs; resuming into more epochs needs another schedule
    schedule = "model/scheduler=step"
    train(tiny_cfg(tiny_data_dir, first, schedule, "trainer.max_epochs=1", "test=false",
                   *NO_VIEWS))  # fmt: skip
    last = first / "checkpoints" / "last.ckpt"
    second = tmp_path / "second"
    resume = [schedule, "trainer.max_epochs=2", f"ckpt_path={last}", "test=false", *NO_VIEWS]
    train(tiny_cfg(tiny_data_dir, second, *resume))
    steps = [e.step for e in read_events(second).Scalars("val/acc")]
    assert steps == [13]  # only epoch 2 ran, on from the checkpoint (7 batches an epoch)


def test_last_checkpoint_is_the_latest_epoch_not_the_best(
    tiny_data_dir: Path, tmp_path: Path
) -> None:
    # lr 1e-12 and no batch norm: the net hardly changes, val/acc never improves after epoch 0
    frozen = ["model.optimizer.lr=1e-12", "model/scheduler=none", "model.batch_norm=false"]
    train(tiny_cfg(tiny_data_dir, tmp_path, *frozen, "trainer.max_epochs=2", "test=false",
                   *NO_VIEWS))  # fmt: skip
    checkpoints = tmp_path / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["epoch_000.ckpt", "last.ckpt"]
    last = torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=False)
    assert (last["epoch"], last["global_step"]) == (1, 14)  # 2 epochs of 7 batches


@pytest.mark.slow
def test_short_real_mnist_run_reaches_95_percent(real_data_dir: Path, tmp_path: Path) -> None:
    cfg = compose_train(
        [
            f"data.data_dir={real_data_dir}",
            "trainer.max_epochs=1",
            "+trainer.limit_train_batches=150",
        ],
        tmp_path,
    )
    metrics = train(cfg)["metrics"]
    assert metrics["val/acc"] >= 0.95, metrics
    assert metrics["test/acc"] >= 0.95, metrics


@pytest.mark.slow  # a training run in a process of its own
def test_console_tells_the_run_not_the_framework(tiny_data_dir: Path, tmp_path: Path) -> None:
    result = run_cli(
        "model.channels=[32,64]", "trainer.max_epochs=1", f"data.data_dir={tiny_data_dir}", *TINY,
        f"hydra.run.dir={tmp_path}/run", "data.offline_dir=null",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    console = result.stdout + result.stderr
    warning = "warning: the receptive field of conv2 is 5x5, smaller than the 28x28 input"
    assert warning in console
    # the architecture table and its warning come before the first epoch's progress
    assert console.index("architecture: model.channels=[32, 64]") < console.index(warning)
    assert result.stdout.index(warning) < result.stdout.index("Epoch 0/0")
    # the model summary has an example input: sizes and FLOPs
    assert "In sizes" in result.stdout and "Total FLOPs: 29.4 M" in result.stdout
    for chatter in (
        "litlogger",
        "LeafSpec",
        "Trainer already configured with model summary callbacks",
        "Total FLOPs: 0",
        "TPU available",
        "to estimate number of stepping batches",
    ):
        assert chatter not in console, chatter


def test_the_tensor_cores_advice_is_dropped_on_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lightning's advice to set torch's matmul precision, on a GPU with Tensor Cores: the
    project's nets have no matrix products. Its own line, as Lightning words it (taken where
    Lightning hands it to its logger: earlier tests may have reconfigured the logging)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    monkeypatch.setattr(torch, "get_float32_matmul_precision", lambda: "highest")  # the default
    said: list[str] = []
    monkeypatch.setattr(lightning.fabric.accelerators.cuda, "rank_zero_info", said.append)
    _check_cuda_matmul_precision.__wrapped__(torch.device("cuda", 0))
    [advice] = said
    assert "Tensor Cores" in advice
    record = logging.LogRecord("lightning", logging.INFO, __file__, 0, advice, None, None)
    assert not DropChatter().filter(record)


class BatchRecorder(L.Callback):
    """Each training batch's epoch, mean loss, right predictions and size, as the module's
    step computed them (read here at once: this test does not mind the syncs)."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, float, int, int]] = []
        self.most_kept = 0  # the most batches the module held back from its sums

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args) -> None:
        self.most_kept = max(self.most_kept, len(pl_module.unsummed))

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        step = pl_module.step

        def recorded(batch, label_smoothing: float = 0.0):  # noqa: ANN001, ANN202
            loss, log_probs, y = step(batch, label_smoothing)
            if pl_module.training:
                right = int((log_probs.argmax(dim=1) == y).sum())
                self.rows.append((trainer.current_epoch, float(loss.detach()), right, len(y)))
            return loss, log_probs, y

        pl_module.step = recorded


@pytest.mark.parametrize(
    ("overrides", "max_unsummed", "batches", "most_kept"),
    [
        # held back until the next step that logs: every 3rd
        (["trainer.log_every_n_steps=3"], MAX_UNSUMMED, [7, 7], 2),
        # no step logs: only the epoch's last batch, and here the bound of 2
        (["trainer.log_every_n_steps=0"], 2, [7, 7], 1),
        # the fit ends mid-epoch, after batch 5, which logs nothing: the epoch's end adds it up
        (["trainer.log_every_n_steps=3", "+trainer.max_steps=5"], MAX_UNSUMMED, [5], 2),
        # bfloat16 losses, added up in float32
        (["trainer.log_every_n_steps=0", "trainer.precision=bf16-true"], MAX_UNSUMMED, [7, 7], 6),
    ],
)
def test_epoch_training_loss_and_accuracy_are_those_of_its_batches(
    monkeypatch: pytest.MonkeyPatch, tiny_data_dir: Path, tmp_path: Path, overrides: list[str],
    max_unsummed: int, batches: list[int], most_kept: int,
) -> None:  # fmt: skip
    monkeypatch.setattr(src.lit.module, "MAX_UNSUMMED", max_unsummed)
    recorder = BatchRecorder()
    overrides = ["callbacks=none", "test=false", "trainer.max_epochs=2", *overrides]
    train(tiny_cfg(tiny_data_dir, tmp_path, *overrides), extra_callbacks=[recorder])
    assert recorder.most_kept == most_kept
    events = read_events(tmp_path)
    losses, accuracies = events.Scalars("train/loss_epoch"), events.Scalars("train/acc")
    assert len(losses) == len(accuracies) == len(batches)
    for epoch, count in enumerate(batches):
        rows = [row for row in recorder.rows if row[0] == epoch]
        # 200 training images in batches of 32: a short last batch
        assert [size for *_, size in rows] == ([32] * 6 + [8])[:count]
        images = sum(size for *_, size in rows)
        loss_sum = sum(loss * size for _, loss, _, size in rows)
        assert losses[epoch].value == pytest.approx(loss_sum / images, rel=1e-5)
        assert accuracies[epoch].value == pytest.approx(sum(r[2] for r in rows) / images)


class OverwrittenOutput(torch.autograd.Function):
    """The net's output handed back in one buffer per shape, which the next call overwrites, as
    a step recorded as CUDA graphs hands it back (`torch.cuda.make_graphed_callables`);
    gradients pass through."""

    buffers: dict[torch.Size, torch.Tensor] = {}

    @staticmethod
    def forward(ctx, output: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        buffer = OverwrittenOutput.buffers.setdefault(output.shape, torch.empty_like(output))
        return buffer.copy_(output).detach()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        return grad


class OverwriteOutputs(L.Callback):
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        forward = pl_module.net.forward

        def overwritten(x: torch.Tensor) -> torch.Tensor:
            output = forward(x)
            return OverwrittenOutput.apply(output) if pl_module.training else output

        pl_module.net.forward = overwritten


def test_epoch_accuracy_holds_where_the_next_step_overwrites_the_net_output(
    real_data_dir: Path, tmp_path: Path
) -> None:
    OverwrittenOutput.buffers.clear()
    recorder = BatchRecorder()  # reads each batch's predictions before the next step
    cfg = compose_train(
        [f"data.data_dir={real_data_dir}", "data.batch_size=32", "callbacks=none", "test=false",
         "trainer.max_epochs=1", "+trainer.limit_train_batches=20",
         "+trainer.limit_val_batches=0", "trainer.log_every_n_steps=0"],
        tmp_path,
    )  # fmt: skip
    train(cfg, extra_callbacks=[OverwriteOutputs(), recorder])
    assert OverwrittenOutput.buffers  # the net's output did go through the buffer
    rights = [row[2] for row in recorder.rows]
    assert len(rights) == 20 and len(set(rights)) > 1  # a net learning: batches differ
    (accuracy,) = read_events(tmp_path).Scalars("train/acc")
    assert accuracy.value == pytest.approx(sum(rights) / (20 * 32))
