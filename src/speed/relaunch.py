"""A sweep job's check on Lightning's DDP launcher, a private class of Lightning's, kept here
with the project's other uses of private names (tests/test_speed_private.py checks it)."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.strategies.launchers import _SubprocessScriptLauncher

from src.core.errors import ConfigError


def check_no_relaunch(trainer: L.Trainer) -> None:
    """For a job of a -m sweep: Lightning's DDP (its subprocess launcher) starts the other
    processes by running the command again, -m included, so that each would run the whole
    sweep, out of step with the first. Under SLURM, which starts the processes itself, there
    is no launcher and nothing to refuse."""
    launcher = trainer.strategy.launcher
    if isinstance(launcher, _SubprocessScriptLauncher) and launcher.num_processes > 1:
        raise ConfigError(
            f"trainer: {launcher.num_processes} processes ({type(trainer.strategy).__name__}) in a "
            "-m sweep: Lightning starts the others by running this command again, -m included, "
            "so each would run the whole sweep; give each job one GPU (trainer=gpu), or run "
            "trainer=ddp without -m"
        )
