"""src.config.checks: the composed config refused before any work, one line naming the value and
what is allowed; checkpoints checked against the configured net."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

import src.config.checks
from src.config.build import hydra_error_line
from src.config.checks import LAYOUT, check_checkpoint, check_config
from src.core.architecture import plan_layers
from src.core.errors import ConfigError
from src.core.model import Net
from src.lit.module import MNISTClassifier
from src.lit.runs import net_difference
from src.speed.relaunch import check_no_relaunch
from src.train import train

from .helpers import compose_train

PRESETS = [
    [],
    *([f"experiment={name}"] for name in
      ("best", "channels_sweep", "fast", "micro", "pooling_study", "speedrun", "tiny", "tutorial")),
    ["model=tutorial"],
    ["model=tutorial", "model.compile=true", "model.dropout=0.1"],  # the default's other options
    ["experiment=speedrun", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"],
    # cuda-graphs: eager on a CPU, any trainer
    ["experiment=speedrun", "trainer=cpu", "+trainer.accumulate_grad_batches=2"],
    ["experiment=speedrun", "model.compile=false", "trainer.precision=bf16-mixed"],
    ["trainer=cpu"],
    *([f"debug={name}"] for name in ("fdr", "limit", "overfit")),
    ["model/optimizer=adam", "model/scheduler=step"],
    ["model.scheduler.pct_start=0.1"],  # once refused: OneCycle over 10 dummy steps failed
    ["callbacks.activations.layers=[conv1,pool1]", "callbacks.kernels=null"],
    ["+trainer.limit_train_batches=0", "+trainer.limit_val_batches=0.2"],  # 1 of 5 val batches
    ["+trainer.val_check_interval=1000", "trainer.check_val_every_n_epoch=null"],
    # where Lightning sets the limits itself, or compares no interval with an epoch
    ["debug=fdr", "+trainer.val_check_interval=1000", "+trainer.limit_val_batches=0.1"],
    ["debug=overfit", "+trainer.limit_train_batches=0.0001"],
    ["+trainer.limit_train_batches=0", "+trainer.val_check_interval=10"],
    ["+trainer.limit_val_batches=0", "+trainer.val_check_interval=1000"],
    ["+trainer.limit_val_batches=null", "+trainer.limit_train_batches=10.0"],  # all; 10
    ["test=false", "+trainer.limit_test_batches=0.01"],  # no test to limit
    # Hydra's own keys beside the options: not options of the class
    ["+model.optimizer._convert_=all", "+callbacks.lr_monitor._args_=[]",
     "+callbacks.lr_monitor._target_=lightning.pytorch.callbacks.LearningRateMonitor"],
]  # fmt: skip

# (overrides, what the one-line message must hold)
REFUSED = [
    # wrong types and unknown keys: the schema's, as Hydra composes the config
    (["model.batch_norm=maybe"], "model.batch_norm='maybe': must be true or false"),
    (["model.compile=often"], "model.compile='often': must be true or false"),
    (["model.compile_eval=often"], "model.compile_eval='often': must be true or false"),
    (["model.compile_mode=fast"], "model.compile_mode='fast': must be one of default,"),
    (["+callbacks.foo=bar"], "callbacks.foo='bar': must be a _target_ with its options, or null"),
    (["+logger.foo=1"], "logger.foo=1: must be a _target_ with its options, or null"),
    (["model.channels=[16,x]"], "model.channels[1]='x': must be an integer"),
    (["model.channels=16"], "model.channels=16: must be a list of integers"),
    (["model.pools=12"], "model.pools=12: must be a list of integers or null"),
    (["+model.foo=1"], "model.foo: not an option of MNISTClassifier (options: optimizer,"),
    (["model.foo=1"], "model.foo: not an option of MNISTClassifier (options: optimizer,"),
    (["data.nope=1"], "data.nope: not an option of MNISTDataModule (options: data_dir,"),
    (["trainer.max_epochs=abc"], "trainer.max_epochs='abc': must be an integer or null"),
    (["+trainer.nope=1"], "trainer.nope: not an option of Trainer (options: accelerator,"),
    (["callbacks.nope=1"], "callbacks.nope: no such key (to add one: +callbacks.nope=...)"),
    (["model=nope"], "model=nope: no such option (available: default, tutorial)"),
    (["model.dropout=${nope}"], "model.dropout: Interpolation key 'nope' not found"),
    (["model.channels=[16"], "model.channels=[16: does not parse as key=value (no viable"),
    # ranges and cross-field rules (src/config/rules.py)
    (["model.channels=[]"], "model.channels=[]: must be a non-empty list of positive integers"),
    (["model.channels=[16,-4]"], "model.channels=[16, -4]: must be a non-empty list of positive"),
    (["model.head=fc"], "model.head='fc': must be one of gap, conv"),
    (["model.pool_every=0"], "model.pool_every=0: must be an integer >= 1"),
    (["model.valid_tail=12"], "model.valid_tail=12: must be between 0 and 6"),
    (["model.dropout=1.5"], "model.dropout=1.5: must be a rate in [0, 1)"),
    (["model.label_smoothing=1"], "model.label_smoothing=1.0: must be a rate in [0, 1)"),
    (["model.kernels=[3,1]"], "model.kernels=[3, 1]: must list one odd kernel size per model."),
    (["model.kernels=[3,3,2,3,3,3]"], "model.kernels=[3, 3, 2, 3, 3, 3]: must list one odd"),
    (["model.pools=[6]"], "model.pools=[6]: must name distinct convs a pool may follow, 1 to 5"),
    (["model.pools=[0]"], "model.pools=[0]: must name distinct convs"),
    (["model.pools=[2,2]"], "model.pools=[2, 2]: must name distinct convs"),
    (["model.channels=[8,8,16,16,32,32]", "model.pools=[1,2,3]"],
     "model.pools=[1, 2, 3]: a pool after conv3 would leave a 3x3 map"),
    (["model.channels=[8,8]", "model.head=conv"], "model.head=conv needs a 1x1 map"),
    (["data.val_size=-5"], "data.val_size=-5: must be 1 to 59,999 (MNIST has 60,000"),
    (["data.val_size=60000"], "data.val_size=60000: must be 1 to 59,999 (MNIST has 60,000"),
    (["data.eval_batch_size=0"], "data.eval_batch_size=0: must be an integer >= 1"),
    (["data.loader=turbo"], "data.loader='turbo': must be one of fast, torchvision"),
    (["data.rotation=-5"], "data.rotation=-5.0: must be a number of degrees >= 0"),
    (["data.translate=1"], "data.translate=1.0: must be a fraction of the image's size in [0, 1)"),
    (["data.augment_epochs=0"], "data.augment_epochs=0: must be null or a positive integer"),
    (["data.augment_epochs=2", "data.loader=torchvision"],
     "data.augment_epochs=2: needs data.loader=fast"),
    (["data.num_workers=-1"], "data.num_workers=-1: must be an integer >= 0"),
    (["data.drop_last=often"], "data.drop_last='often': must be true or false"),
    (["data.batch_size=1.5"], "data.batch_size=1.5: must be an integer"),
    (["data.rotation=abc"], "data.rotation='abc': must be a number"),
    (["data.offline_dir=/no/such"], "data.offline_dir=/no/such: no such folder; name the folder"),
    (["data.batch_size=0"], "data.batch_size=0: must be an integer >= 1"),
    (["test=maybe"], "test='maybe': must be true or false"),
    (["seed=abc"], "seed='abc': must be an integer from 0 to 4294967295"),
    (["seed=-1"], "seed=-1: must be an integer from 0 to 4294967295"),
    ([f"seed={2**32}"], f"seed={2**32}: must be an integer from 0 to 4294967295"),
    (["trainer.max_epochs=-1"], "trainer.max_epochs=-1: must be an integer >= 1"),
    (["trainer.min_epochs=9"], "trainer.min_epochs=9: must be an integer from 0 to trainer.max_"),
    # what Lightning checks only once fit has begun, the data staged
    (["+trainer.accumulate_grad_batches=0"],
     "trainer.accumulate_grad_batches=0: must be an integer >= 1"),
    (["+trainer.limit_train_batches=0.0001"],
     "trainer.limit_train_batches=0.0001: less than one of the 430 train batches; at least 0.0024"),
    (["+trainer.limit_train_batches=0.0023"],  # int(430 x 0.0023) = 0
     "trainer.limit_train_batches=0.0023: less than one of the 430 train batches; at least 0.0024"),
    (["+trainer.val_check_interval=0"],
     "trainer.val_check_interval=0: must be a number of batches >= 1, or a fraction"),
    (["+trainer.val_check_interval=1000.0"],  # a whole float: batches, as Lightning takes it
     "trainer.val_check_interval=1000: more than an epoch's 430 training batches"),
    (["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
      "+trainer.val_check_interval=300"],  # 2 processes: 215 batches each
     "trainer.val_check_interval=300: more than an epoch's 215 training batches"),
    (["trainer.check_val_every_n_epoch=0"],
     "trainer.check_val_every_n_epoch=0: must be an integer >= 1, or null"),
    (["+trainer.limit_val_batches=0.1"],
     "trainer.limit_val_batches=0.1: less than one of the 5 val batches; at least 0.2"),
    (["+trainer.limit_train_batches=10", "+trainer.val_check_interval=20"],
     "trainer.val_check_interval=20: more than an epoch's 10 training batches"),
    (["data.drop_last=true", "data.batch_size=56000", "model.channels=[4]"],
     "data.batch_size=56000: more than the 55000 training images, and data.drop_last=true"),
    (["+trainer.limit_train_batches=abc"],
     "trainer.limit_train_batches='abc': must be a whole number of batches (>= 0) or a fraction"),
    (["+trainer.limit_test_batches=-3"],
     "trainer.limit_test_batches=-3: must be a whole number of batches (>= 0) or a fraction"),
    (["experiment=speedrun", "+trainer.val_check_interval=215"],  # drop_last: 214 batches
     "trainer.val_check_interval=215: more than an epoch's 214 training batches"),
    (["model.optimizer.lr=abc"], "model.optimizer.lr='abc': must be a number > 0"),
    (["model.optimizer.lr=0"], "model.optimizer.lr=0: must be a number > 0"),
    (["model.optimizer.lr=-0.1"], "model.optimizer.lr=-0.1: must be a number > 0"),
    (["model.optimizer.momentum=1.0"], "model.optimizer.momentum=1.0: must be a number in [0, 1)"),
    (["model.optimizer.weight_decay=-1"], "model.optimizer.weight_decay=-1: must be a number >= 0"),
    (["+model.optimizer.nesterov=often"],
     "model.optimizer.nesterov='often': must be true or false"),
    (["+model.optimizer.foo=1"], "model.optimizer.foo: not an option of SGD (options: lr,"),
    (["model.optimizer._target_=torch.optim.Nope"],
     "model.optimizer._target_=torch.optim.Nope: no such class or function"),
    (["+callbacks.model_checkpoint.nope=1"],
     "callbacks.model_checkpoint.nope: not an option of ModelCheckpoint (options: dirpath,"),
    (["+callbacks.model_checkpoint.save_top_k=x"],
     "callbacks.model_checkpoint.save_top_k='x': must be an integer"),
    (["model/optimizer=adam", "+model.optimizer.betas=[0.9,1.5]"],
     "model.optimizer.betas=[0.9, 1.5]: must be two numbers in [0, 1)"),
    (["model/optimizer=adam", "+model.optimizer.eps=-1"],  # torch's own range check
     "model.optimizer (torch.optim.Adam): Invalid epsilon value: -1"),
    (["model/scheduler=step", "model.scheduler.gamma=abc"],
     "model.scheduler.gamma='abc': must be a number"),
    (["model/scheduler=step", "model.scheduler.gamma=0"],
     "model.scheduler.gamma=0: must be a number > 0"),
    (["model/scheduler=step", "model.scheduler.step_size=0"],
     "model.scheduler.step_size=0: must be an integer >= 1"),
    (["model.scheduler.pct_start=1.0"],
     "model.scheduler.pct_start=1.0: must be a number in (0, 1)"),
    (["+model.scheduler.anneal_strategy=sine"],
     "model.scheduler (torch.optim.lr_scheduler.OneCycleLR): anneal_strategy must be one of"),
    (["callbacks.activations.max_maps=0"],
     "callbacks.activations.max_maps=0: must be an integer >= 1"),
    (["callbacks.kernels.max_shown=0"], "callbacks.kernels.max_shown=0: must be an integer >= 1"),
    (["callbacks.architecture.receptive_field_figure=maybe"],
     "callbacks.architecture.receptive_field_figure='maybe': must be true or false"),
    (["callbacks.kernels.every_n_epochs=0"],
     "callbacks.kernels.every_n_epochs=0: must be an integer >= 1"),
    (["callbacks.test_views.max_mistakes=0"],
     "callbacks.test_views.max_mistakes=0: must be an integer >= 1"),
    (["callbacks.activations.layers=[conv1,conv99]"],
     "callbacks.activations.layers: no layer 'conv99' in the net (layers: conv1, bn1, relu1,"),
    (["model.channels=[1000000]"],
     "model.channels=[1000000]: one training batch of 128 needs about"),
    (["paths.log_dir=/proc/x"], "paths.log_dir=/proc/x: cannot be written (/proc is"),
    (["ckpt_path=no/such.ckpt"], "ckpt_path=no/such.ckpt: no such checkpoint file"),
]  # fmt: skip


def refusal(overrides: list[str] | DictConfig, tmp_path: Path | None = None) -> str:
    """The one line a refused config (or overrides) gets: Hydra's refusal as it composes, or
    check_config's."""
    try:
        check_config(overrides if tmp_path is None else compose_train(overrides, tmp_path))
    except ConfigError as err:
        message = str(err)
    except (HydraException, OmegaConfBaseException) as err:
        message = hydra_error_line(err)
    else:
        pytest.fail(f"{overrides} passed")
    assert "\n" not in message
    return message


