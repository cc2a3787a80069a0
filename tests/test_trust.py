"""Runs you can trust: exact resume, runs that diverge or are stopped say so, and every refused
value is one line with exit code 2 before any work, through the command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from omegaconf import OmegaConf

from src.config.build import raised_in_job
from src.core.errors import Diverged, Interrupted
from src.data.files import file_md5
from src.inspect import main as inspect_main
from src.lit.guards import STOP_SIGNALS, AtomicCheckpointIO, StopOnDivergence, StopOnSignal
from src.lit.runs import resume_config
from src.train import train

from .helpers import ROOT, TINY, compose_train, in_process, read_events, run_as_main, tiny_cfg

# cli() runs the entry module again in this process, as `python -m` would
pytestmark = pytest.mark.filterwarnings("ignore:'src.train' found in sys.modules")

# 300 tiny training images - 100 for validation = 7 batches of 32 an epoch
STEPS_PER_EPOCH = 7


class SignalAt(L.Callback):
    """Sends this process `signum` (`times` times) after training batch `batch_idx` of epoch
    `epoch`."""

    def __init__(self, signum: int, epoch: int, batch_idx: int, times: int = 1) -> None:
        self.signum, self.epoch, self.batch_idx, self.times = signum, epoch, batch_idx, times

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if (trainer.current_epoch, batch_idx) == (self.epoch, self.batch_idx):
            for _ in range(self.times):
                os.kill(os.getpid(), self.signum)


def saved_run(cfg, run_dir: Path):
    """Writes the run's config where Hydra would, so that `resume_config` finds it."""
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
    return cfg


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    return last["state_dict"]


# A preset's ingredients that draw random numbers: a shuffle, augmentation in the first epochs
# only, dropout; and a schedule stepped by epoch. (Pictures off: they draw no random numbers.)
RANDOM = [
    "model/scheduler=step", "model.dropout=0.1", "data.rotation=10", "data.translate=0.1",
    "data.augment_epochs=2", "trainer.max_epochs=4", "callbacks.kernels=null",
    "callbacks.activations=null", "callbacks.test_views=null",
]  # fmt: skip


@pytest.mark.slow  # three 4-epoch runs with every view
@pytest.mark.parametrize(
    ("signum", "epoch", "batch_idx"),
    # mid-epoch; its last batch (the stop comes in its validation)
    [(signal.SIGTERM, 1, 3), (signal.SIGINT, 2, STEPS_PER_EPOCH - 1)],
)
def test_a_stopped_and_resumed_run_ends_bit_identical(
    tiny_data_dir: Path, tmp_path: Path, signum: int, epoch: int, batch_idx: int
) -> None:
    straight = train(tiny_cfg(tiny_data_dir, tmp_path / "straight", *RANDOM))

    run = tmp_path / "stopped"
    cfg = saved_run(tiny_cfg(tiny_data_dir, run, *RANDOM), run)
    handlers = [signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)]
    with pytest.raises(Interrupted) as stopped:
        train(cfg, extra_callbacks=[SignalAt(signum, epoch, batch_idx)])
    assert stopped.value.epochs_finished == epoch and stopped.value.exit_code == 128 + signum
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == epoch - 1
    assert [signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)] == handlers

    resumed_cfg, _ = resume_config(run)
    resumed = train(resumed_cfg)

    assert resumed["metrics"] == straight["metrics"]  # val/acc_best and test/acc included
    expected, got = final_weights(tmp_path / "straight"), final_weights(run)
    assert expected.keys() == got.keys()
    for name in expected:
        assert torch.equal(expected[name], got[name]), name
    # TensorBoard's curves go on in the same run: every epoch's val/acc once, in order
    steps = [e.step for e in read_events(run).Scalars("val/acc")]
    assert steps == sorted(set(steps)) and len(steps) == 4


def test_a_non_finite_loss_stops_the_run_before_its_epoch_ends(
    tiny_data_dir: Path, tmp_path: Path
) -> None:
    cfg = tiny_cfg(
        tiny_data_dir, tmp_path, "model.batch_norm=false", "model.optimizer.lr=1e30",
        "model/scheduler=none", "trainer.max_epochs=3",
    )  # fmt: skip
    with pytest.raises(Diverged, match=r"became nan at step \d+ \(epoch 0\); lower model.optim"):
        train(cfg)
    assert not (tmp_path / "checkpoints" / "epoch_000.ckpt").exists()  # stopped within epoch 0


def cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str]:
    """(exit code, stderr) of `python -m src.train <args>`, run in this process (the command
    line's path: argv, Hydra, the entry point), which saves the interpreter's start-up."""
    argv, sys.argv = sys.argv, ["src.train", *args]
    try:
        code, _, err = in_process(capsys, run_as_main("src.train"))
    finally:
        sys.argv = argv
    return code, err


@pytest.mark.slow  # a run with every view, through the command line
def test_a_diverged_run_says_so(capsys, tiny_data_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    code, err = cli(
        capsys, f"hydra.run.dir={run}", f"data.data_dir={tiny_data_dir}", "data.offline_dir=null",
        *TINY, "model.optimizer.lr=100", "model/scheduler=none", "callbacks.progress_bar=null",
        "trainer.max_epochs=2",
    )  # fmt: skip
    result = json.loads((run / "result.json").read_text())
    assert code == 1 and result["status"] == "diverged", err
    assert result["error"] in err and "lower model.optimizer.lr (now 100" in err
    assert len([line for line in err.splitlines() if line.startswith("error: ")]) == 1


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.channels=[]", "model.channels=[]: must be a non-empty list"),
        ("model.channels=[16,-4]", "model.channels=[16, -4]: must be a non-empty list of positive"),
        ("data.batch_size=0", "data.batch_size=0: must be an integer >= 1"),
        ("ckpt_path=/no/such.ckpt", "ckpt_path=/no/such.ckpt: no such checkpoint file"),
        ("data.offline_dir=/no/such", "data.offline_dir=/no/such: no such folder"),
        ("trainer.accelerator=mps", "trainer: `MPSAccelerator` can not run on your system"),
        ("trainer.accelerator=quantum", "trainer: You selected an invalid accelerator name"),
        ("+trainer.epochs=3", "trainer.epochs: not an option of Trainer; did you mean"),
        ("+model.optimizer.betas=1", "model.optimizer.betas: not an option of SGD"),
        # values silently taken before
        ("model.batch_norm=often", "model.batch_norm='often': must be true or false"),
        ("test=maybe", "test='maybe': must be true or false"),
        # tracebacks before, often after staging data or training
        ("model.optimizer.lr=-1", "model.optimizer.lr=-1"),
        ("model.optimizer.lr=abc", "model.optimizer.lr='abc'"),
        ("model.optimizer.lr=0", "model.optimizer.lr=0"),
        ("model/scheduler=step model.scheduler.gamma=abc", "model.scheduler.gamma='abc'"),
        ("seed=abc", "seed='abc'"),
        ("seed=-1", "seed=-1"),
        ("trainer.max_epochs=-1", "trainer.max_epochs=-1"),
        ("trainer.max_epochs=0", "trainer.max_epochs=0"),
        ("callbacks.activations.max_maps=0", "callbacks.activations.max_maps=0"),
        ("model.channels=[1000000]", "GiB"),
        ("data.val_size=60000", "data.val_size=60000"),
        ("callbacks.activations.layers=[nope]", "callbacks.activations.layers"),
        ("paths.log_dir=/proc/x", "/proc/x"),
        # the machine run out of memory, or a whole epoch trained, before
        ("trainer.accelerator=cpu trainer.devices=64", "trainer.devices=64: more CPU processes"),
        ("callbacks.model_checkpoint.monitor=val/nope", "monitor=val/nope: not a logged metric"),
        ("+trainer.strategy=ddp_spawn", "trainer.strategy=ddp_spawn: not supported"),
        ("model.optimizer._partial_=false", "model.optimizer._partial_=False: must be true"),
        ("model.optimizer._target_=torch.optim.Nope", "_target_=torch.optim.Nope: no such class"),
        # the output folder named apart from Hydra's run folder, never made
        (
            "callbacks.architecture.receptive_field_figure=maybe paths.output_dir=/nonexistent/run",
            "receptive_field_figure='maybe': must be true or false",
        ),
        # Hydra's own errors: 7 to 50 lines before
        ("experiment=nope", "experiment=nope: no such option (available: best,"),
        (
            "model.chanels=[8]",
            "model.chanels: not an option of MNISTClassifier; did you mean channels?",
        ),
        ("model.channels=[8", "no viable alternative at input '[8'"),
    ],
)
def test_refused_values_are_one_line_before_any_work(
    capsys, tmp_path: Path, override: str, message: str
) -> None:
    logs, data = tmp_path / "logs", tmp_path / "data"
    code, err = cli(capsys, f"paths.log_dir={logs}", f"paths.data_dir={data}", *override.split())
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("error: ") and message in lines[0], err
    assert not data.exists() and not logs.exists()  # nothing staged, no folder of a run left


