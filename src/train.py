"""Train and test a Net on MNIST: `python -m src.train [overrides]` (see conf/train.yaml)."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from src.architecture import analyze, totals
from src.config import instantiate
from src.console import quiet_framework
from src.errors import ConfigError

log = logging.getLogger(__name__)


def train(cfg: DictConfig, extra_callbacks: Sequence[L.Callback] = ()) -> dict[str, Any]:
    """Fit (and test) as `cfg` says, with `extra_callbacks` (for programs that call this, like
    scripts/benchmark.py) beside the configured ones; returns the final metrics and the net's
    size."""
    if cfg.ckpt_path and not Path(cfg.ckpt_path).is_file():
        raise ConfigError(f"ckpt_path={cfg.ckpt_path}: no such checkpoint file")
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    datamodule: L.LightningDataModule = instantiate(cfg.data)
    model: L.LightningModule = instantiate(cfg.model, _convert_="all")
    # Entries set to null on the command line (e.g. callbacks.progress_bar=null) are left out.
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c]
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    callbacks += extra_callbacks
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)

    fit_started = time.perf_counter()
    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
    fit_time = time.perf_counter() - fit_started
    metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}
    if cfg.test:
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        trainer.test(model, datamodule=datamodule, ckpt_path=best or None)
        metrics.update((name, float(value)) for name, value in trainer.callback_metrics.items())

    log.info("metrics: %s", {name: round(value, 4) for name, value in sorted(metrics.items())})
    size = totals(analyze(model.net.specs, model.net.input_size))
    return {
        "params": size["params"],
        "macs": size["macs"],
        "receptive_field": size["receptive_field"],
        "val_acc_best": metrics.get("val/acc_best"),
        "test_acc": metrics.get("test/acc"),
        "epochs": trainer.current_epoch,
        "fit_time_s": round(fit_time, 3),
        "metrics": metrics,
    }


@hydra.main(version_base="1.3", config_path="../conf", config_name="train.yaml")
def main(cfg: DictConfig) -> float | None:
    """Runs `train` and writes result.json into the run directory, whatever happens. A bad
    value ends a single run with one line and exit code 2; in a sweep, a failed job is
    recorded as failed and the other jobs go on."""
    started = time.perf_counter()
    quiet_framework()
    hydra_cfg = HydraConfig.get()
    result: dict[str, Any] = {"overrides": list(hydra_cfg.overrides.task), "status": "failed"}
    try:
        result.update(train(cfg), status="ok")
        return result["metrics"].get(cfg.optimized_metric)
    except Exception as err:
        result["error"] = (
            str(err) if isinstance(err, ConfigError) else f"{type(err).__name__}: {err}"
        )
        if hydra_cfg.mode == RunMode.MULTIRUN:
            log.error("job failed: %s", result["error"])
            return None
        if isinstance(err, ConfigError):
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        raise
    finally:
        result["wall_time_s"] = round(time.perf_counter() - started, 2)
        (Path(cfg.paths.output_dir) / "result.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