@pytest.mark.parametrize("overrides", PRESETS, ids=lambda o: " ".join(o) or "default")
def test_presets_pass(overrides: list[str], tmp_path: Path) -> None:
    check_config(compose_train(overrides, tmp_path))


@pytest.mark.parametrize(("overrides", "expected"), REFUSED, ids=lambda v: str(v)[:60])
def test_refused_values_are_one_line(overrides: list[str], expected: str, tmp_path: Path) -> None:
    assert expected in refusal(overrides, tmp_path)


def test_memory_is_estimated_from_the_arithmetic(tmp_path: Path) -> None:
    message = refusal(["model.channels=[1000000]"], tmp_path)
    assert message.endswith("GiB available: use fewer channels or a smaller data.batch_size")
    # the default net fits in 1 GiB, and not in 1 MiB
    cfg = compose_train([], tmp_path)
    specs = plan_layers(**{key: cfg.model[key] for key in src.config.checks.LAYOUT})
    need = src.config.checks.training_bytes(specs, input_size=28, batch_size=128)
    assert 2**20 < need < 2**30


def test_memory_refused_for_a_small_machine(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(src.config.checks, "available_memory", lambda: 2**20)
    message = refusal(["data.batch_size=256"], tmp_path)
    assert message.startswith("model.channels=[16, 16, 32, 32, 64, 64]: one training batch of 256")
    assert "this machine has 0.0 GiB available" in message


@pytest.mark.parametrize(
    "overrides", [["trainer=gpu"], ["trainer=ddp"], ["trainer.accelerator=cuda"]]
)
def test_a_gpu_asked_for_where_there_is_none(
    overrides: list[str], tmp_path: Path, monkeypatch
) -> None:
    cfg = compose_train(overrides, tmp_path)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    accelerator = cfg.trainer.accelerator
    assert refusal(cfg) == (
        f"trainer.accelerator='{accelerator}': torch finds no GPU on this machine; use "
        "trainer=cpu, or trainer.accelerator=auto (a GPU where there is one)"
    )
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    check_config(cfg)


@pytest.mark.parametrize(
    ("trainer_args", "refused"),
    [
        ({"strategy": "ddp", "devices": 2}, True),
        ({"devices": 2}, True),  # Lightning picks its DDP
        ({"strategy": "ddp_spawn", "devices": 2}, False),  # started from within the job
        ({"strategy": "ddp", "devices": 1}, False),
        ({"strategy": "ddp", "devices": 1, "num_nodes": 2}, False),  # one process a node
    ],
)
def test_a_sweep_job_refuses_ddp_that_runs_the_command_again(
    trainer_args: dict, refused: bool
) -> None:
    trainer = L.Trainer(accelerator="cpu", logger=False, **trainer_args)
    if refused:
        with pytest.raises(
            ConfigError, match=r"^trainer: 2 processes \(DDPStrategy\) in a -m sweep"
        ):
            check_no_relaunch(trainer)
    else:
        check_no_relaunch(trainer)


def test_train_checks_the_launch_in_a_sweep_only(tmp_path: Path, monkeypatch) -> None:
    cfg = compose_train(["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"], tmp_path)
    with pytest.raises(ConfigError, match="in a -m sweep"):
        train(cfg, in_sweep=True)
    assert not (tmp_path / "checkpoints").exists()  # refused before fit

    class Fitting(Exception):
        pass

    def fit(*args: object, **kwargs: object) -> None:
        raise Fitting

    monkeypatch.setattr(L.Trainer, "fit", fit)
    with pytest.raises(Fitting):  # a single run goes on to fit
        train(cfg, in_sweep=False)


def test_folders(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("")
    message = refusal([f"paths.data_dir={a_file}/data"], tmp_path)
    assert (
        message
        == f"paths.data_dir={a_file}/data: cannot be written ({a_file} is a file, not a folder)"
    )
    new = tmp_path / "new" / "logs"
    check_config(compose_train([f"paths.log_dir={new}"], tmp_path))
    assert not new.parent.exists()  # nothing is created


def small_checkpoint(path: Path, model_cfg, **lightning) -> Path:
    """A checkpoint as Lightning writes it, of the model node's MNISTClassifier."""
    options = {k: v for k, v in OmegaConf.to_container(model_cfg).items() if not k.startswith("_")}
    model = MNISTClassifier(**options)
    torch.save({"state_dict": model.state_dict(), "pytorch-lightning_version": "2.6.0",
                "epoch": 0, **lightning}, path)  # fmt: skip
    return path


def test_the_net_checked_on_the_meta_device_is_the_module_s(tmp_path: Path) -> None:
    for overrides in ([], ["model=tutorial", "model.channels=[4,8,8,8,8,8]"]):
        model_cfg = compose_train(["model.channels=[4,8]", *overrides], tmp_path).model
        options = {
            k: v for k, v in OmegaConf.to_container(model_cfg).items() if not k.startswith("_")
        }
        with torch.device("meta"):
            meta = Net(**{key: options[key] for key in LAYOUT if key in options})
        assert net_difference(meta, MNISTClassifier(**options).state_dict()) is None
    other = MNISTClassifier(**{**options, "channels": [8, 8, 8, 8, 8, 8]}).state_dict()
    assert (
        net_difference(meta, other) == "net.conv1.weight is [8, 1, 3, 3] there, [4, 1, 3, 3] here"
    )


def test_checkpoints(tmp_path: Path) -> None:
    small = compose_train(["model.channels=[4,8]"], tmp_path)
    ckpt = small_checkpoint(tmp_path / "small.ckpt", small.model)
    check_checkpoint(ckpt, small.model)
    check_config(compose_train(["model.channels=[4,8]", f"ckpt_path={ckpt}"], tmp_path))

    message = refusal([f"ckpt_path={ckpt}"], tmp_path)
    assert message == (
        f"ckpt_path={ckpt}: a checkpoint of another net (net.conv1.weight is [4, 1, 3, 3] there, "
        "[16, 1, 3, 3] here); resume=<run dir> resumes a run with its own config"
    )
    bare = tmp_path / "bare.ckpt"  # weights alone: Lightning cannot go on from it
    torch.save({"state_dict": torch.load(ckpt, weights_only=True)["state_dict"]}, bare)
    message = refusal(["model.channels=[4,8]", f"ckpt_path={bare}"], tmp_path)
    assert message.endswith("not a checkpoint Lightning wrote (no pytorch-lightning_version)")
    default = compose_train([], tmp_path).model
    with pytest.raises(ConfigError, match=r"^resume=.*: a checkpoint of another net"):
        check_checkpoint(ckpt, default, key="resume")

    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(ckpt.read_bytes()[:2000])
    message = refusal([f"ckpt_path={truncated}"], tmp_path)
    assert message.startswith(f"ckpt_path={truncated}: not a readable checkpoint (")
    assert "weights_only" not in message

    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint\n")
    message = refusal([f"ckpt_path={text}"], tmp_path)
    assert message.startswith(f"ckpt_path={text}: not a readable checkpoint (")

    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    message = refusal([f"ckpt_path={other}"], tmp_path)
    assert message == f"ckpt_path={other}: not a checkpoint of this project (no state_dict)"

    pickled = tmp_path / "pickled.ckpt"
    torch.save({"state_dict": {}, "object": Path("x")}, pickled)
    message = refusal([f"ckpt_path={pickled}"], tmp_path)
    assert message.startswith(f"ckpt_path={pickled}: not a checkpoint of this project (it holds")
    assert "weights_only" not in message


def test_an_older_run_s_config_without_later_options_passes(tmp_path: Path) -> None:
    """A resumed run's saved config lacks the options added since; their defaults apply."""
    cfg = OmegaConf.create(OmegaConf.to_container(compose_train([], tmp_path)))  # as saved
    with open_dict(cfg):
        for node, key in ((cfg.model, "valid_tail"), (cfg.model, "kernels"),
                          (cfg.data, "drop_last"), (cfg.data, "augment_epochs")):  # fmt: skip
            node.pop(key)
    check_config(cfg)
    cfg.model.pools = ["x"]  # a hand-edited file: refused in one line, not a TypeError
    assert refusal(cfg) == "model.pools[0]='x': must be an integer"
