from __future__ import annotations

import json
import subprocess
import sys
import warnings
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.signature_utils import is_param_in_hook_signature

from scripts.benchmark import SYNC_WARNING, HostReads, PythonCalls, alternately, how_the_step_ran
from src.config.build import instantiate
from src.speed.overhead import (
    STEP_HOOKS,
    NoProfiler,
    lean_steps,
    saves_by_epoch_only,
    skip_unused_step_hooks,
)
from src.speed.progress import ProgressBar
from src.train import train

from .helpers import CONF_DIR, NO_VIEWS, ROOT, STEPS_PER_EPOCH, TINY


@pytest.mark.slow
def test_benchmark_script_measures_and_saves(tmp_path: Path, offline_dir: Path) -> None:
    out = tmp_path / "benchmark.json"
    args = [sys.executable, str(ROOT / "scripts" / "benchmark.py"), "--repeats", "1",
            "--steps", "12", "--warmup", "2", "--fit-repeats", "1", "--out", str(out),
            # short runs of both presets: the rows' machinery, not their targets (the README's
            # benchmark runs hold those)
            "--fast-overrides", "trainer.max_epochs=1", "+trainer.limit_train_batches=100",
            "--speedrun-overrides", "model.channels=[8,16,16]", "trainer.max_epochs=1"]  # fmt: skip
    env = {"MNIST_OFFLINE_DIR": str(offline_dir), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    saved = json.loads(out.read_text())
    loader, throughput, fast = saved["loader"], saved["throughput"], saved["time_to_99_fast"]
    speedrun = saved["time_to_99_speedrun"]
    assert loader["batches"] == 430 and loader["speedup"] > 1
    assert loader["speedup"] == pytest.approx(loader["tutorial_epoch_s"] / loader["fast_epoch_s"])
    assert len(throughput["bare_img_s"]) == len(throughput["lightning_img_s"]) == 1
    assert throughput["ratio"] == pytest.approx(
        throughput["lightning_median"] / throughput["bare_median"]
    )
    assert fast["epochs"] == 1 and fast["params"] == 18_482 and 0.5 < fast["test_acc"] <= 1
    assert fast["overrides"] == ["trainer.max_epochs=1", "+trainer.limit_train_batches=100"]
    tiny, reads = saved["framework_per_step"], saved["host_reads"]
    assert tiny["added_ms"] == pytest.approx(tiny["lightning_ms"] - tiny["bare_ms"])
    assert reads["steps"] == 3 * 50 + 1 and reads["max_between_logging_steps"] == 0
    assert reads["max_on_logging_steps"] >= 2
    # the preset through Lightning and the same recipe as a bare loop
    assert speedrun["epochs"] == 1 and 0.5 < speedrun["test_acc"] <= 1
    assert speedrun["bare"]["fit_s"] > 0 and 0.5 < speedrun["bare"]["test_acc"] <= 1
    assert len(speedrun["fit_s_repeats"]) == len(speedrun["bare"]["fit_s_repeats"]) == 1
    assert speedrun["ratio"] == pytest.approx(speedrun["fit_s"] / speedrun["bare"]["fit_s"])
    # its step as CUDA graphs on a GPU: here eager, and the row says so
    assert speedrun["compile_mode"] == "cuda-graphs" and speedrun["device_type"] == "cpu"
    assert speedrun["compiled_graphs"] == 0
    assert saved["device"].startswith("CPU")
    assert "experiment=speedrun" in result.stdout


@pytest.mark.parametrize(
    ("row", "words"),
    [
        ({"compile": False}, ", not compiled"),
        ({"compile": True, "compile_mode": "cuda-graphs", "device_type": "cuda"},
         ", training step as CUDA graphs"),
        ({"compile": True, "compile_mode": "cuda-graphs", "device_type": "cpu"},
         ", eager (CUDA graphs need a GPU)"),
        # the net compiled: torch 2.11 once compiled nothing under model.compile=true
        ({"compile": True, "compile_mode": "default", "compiled_graphs": 2},
         ", 2 graphs compiled"),
        ({"compile": True, "compile_mode": "reduce-overhead", "compiled_graphs": 0},
         ", COMPILED NOTHING (ran eagerly)"),
    ],
)  # fmt: skip
def test_speedrun_row_says_how_the_step_ran(row: dict, words: str) -> None:
    assert how_the_step_ran(row) == words


def default_cfg(data_dir: Path, out: Path, *overrides: str):
    """The default config (progress bar and TensorBoard included) on the tiny data."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return compose(
            config_name="train.yaml",
            overrides=[
                f"paths.root_dir={ROOT}", f"paths.output_dir={out}", "data.offline_dir=null",
                f"data.data_dir={data_dir}", *TINY, *overrides,
            ],
        )  # fmt: skip


@pytest.mark.slow  # two epochs with every default callback
def test_training_steps_read_nothing_from_the_device_between_logging_steps(
    tiny_data_dir: Path, tmp_path: Path
) -> None:
    # On a GPU each read is a host-device sync; the default callbacks and logger read values
    # only on the steps that log (here every 3rd), and the counter does see those.
    every_3rd = ("trainer.log_every_n_steps=3", "trainer.max_epochs=2")
    cfg = default_cfg(tiny_data_dir, tmp_path, *every_3rd)
    reads, shown = HostReads(), {}

    class ProgressBarShows(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
            if (trainer.current_epoch, batch_idx) == (1, 0):  # not a logging step
                reads.counting = False  # this probe's own reads do not count
                bar = trainer.progress_bar_callback
                shown["epoch_1_start"] = bar.get_metrics(trainer, pl_module)
                shown["acc_0"] = float(trainer.callback_metrics["train/acc"])  # epoch 0's
                reads.counting = True

        def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            bar = trainer.progress_bar_callback
            shown.update(bar.get_metrics(trainer, pl_module), logged=trainer.logged_metrics)

    with reads:
        train(cfg, extra_callbacks=[reads, ProgressBarShows()])
    # the progress bar still shows the loss (as last logged), and the accuracy of the epoch
    # just ended from the next epoch's first step on
    assert shown["train/loss"] == pytest.approx(float(shown["logged"]["train/loss"]))
    assert shown["epoch_1_start"]["train/acc"] == pytest.approx(shown["acc_0"])
    counted = reads.summary()
    assert counted["steps"] == 2 * (STEPS_PER_EPOCH - 1)  # each epoch's last step is left out
    assert counted["max_between_logging_steps"] == 0, counted["per_step"]
    assert counted["max_on_logging_steps"] >= 2, counted["per_step"]  # the loss, the log write


def test_the_host_read_counter_counts_reads_and_nothing_else() -> None:
    reads = HostReads()
    x = torch.arange(4.0)
    with reads:
        reads.counting = True
        y = (x * 2).sum()  # device work: no read
        assert reads.count == 0
        float(y), y.item(), x.tolist(), bool(x[1] > 0), x.cpu()
    assert reads.count == 5


def test_on_a_gpu_the_counter_counts_each_steps_cuda_syncs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No GPU here: torch's sync debug mode is stood in for by its warnings, raised by hand.
    modes = []
    monkeypatch.setattr(torch.cuda, "set_sync_debug_mode", modes.append)
    monkeypatch.setattr(torch.cuda, "get_sync_debug_mode", lambda: 2)  # "error", set before
    reads = HostReads(cuda_syncs=True)
    trainer = SimpleNamespace(log_every_n_steps=2, global_step=0)
    with reads:
        warnings.warn(SYNC_WARNING, stacklevel=1)  # before the first step: not counted
        for step, syncs in enumerate([0, 2, 0, 1]):
            trainer.global_step = step
            reads.on_train_batch_start(trainer, None, None, step)
            for _ in range(syncs):
                warnings.warn(SYNC_WARNING, stacklevel=1)
            warnings.warn("another warning", stacklevel=1)  # not a sync
        reads.on_train_epoch_end(trainer, None)  # the last step's span is left out
    assert modes == ["warn", 2]  # the mode set before is set again
    counted = reads.summary()["cuda_syncs"]
    assert counted["per_step"] == [0, 2, 0]
    # global_step 1 (the second step) ends on a logging step
    assert counted["max_on_logging_steps"] == 2 and counted["max_between_logging_steps"] == 0
    assert "cuda_syncs" not in HostReads().summary()  # on the CPU there are none to count


@pytest.mark.slow  # an epoch with every default callback, profiled
def test_lightning_calls_only_the_step_hooks_that_callbacks_and_module_override(
    tiny_data_dir: Path, tmp_path: Path
) -> None:
    # Lightning's profiler sees every hook it calls: the unused step hooks (most of 18 callbacks
    # x 6 hooks a step, and the module's) are skipped, the overridden ones still run each step.
    cfg = default_cfg(tiny_data_dir, tmp_path, "trainer.profiler=simple", "trainer.max_epochs=1")
    seen: dict[str, object] = {"before_backward": 0}

    class Probe(L.Callback):
        def on_before_backward(self, trainer, pl_module, loss) -> None:
            seen["before_backward"] += 1

        def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            seen["actions"] = set(trainer.profiler.recorded_durations)
            seen["callbacks"] = list(trainer.callbacks)

    probe = Probe()
    train(cfg, extra_callbacks=[probe])
    actions = seen["actions"]
    assert seen["before_backward"] == STEPS_PER_EPOCH
    assert f"[Callback]{probe.state_key}.on_before_backward" in actions
    assert "[Callback]LearningRateCurve.on_train_batch_start" in actions
    assert "[LightningModule]MNISTClassifier.optimizer_step" in actions  # not a batch hook
    overridden = {
        f"[Callback]{cb.state_key}.{hook}" for cb in seen["callbacks"] for hook in STEP_HOOKS
        if getattr(type(cb), hook) is not getattr(L.Callback, hook)
    }  # fmt: skip
    # the checkpoints save by epochs only: their batch-end hook would return at once
    checkpoints = [cb for cb in seen["callbacks"] if isinstance(cb, ModelCheckpoint)]
    assert len(checkpoints) == 2 and all(saves_by_epoch_only(cb) for cb in checkpoints)
    overridden -= {f"[Callback]{cb.state_key}.on_train_batch_end" for cb in checkpoints}
    step_hooks = {a for a in actions if a.split(".")[-1] in STEP_HOOKS}
    module_hooks = {a for a in step_hooks if a.startswith("[LightningModule]")}
    assert module_hooks == set(), module_hooks  # MNISTClassifier overrides none of them
    assert "[LightningModule]MNISTClassifier.configure_gradient_clipping" not in actions
    called = {a for a in step_hooks if a.startswith("[Callback]")}
    assert called == overridden, sorted(called ^ overridden)
    assert len(seen["callbacks"]) >= 15 and len(called) < 10, sorted(called)


@pytest.mark.slow  # the script in a process of its own (in this one: test_startup.py)
def test_the_benchmark_refuses_a_repeat_count_below_one(tmp_path: Path) -> None:
    args = [sys.executable, str(ROOT / "scripts" / "benchmark.py"), "--fit-repeats", "0"]
    result = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and not (tmp_path / "logs").exists()
    assert result.stderr.splitlines()[-1].endswith(
        "argument --fit-repeats: '0': must be a whole number >= 1"
    )


def test_the_two_sides_of_a_comparison_run_alternately_each_in_turn_first() -> None:
    order = []
    alternately(4, lambda: order.append("bare"), lambda repeat: order.append(repeat))
    assert order == ["bare", 0, 1, "bare", "bare", 2, 3, "bare"]


def test_the_python_call_counter_counts_this_threads_calls() -> None:
    def f() -> None:
        pass

    with PythonCalls() as counter:
        for _ in range(5):
            f()
    assert counter.calls == 5


def test_the_default_profiler_makes_no_context_manager_per_hook_call(tmp_path: Path) -> None:
    profiler = instantiate(default_cfg(tmp_path, tmp_path).trainer.profiler)
    assert isinstance(profiler, NoProfiler)
    first = profiler.profile("[Callback]LearningRateCurve.on_train_batch_start")
    assert profiler.profile("[LightningModule]MNISTClassifier.optimizer_step") is first
    with first, first:  # reentrant, as nested hook calls need
        pass


def test_the_progress_bar_stops_without_waiting_for_its_redraw_thread(
    tiny_data_dir: Path, tmp_path: Path
) -> None:
    # Lightning's redraw thread sleeps 1/refresh_rate seconds between redraws (100 s here), and
    # its stop used to wait for it: the end of every stage (fit, test) waited up to that long.
    cfg = default_cfg(
        tiny_data_dir, tmp_path, "callbacks.progress_bar=null", "trainer.max_epochs=1", *NO_VIEWS
    )
    slow_bar, threads = ProgressBar(refresh_rate=0.01), []  # type: ignore[arg-type]

    class Probe(L.Callback):
        def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            threads.append(trainer.progress_bar_callback.progress.live._refresh_thread)

    train(cfg, extra_callbacks=[slow_bar, Probe()])
    thread = threads[0]
    assert thread is not None and thread.done.is_set()  # told to stop...
    assert thread.is_alive()  # ...and the run went on without waiting for it to wake


def test_the_module_records_its_current_hook_in_one_call(tmp_path: Path) -> None:
    module = instantiate(default_cfg(tmp_path, tmp_path).model, _convert_="all")
    lean_steps(SimpleNamespace(callbacks=[], gradient_clip_val=None), module)  # as train() does
    with PythonCalls() as counter:
        module._current_fx_name = "on_train_batch_start"  # as Lightning does around each hook
    assert counter.calls == 1  # nn.Module.__setattr__ and its 2 isinstance checks: 3
    assert module._current_fx_name == "on_train_batch_start"
    # every other attribute still goes through nn.Module: parameters and submodules register
    module.scale = torch.nn.Parameter(torch.ones(1))
    module.extra = torch.nn.Linear(1, 1)
    assert "scale" in dict(module.named_parameters()) and "extra" in dict(module.named_children())
    plain = L.LightningModule()
    with PythonCalls() as counter:
        plain._current_fx_name = "on_train_batch_start"
    assert counter.calls == 3  # what lean_steps saves, lest this test outlive its reason


def test_lightning_reads_the_training_steps_signature_without_building_it(tmp_path: Path) -> None:
    # what Lightning asks at every step: does training_step take batch_idx?
    def takes_batch_idx(module: L.LightningModule) -> tuple[bool, int]:
        with PythonCalls() as counter:
            answer = is_param_in_hook_signature(module.training_step, "batch_idx", min_args=2)
        return answer, counter.calls

    class Plain(L.LightningModule):
        def training_step(self, batch: torch.Tensor, batch_idx: int) -> None:
            pass

    module = instantiate(default_cfg(tmp_path, tmp_path).model, _convert_="all")
    lean_steps(SimpleNamespace(callbacks=[], gradient_clip_val=None), module)  # as train() does
    (answer, calls), (plain_answer, plain_calls) = takes_batch_idx(module), takes_batch_idx(Plain())
    assert answer is plain_answer is True
    assert calls < plain_calls - 15, (calls, plain_calls)


def test_hooks_set_on_the_instance_are_kept() -> None:
    # LambdaCallback sets its hooks on the instance; only the base's own empty hooks go
    seen = []
    by_lambda = L.pytorch.callbacks.LambdaCallback(on_train_batch_end=lambda *a: seen.append(1))
    plain = L.Callback()
    module = L.LightningModule()
    skip_unused_step_hooks(SimpleNamespace(callbacks=[by_lambda, plain], gradient_clip_val=None),
                           module)  # fmt: skip
    by_lambda.on_train_batch_end()
    assert seen == [1] and by_lambda.on_train_batch_start is None
    assert plain.on_train_batch_end is None and module.on_before_backward is None


def test_checkpoints_keep_their_batch_end_hook_only_where_they_save_within_an_epoch(
    tmp_path: Path,
) -> None:
    by_epoch = ModelCheckpoint(dirpath=tmp_path)
    by_steps = ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=100)
    by_time = ModelCheckpoint(dirpath=tmp_path, train_time_interval=timedelta(minutes=10))

    class Own(ModelCheckpoint):  # a subclass's own batch-end hook stays
        def on_train_batch_end(self, *args: object) -> None:
            pass

    own = Own(dirpath=tmp_path)
    callbacks = [by_epoch, by_steps, by_time, own]
    skip_unused_step_hooks(SimpleNamespace(callbacks=callbacks, gradient_clip_val=None),
                           L.LightningModule())  # fmt: skip
    assert by_epoch.on_train_batch_end is None
    assert callable(by_steps.on_train_batch_end) and callable(by_time.on_train_batch_end)
    assert callable(own.on_train_batch_end)


@pytest.mark.parametrize(("clip", "clips"), [(None, False), (0, False), (0.5, True)])
def test_gradient_clipping_is_skipped_only_where_the_trainer_clips_nothing(
    clip: float | None, clips: bool
) -> None:
    module = L.LightningModule()
    skip_unused_step_hooks(SimpleNamespace(callbacks=[], gradient_clip_val=clip), module)
    assert callable(module.configure_gradient_clipping) is clips


def test_a_run_with_gradient_clipping_still_clips(tiny_data_dir: Path, tmp_path: Path) -> None:
    # SGD without weight decay moves a weight by lr x its clipped gradient (with momentum, at
    # most 10x that): gradients clipped to 1e-9 leave the convs as they were
    weights: list[torch.Tensor] = []
    steps: list[int] = []

    class Weights(L.Callback):
        def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            weights.append(pl_module.net.conv1.weight.detach().clone())

        def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            weights.append(pl_module.net.conv1.weight.detach().clone())
            steps.append(trainer.global_step)

    cfg = default_cfg(
        tiny_data_dir, tmp_path, "trainer.max_epochs=1", "test=false", "logger=none",
        "+trainer.gradient_clip_val=1e-9", "+trainer.gradient_clip_algorithm=value",
    )  # fmt: skip
    train(cfg, extra_callbacks=[Weights()])
    start, end = weights
    assert steps == [STEPS_PER_EPOCH] and (end - start).abs().max() < 1e-8


SPEED_CHECKS = ROOT / "scripts" / "speed_checks.sh"


def fake_python(tmp_path: Path, seconds: int) -> Path:
    """A stand-in for python that notes its arguments, then sleeps."""
    fake = tmp_path / "python"
    fake.write_text(f'#!/bin/sh\necho "$*" >> {tmp_path}/calls\nexec sleep {seconds}\n')
    fake.chmod(0o755)
    return fake


def test_speed_checks_stops_a_check_at_its_time_limit_and_goes_on(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHON": str(fake_python(tmp_path, 60)), "LIMIT_S": "1",
           "OUT": str(tmp_path / "out")}  # fmt: skip
    result = subprocess.run(
        ["bash", str(SPEED_CHECKS), "benchmark", "eager-eval"],
        env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 124, result.stderr  # the first failure: out of time, not tee's 0
    benchmark, eager = (tmp_path / "calls").read_text().splitlines()
    assert eager.startswith("-m src.train -m experiment=speedrun seed=0,1,2,3,4")
    assert "model.compile_eval=false" in eager.split()
    assert benchmark.startswith("scripts/benchmark.py --repeats 3")
    assert (tmp_path / "out" / "eager-eval.txt").exists()
    assert (tmp_path / "out" / "benchmark.txt").exists()


@pytest.mark.parametrize(
    ("args", "limit", "message"),
    [
        (["speedrun", "fast"], "5",
         "check 'fast': must be speedrun, benchmark, eager, compiled, eager-eval, fused-adam or "
         "bf16"),
        (["speedrun"], "0", "LIMIT_S='0': must be a whole number of seconds >= 1"),
    ],
)  # fmt: skip
def test_speed_checks_refuses_bad_input_before_running_anything(
    tmp_path: Path, args: list[str], limit: str, message: str
) -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHON": str(fake_python(tmp_path, 0)), "LIMIT_S": limit,
           "OUT": str(tmp_path / "out")}  # fmt: skip
    result = subprocess.run(
        ["bash", str(SPEED_CHECKS), *args], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert result.stderr.strip() == f"speed_checks.sh: {message}"  # one line
    assert not (tmp_path / "calls").exists() and not (tmp_path / "out").exists()
