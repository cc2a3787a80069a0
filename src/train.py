"""Train and test a Net on MNIST: `python -m src.train [overrides]` (see conf/train.yaml);
`python -m src.train resume=<run dir>` goes on with a stopped run."""

from __future__ import annotations

import json
import logging
import math
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from src.config.build import (
    fail,
    hydra_error_line,
    instantiate,
    instantiate_entries,
    remove_refused_run_dir,
    run_hydra_main,
)
from src.config.checks import check_config
from src.core.architecture import analyze, totals
from src.core.errors import ConfigError, Interrupted, RunStopped
from src.lit.callbacks import warn_unlogged_views
from src.lit.console import quiet_framework
from src.lit.guards import AtomicCheckpointIO, StopOnDivergence, StopOnSignal
from src.lit.runs import resume_config
from src.speed.overhead import lean_steps
from src.speed.relaunch import check_no_relaunch
from src.speed.startup import freeze_imported

log = logging.getLogger(__name__)
# shift/acc_<k>px (callbacks.shift_invariance) that result.json and the sweep table show
SHIFTS_SHOWN = (1, 2, 3, 4)


def train(
    cfg: DictConfig, extra_callbacks: Sequence[L.Callback] = (), in_sweep: bool = False
) -> dict[str, Any]:
    """Fit (and test) as `cfg` says, with `extra_callbacks` (for programs that call this, like
    scripts/benchmark.py) beside the configured ones; `in_sweep`: a job of a -m sweep. Returns
    the final metrics and the net's size. A run that diverges or gets SIGTERM/SIGINT raises
    `Diverged` / `Interrupted`."""
    check_config(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    datamodule: L.LightningDataModule = instantiate(cfg.data)
    model: L.LightningModule = instantiate(cfg.model, _convert_="all")
    # Entries set to null (e.g. callbacks.progress_bar=null) or without a _target_ are left out.
    loggers = instantiate_entries(cfg, "logger")
    callbacks = instantiate_entries(cfg, "callbacks")
    stop_on_signal = StopOnSignal()
    callbacks += [StopOnDivergence(), stop_on_signal, *extra_callbacks]
    trainer: L.Trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=[AtomicCheckpointIO()]
    )
    if in_sweep:
        check_no_relaunch(trainer)
    lean_steps(trainer, model)  # with Lightning's own callbacks too
    warn_unlogged_views(trainer)

    with stop_on_signal:
        try:
            fit_started = time.perf_counter()
            trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
            fit_time = time.perf_counter() - fit_started
            stop_on_signal.check(trainer)  # a signal no batch saw: after the last one
            metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}
            best = float(model.val_acc_best.max_value)  # restored, when resuming a finished fit
            if "val/acc_best" not in metrics and math.isfinite(best):
                metrics["val/acc_best"] = best
            if cfg.test:
                checkpoint = trainer.checkpoint_callback
                best_path = checkpoint.best_model_path if checkpoint else ""
                trainer.test(model, datamodule=datamodule, ckpt_path=best_path or None)
                stop_on_signal.check(trainer, testing=True)
                metrics.update((k, float(value)) for k, value in trainer.callback_metrics.items())
        except BaseException as err:
            # ours; Lightning's own SIGTERM check, or its exit on a second Ctrl+C, may come first
            if stop_on_signal.received is None and not isinstance(err, SIGTERMException):
                raise
            raise stop_on_signal.interrupted(trainer, bool(trainer.testing)) from None

    if trainer.is_global_zero:
        log.info("metrics: %s", {name: round(value, 4) for name, value in sorted(metrics.items())})
    size = totals(analyze(model.net.specs, model.net.input_size))
    shifts = {f"shift_acc_{k}px": metrics.get(f"shift/acc_{k}px") for k in SHIFTS_SHOWN}
    return {
        "params": size["params"],
        "macs": size["macs"],
        "receptive_field": size["receptive_field"],
        # the last layer's view as a fraction of the input's side: under 1, it misses the digit
        "rf_fraction": round(size["receptive_field"] / model.net.input_size, 3),
        "val_acc_best": metrics.get("val/acc_best"),
        "test_acc": metrics.get("test/acc"),
        **shifts,
        "epochs": trainer.current_epoch,
        "fit_time_s": round(fit_time, 3),
        "metrics": metrics,
    }