@pytest.mark.parametrize("damage", ["truncated", "another net", "not a checkpoint"])
def test_a_bad_checkpoint_is_refused_in_one_line(
    capsys, tiny_data_dir: Path, tmp_path: Path, damage: str
) -> None:
    source = tmp_path / "source"
    train(tiny_cfg(tiny_data_dir, source, "trainer.max_epochs=1", "test=false",
                   "model.channels=[8,8]"))  # fmt: skip
    checkpoint = source / "checkpoints" / "last.ckpt"
    if damage == "truncated":
        checkpoint.write_bytes(checkpoint.read_bytes()[:5000])
    elif damage == "not a checkpoint":
        torch.save({"weights": torch.zeros(3)}, checkpoint)
    channels = "model.channels=[16,16]" if damage == "another net" else "model.channels=[8,8]"
    code, err = cli(capsys, f"ckpt_path={checkpoint}", channels, f"hydra.run.dir={tmp_path}/r")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"ckpt_path={checkpoint}" in err and "weights_only" not in err


def test_resume_takes_the_runs_own_config_and_nothing_else(capsys, tmp_path: Path) -> None:
    runs = ROOT / "logs" / "train" / "runs"
    before = set(runs.iterdir()) if runs.is_dir() else set()
    code, err = cli(capsys, f"resume={tmp_path}/nope")
    assert code == 2 and "resume=" in err and "no such run directory" in err, err
    mine = tmp_path / "mine"
    mine.mkdir()  # a folder of the user's, not a run's: refused, and left as it was
    code, err = cli(capsys, f"resume={mine}")
    assert code == 2 and "no .hydra/config.yaml" in err and mine.is_dir(), err
    code, err = cli(capsys, f"resume={mine}", "model.channels=[8]")
    assert code == 2 and "leave out model.channels=[8]" in err, err
    after = set(runs.iterdir()) if runs.is_dir() else set()
    assert after == before  # the fresh run folders Hydra made were removed


def fake_run(tmp_path: Path, status: str) -> Path:
    """A run directory as a stopped run leaves it: config, last.ckpt, result.json."""
    run = tmp_path / status
    saved_run(compose_train([], run), run)
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.ckpt").write_bytes(b"")
    (run / "result.json").write_text(json.dumps({"status": status, "test_acc": 0.99}))
    return run


@pytest.mark.parametrize(("status", "message"), [("ok", "finished"), ("diverged", "diverged")])
def test_a_finished_or_diverged_run_is_not_resumed_nor_touched(
    capsys, tmp_path: Path, status: str, message: str
) -> None:
    run = fake_run(tmp_path, status)
    written = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    code, err = cli(capsys, f"resume={run}")
    assert code == 2 and f"resume={run}: the run {message}" in err, err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == written


def test_a_second_ctrl_c_stops_at_once_and_still_says_interrupted(
    tiny_data_dir: Path, tmp_path: Path
) -> None:
    cfg = tiny_cfg(tiny_data_dir, tmp_path, *RANDOM)
    with pytest.raises(Interrupted, match="interrupted by SIGINT during epoch 0") as stopped:
        train(cfg, extra_callbacks=[SignalAt(signal.SIGINT, 0, 2, times=2)])
    assert stopped.value.exit_code == 130


def run_train(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "src.train", *args],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


