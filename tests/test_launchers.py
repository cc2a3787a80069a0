"""Beyond one process: a sweep through submitit (each job its own process, as on a cluster), the
SLURM launcher's settings, and the trainer presets for several processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from .helpers import CONF_DIR, ROOT, TINY, read_csv, run_cli


def compose_with_hydra(overrides: list[str]) -> DictConfig:
    """The config `python -m src.train <overrides>` would compose, Hydra's own part included."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return compose("train.yaml", overrides=overrides, return_hydra_config=True)


@pytest.mark.slow  # a sweep, each job in a process of its own
def test_sweep_through_submitit_local(tiny_data_dir: Path, tmp_path: Path) -> None:
    # The default sweep directory (logs/train/multiruns/<date>_<time>_<microseconds>/): each
    # job runs in a process of its own, and must still write into the sweep's directory.
    args = [
        sys.executable, "-m", "src.train", "-m", "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=5", "trainer.max_epochs=1", f"data.data_dir={tiny_data_dir}",
        *TINY, "data.offline_dir=null", "callbacks=none", "logger=none",
        f"paths.log_dir={tmp_path}", "model.channels=[4,8],[8,16]",
    ]  # fmt: skip
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Submitit 'local' sweep output dir" in result.stdout + result.stderr
    [sweep_dir] = (tmp_path / "train" / "multiruns").iterdir()
    for job in ("0", "1"):
        outcome = json.loads((sweep_dir / job / "result.json").read_text())
        assert outcome["status"] == "ok" and outcome["epochs"] == 1, outcome
    # submitit's own record of the two jobs: one folder each, with the job's output
    logs = sorted(sweep_dir.glob(".submitit/*/*_0_log.out"))
    assert len(logs) == 2 and all("Starting with JobEnvironment" in p.read_text() for p in logs)
    rows = read_csv(sweep_dir / "results.csv")
    assert sorted(r["job"] for r in rows) == ["0", "1"]
    assert all(r["status"] == "ok" for r in rows)
    assert {r["overrides"] for r in rows} == {"model.channels=[4,8]", "model.channels=[8,16]"}
    assert "| model.channels=[8,16] |" in (sweep_dir / "results.md").read_text()
    assert "2 finished jobs" in result.stdout


def test_slurm_launcher_takes_partition_gpus_and_time_limit() -> None:
    cfg = compose_with_hydra(
        [
            "hydra/launcher=submitit_slurm", "hydra.launcher.partition=gpu",
            "hydra.launcher.gpus_per_node=1", "hydra.launcher.timeout_min=30", "trainer=gpu",
        ]
    )  # fmt: skip
    launcher = cfg.hydra.launcher
    assert launcher._target_ == (
        "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    )
    assert (launcher.partition, launcher.gpus_per_node, launcher.timeout_min) == ("gpu", 1, 30)
    assert launcher.tasks_per_node == 1 and launcher.nodes == 1  # one process, one GPU a job
    assert cfg.trainer.accelerator == "gpu" and cfg.trainer.devices == 1


def test_ddp_trainer_composes() -> None:
    trainer = compose_with_hydra(["trainer=ddp"]).trainer
    assert trainer._target_ == "lightning.pytorch.trainer.Trainer"
    assert (trainer.accelerator, trainer.devices, trainer.strategy) == ("gpu", -1, "ddp")
    assert trainer.sync_batchnorm is False
    assert trainer.max_epochs == 5 and trainer.precision == "32-true"  # the rest: default


@pytest.mark.slow  # a two-process DDP run
def test_ddp_strategy_starts_the_other_rank_as_a_process(
    tiny_data_dir: Path, tmp_path: Path
) -> None:
    # trainer=ddp with the accelerator set to cpu: Lightning's DDP starts rank 1 by running the
    # same command again, with Hydra's run directory added: both ranks must get the same config
    # and folder.
    result = run_cli(
        "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "debug=fdr",
        f"data.data_dir={tiny_data_dir}", *TINY, f"hydra.run.dir={tmp_path}/run",
        "callbacks.progress_bar=null", "data.offline_dir=null",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "All distributed processes registered. Starting with 2 processes" in (
        result.stderr + result.stdout
    )
    # Both ranks ran the whole program (rank 1 logs to train_ddp_process_1.log or, with some
    # Lightning versions, train.log), and only the first reports: its metrics and result.json.
    logs = "".join(p.read_text() for p in (tmp_path / "run").glob("*.log"))
    assert logs.count("[__main__][INFO] - metrics: ") == 1, logs
    outcome = json.loads((tmp_path / "run" / "result.json").read_text())
    assert outcome["status"] == "ok" and 0 <= outcome["test_acc"] <= 1