@hydra.main(version_base="1.3", config_path="../conf", config_name="train.yaml")
def main(cfg: DictConfig) -> float | None:
    """Runs `train` and writes result.json into the run directory, whatever happens: status ok,
    failed, diverged or interrupted. A refused value ends a single run with one line and exit
    code 2, writes nothing and leaves no new run directory (a stopped run that `resume=` named
    keeps its own); a diverged run exits 1, an interrupted one 143 (SIGTERM) or 130 (SIGINT).
    In a sweep a failed or diverged job is recorded and the others go on; a signal stops the
    sweep."""
    started = time.perf_counter()
    quiet_framework()
    hydra_cfg = HydraConfig.get()
    single = hydra_cfg.mode == RunMode.RUN
    output_dir = Path(cfg.paths.output_dir)
    # as typed: an override may hold a ${...} that must not be resolved here
    overrides = OmegaConf.to_container(hydra_cfg.overrides.task, resolve=False)
    result: dict[str, Any] | None = {"overrides": overrides, "status": "failed"}
    resuming_here = bool(cfg.resume) and Path(cfg.resume).resolve() == output_dir.resolve()
    try:
        if cfg.resume:
            cfg, result["overrides"] = checked_resume(cfg, single)
        result.update(train(cfg, in_sweep=not single), status="ok")
        return result["metrics"].get(cfg.optimized_metric)
    except (ConfigError, OmegaConfBaseException) as err:  # a refused value, a bad ${...}
        result["error"] = str(err) if isinstance(err, ConfigError) else hydra_error_line(err)
        if single:  # refused before any work: one line, exit code 2, nothing written
            message, result = result["error"], None
            if resuming_here:  # the stopped run's folder: only this command's traces go
                shutil.rmtree(output_dir / ".hydra" / "resumed", ignore_errors=True)
                log_file = output_dir / "train.log"
                if log_file.is_file() and log_file.stat().st_size == 0:
                    log_file.unlink()
            else:
                # Hydra's own folder: paths.output_dir may name another one
                remove_refused_run_dir(Path(hydra_cfg.runtime.output_dir))
            fail(message)
        log.error("job failed: %s", result["error"])
        return None
    except RunStopped as err:
        result.update(status=err.status, error=str(err), epochs=err.epochs_finished)
        if rank_zero_only.rank > 0:
            # the first process says so and sets the exit code (all stopped at the same batch);
            # Lightning would kill it on this one's non-zero exit, maybe before it has
            return None
        print(f"error: {err}{resume_hint(err, output_dir)}", file=sys.stderr)
        if single or isinstance(err, Interrupted):
            sys.exit(err.exit_code)
        return None
    except Exception as err:
        result["error"] = f"{type(err).__name__}: {err}"
        if not single:
            log.error("job failed: %s", result["error"])
            return None
        raise
    finally:
        # Lightning's DDP runs this whole program in every process: the first one speaks
        if result is not None and rank_zero_only.rank == 0:
            result["wall_time_s"] = round(time.perf_counter() - started, 2)
            (output_dir / "result.json").write_text(json.dumps(result, indent=2) + "\n")


def checked_resume(cfg: DictConfig, single: bool) -> tuple[DictConfig, list[str]]:
    """The stopped run's own config and overrides; `resume=` takes no other overrides."""
    typed = OmegaConf.to_container(HydraConfig.get().overrides.task, resolve=False)
    others = [o for o in typed if not o.startswith("resume=")]
    if not single or others:
        raise ConfigError(
            f"resume={cfg.resume}: goes on with one run, with the run's own config; leave out "
            f"{' '.join(others) or '-m'} (ckpt_path=<checkpoint> starts a new run from one)"
        )
    return resume_config(cfg.resume)


def resume_hint(err: RunStopped, output_dir: Path) -> str:
    if isinstance(err, Interrupted) and (output_dir / "checkpoints" / "last.ckpt").is_file():
        return f"; go on with: python -m src.train resume={output_dir}"
    return ""


if __name__ == "__main__":
    freeze_imported()
    run_hydra_main(main)