@pytest.mark.slow  # two runs, processes of their own
def test_sigterm_stops_the_command_and_resume_goes_on(tiny_data_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = [
        f"data.data_dir={tiny_data_dir}", "data.offline_dir=null", *TINY, "trainer.max_epochs=12",
        "model.channels=[8,8]", "callbacks.progress_bar=null", "callbacks.kernels=null",
        "callbacks.activations=null",
    ]  # fmt: skip
    process = run_train(*args, f"hydra.run.dir={run}")
    last = run / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 120
    while not last.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143, err[-2000:]
    result = json.loads((run / "result.json").read_text())
    assert result["status"] == "interrupted" and 1 <= result["epochs"] < 12, result
    assert "interrupted by SIGTERM" in result["error"] and f"resume={run}" in err
    assert torch.load(last, weights_only=True)["epoch"] == result["epochs"] - 1

    resumed = subprocess.run(
        [sys.executable, "-m", "src.train", f"resume={run}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    result = json.loads((run / "result.json").read_text())
    assert result["status"] == "ok" and result["epochs"] == 12
    assert result["overrides"] == args  # the run's own, for the sweep table
    assert (run / ".hydra" / "resumed" / "overrides.yaml").is_file()


def test_a_process_takes_both_signals_when_its_stage_is_set_up() -> None:
    # a ddp_spawn rank starts with Python's handlers (Ctrl+C raising where torch's wrapper ends
    # it quietly); Lightning installs its SIGTERM handler after setup, and puts back at the end
    # what setup left
    callback = StopOnSignal()
    saved = [signal.getsignal(number) for number in STOP_SIGNALS]
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        callback.setup(None, None, "fit")
        assert [signal.getsignal(number) for number in STOP_SIGNALS] == [callback.handle] * 2
    finally:
        for number, handler in zip(STOP_SIGNALS, saved, strict=True):
            signal.signal(number, handler)


DDP_ON_CPU = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]


@pytest.mark.slow  # a two-process DDP run
@pytest.mark.parametrize(
    ("trainer", "stop", "to_rank_1_only"),
    [
        # Lightning's DDP: Lightning's SIGTERM handler broadcasts from inside itself, which hung
        # a run whose every rank got the signal (a SLURM time limit), in mismatched collectives
        (DDP_ON_CPU, signal.SIGTERM, False),
        # the first process, which got no signal, stops too and names the one rank 1 got
        (DDP_ON_CPU, signal.SIGINT, True),
    ],
)  # fmt: skip
def test_a_signal_stops_every_process_of_a_two_process_run(
    tiny_data_dir: Path, tmp_path: Path, trainer: list[str], stop: signal.Signals,
    to_rank_1_only: bool,
) -> None:  # fmt: skip
    run = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "src.train", f"data.data_dir={tiny_data_dir}",
         "data.offline_dir=null", *TINY, "trainer.max_epochs=1000", "model.channels=[8,8]",
         *(f"callbacks.{name}=null" for name in
           ("progress_bar", "kernels", "activations", "top_patches", "erf", "cam")),
         *trainer, f"hydra.run.dir={run}"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its own process group, as a terminal or SLURM would signal
    )  # fmt: skip
    last = run / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 120
    while not last.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, process.communicate()[1][-2000:]
    if to_rank_1_only:  # Lightning's DDP runs the command again for rank 1, a child process
        children = subprocess.run(["pgrep", "-P", str(process.pid), "-f", "src.train"],
                                  capture_output=True, text=True).stdout.split()  # fmt: skip
        assert len(children) == 1, children
        os.kill(int(children[0]), stop)
    else:
        os.killpg(process.pid, stop)  # every process, as Ctrl+C or a SLURM time limit does
    try:
        _, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"{' '.join(trainer)}: still running 60 s after {stop.name}")
    assert process.returncode == 128 + stop, err[-2000:]
    result = json.loads((run / "result.json").read_text())
    assert result["status"] == "interrupted" and result["epochs"] >= 1, result
    assert result["error"].startswith(f"interrupted by {stop.name} during epoch "), result
    assert err.count("error: interrupted") == 1, err[-2000:]  # the first process's line only


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("experiment=nope", "experiment=nope: no such option (available: best,"),
        ("model.chanels=[8]", "model.chanels: not an option of MNISTClassifier; did you"),
        ("model.optimizer.lr=abc", "model.optimizer.lr='abc': must be a number"),
    ],
)
def test_inspect_refuses_in_one_line_too(capsys, tmp_path: Path, override: str, message: str):
    with pytest.raises(SystemExit) as exit_:
        inspect_main([override, f"paths.log_dir={tmp_path}"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(lines) == 1 and message in lines[0], lines
    assert not list(tmp_path.iterdir())


def test_a_checkpoint_cut_short_while_saving_leaves_the_last_one_whole(tmp_path: Path, monkeypatch):
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"epoch": 1}, path)

    def dies_halfway(self, checkpoint, partial, storage_options=None):
        Path(partial).write_bytes(b"PK\x03\x04 half a zip")
        raise OSError("No space left on device")

    monkeypatch.setattr(TorchCheckpointIO, "save_checkpoint", dies_halfway)
    with pytest.raises(OSError, match="No space left"):
        io.save_checkpoint({"epoch": 2}, path)
    assert torch.load(path, weights_only=True) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no partial file left


def guard_steps(guard: StopOnDivergence, trainer: SimpleNamespace, losses: list[float]) -> None:
    """Feeds `losses` to the guard as training steps, counting trainer.global_step as Lightning
    does (it already counts a step when its on_train_batch_end runs)."""
    module = SimpleNamespace(hparams={"optimizer": {"_target_": "torch.optim.SGD", "lr": 100.0}})
    for loss in losses:
        trainer.global_step += 1
        guard.on_train_batch_end(trainer, module, {"loss": torch.tensor(loss)}, None, 0)


def test_an_epoch_far_worse_than_guessing_has_diverged() -> None:
    guard = StopOnDivergence()
    trainer = SimpleNamespace(
        global_step=0, current_epoch=3, world_size=1, log_every_n_steps=2, is_last_batch=False
    )
    module = SimpleNamespace(hparams={"optimizer": {"_target_": "torch.optim.SGD", "lr": 100.0}})
    guard.on_train_epoch_start(trainer, module)
    guard_steps(guard, trainer, [2.0, 40.0, 30.0])  # finite, but a mean of 24 > 10 x ln(10)
    with pytest.raises(Diverged, match=r"epoch 3's mean training loss is 24, more than 10x"):
        guard.on_train_epoch_end(trainer, module)
    guard.on_train_epoch_start(trainer, module)
    guard_steps(guard, trainer, [22.0])
    guard.on_train_epoch_end(trainer, module)  # below the line: goes on


def test_a_nan_is_found_when_the_losses_are_read_and_named_by_its_step() -> None:
    # Read every 4th step only (no device sync a step), so the NaN of step 6 shows at step 8.
    guard = StopOnDivergence()
    trainer = SimpleNamespace(
        global_step=0, current_epoch=0, world_size=1, log_every_n_steps=4, is_last_batch=False
    )
    guard_steps(guard, trainer, [2.3, 2.2, 2.0, 1.9, 1.7])
    guard_steps(guard, trainer, [float("nan"), 1e30])  # steps 6 and 7: not read yet
    with pytest.raises(Diverged, match=r"became nan at step 6 \(epoch 0\); lower model.opt"):
        guard_steps(guard, trainer, [float("inf")])
    assert trainer.global_step == 8


def test_the_guard_names_the_step_under_gradient_accumulation_and_reads_once_a_step() -> None:
    # accumulate_grad_batches=2: global_step moves every 2nd batch, and the guard reads once on
    # each step that logs (every 2nd), not on every batch of it
    guard = StopOnDivergence()
    trainer = SimpleNamespace(
        global_step=0, current_epoch=0, world_size=1, log_every_n_steps=2, is_last_batch=False
    )
    module = SimpleNamespace(hparams={"optimizer": {"_target_": "torch.optim.SGD", "lr": 100.0}})
    reads = []
    guard.read = lambda t, m: reads.append(t.global_step) or StopOnDivergence.read(guard, t, m)
    for batch, loss in enumerate([2.3, 2.2, 2.1, 2.0, 1.9, float("nan"), 5.0, 4.0]):
        trainer.global_step = (batch + 1) // 2  # after the batch: steps done
        try:
            guard.on_train_batch_end(trainer, module, {"loss": torch.tensor(loss)}, None, batch)
        except Diverged as stop:
            assert batch == 7 and "became nan at step 3 (epoch 0)" in str(stop)
            break
    else:
        pytest.fail("the NaN was never read")
    assert reads == [2, 4]  # once at step 2 (batches 3 and 4), then at step 4


def test_with_no_step_logging_the_guard_reads_at_the_epochs_last_batch_only() -> None:
    guard = StopOnDivergence()
    trainer = SimpleNamespace(
        global_step=0, current_epoch=1, world_size=1, log_every_n_steps=0, is_last_batch=False
    )
    guard_steps(guard, trainer, [2.0, float("inf"), 2.0])
    assert len(guard.unread) == 3  # nothing read yet: no sync on any of these steps
    trainer.is_last_batch = True
    with pytest.raises(Diverged, match=r"became inf at step 2 \(epoch 1\)"):
        guard_steps(guard, trainer, [1.0])


def test_an_os_error_raised_in_any_layer_of_src_keeps_its_traceback() -> None:
    # run_hydra_main turns Hydra's own OSError (a run folder it cannot make) into one line;
    # one raised by the project's code, in any of its packages, is a failed run, not a refusal
    with pytest.raises(OSError) as raised:
        file_md5(Path("/nonexistent/train-images-idx3-ubyte"))
    assert raised_in_job(raised.value)
