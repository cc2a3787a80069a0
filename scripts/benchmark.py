"""Speed benchmark, all in one process on this machine, printed as a table and saved as JSON:

1. one epoch of training batches: the tutorial's loader (torchvision dataset, ToTensor +
   Normalize, DataLoader) against the fast whole-tensor path, and the fast path's share of a
   training step;
2. training throughput (images/s) of a bare PyTorch loop against the project's Lightning
   Trainer (default callbacks and TensorBoard logger on), same net, data, optimizer, schedule
   and number of steps, timed after warm-up; medians over repeats, run alternately;
3. wall clock from the start of fit to the end of fit for `experiment=fast`, and the test
   accuracy it reaches.

    python scripts/benchmark.py [--repeats 5] [--steps 300] [--out logs/benchmark.json]

Run it from the repository root (data/ and logs/ are taken from there, as `src.train` does);
it needs MNIST in data/ or MNIST_OFFLINE_DIR set (as `make train` does).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from rich.console import Console
from rich.table import Table

from src.config import instantiate
from src.data import MNISTDataModule, TensorBatches
from src.module import SCHEDULER_INTERVAL, MNISTClassifier, build_optimization
from src.train import train

ROOT = Path(__file__).resolve().parents[1]


class StepTimer(L.Callback):
    """Times training from the start of batch `warmup` to the end of the last batch, and fit."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.start = self.end = self.fit_start = self.fit_end = 0.0

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.fit_start = time.perf_counter()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if batch_idx == self.warmup:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self.end = time.perf_counter()

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.fit_end = time.perf_counter()


def config(*overrides: str):
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        return compose("train.yaml", overrides=list(overrides))


def epoch_seconds(batches) -> float:
    start = time.perf_counter()
    for _ in batches:
        pass
    return time.perf_counter() - start


def bare_loop(module: MNISTClassifier, batches: TensorBatches, steps: int, warmup: int) -> float:
    """Images/s of a plain PyTorch loop over the same net, optimizer and schedule."""
    net = module.net.train()
    hp = module.hparams
    optimizer, scheduler = build_optimization(net.parameters(), hp.optimizer, hp.scheduler, steps)
    per_batch = scheduler is not None and SCHEDULER_INTERVAL[hp.scheduler["name"]] == "step"
    start = 0.0
    for i, (x, y) in enumerate(batches):
        if i == warmup:
            start = time.perf_counter()
        if i == steps:
            break
        loss = F.nll_loss(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if per_batch:  # an epoch-wise schedule does not move within these few hundred steps
            scheduler.step()
    return (steps - warmup) * batches.batch_size / (time.perf_counter() - start)


def lightning_loop(steps: int, warmup: int, out: Path, *overrides: str) -> float:
    """Images/s of the project's Trainer (default callbacks and logger) for the same steps."""
    timer = StepTimer(warmup)
    cfg = config(
        f"paths.output_dir={out}", "trainer.max_epochs=1", f"+trainer.limit_train_batches={steps}",
        "+trainer.limit_val_batches=0", "test=false", *overrides,
    )  # fmt: skip
    train(cfg, extra_callbacks=[timer])
    return (steps - warmup) * cfg.data.batch_size / (timer.end - timer.start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("logs/benchmark.json"))
    args = parser.parse_args()
    results: dict[str, Any] = {
        "machine": f"{os.cpu_count()} CPU cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads",
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }
    cfg = config()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with tempfile.TemporaryDirectory(prefix="benchmark-") as tmp:
        results.update(measure(cfg, args, device, Path(tmp)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    print(f"saved {args.out}")
    return 0


def measure(cfg, args: argparse.Namespace, device: torch.device, workdir: Path) -> dict[str, Any]:
    """The three measurements; Lightning's runs write their logs under `workdir`."""
    results: dict[str, Any] = {}

    # 1. loaders
    fast_dm: MNISTDataModule = instantiate(cfg.data, loader="fast")
    fast_dm.prepare_data()
    fast_dm.setup()
    images, labels = (t.to(device) for t in fast_dm.splits["train"])
    fast_batches = TensorBatches(images, labels, cfg.data.batch_size, shuffle=True)
    tutorial_dm: MNISTDataModule = instantiate(cfg.data, loader="torchvision")
    tutorial_dm.setup()
    fast_s = statistics.median(epoch_seconds(fast_batches) for _ in range(5))
    tutorial_s = statistics.median(
        epoch_seconds(tutorial_dm.train_dataloader()) for _ in range(args.repeats)
    )
    results["loader"] = {"tutorial_epoch_s": tutorial_s, "fast_epoch_s": fast_s,
                         "speedup": tutorial_s / fast_s, "batches": len(fast_batches)}  # fmt: skip

    # 2. bare loop vs Lightning, alternately and in turn first, so that a drift in the machine's
    # speed over the run weighs on both alike
    bare, lightning = [], []

    def time_bare() -> None:
        L.seed_everything(cfg.seed, verbose=False)
        module = instantiate(cfg.model, _convert_="all").to(device)
        bare.append(bare_loop(module, fast_batches, args.steps, args.warmup))

    for repeat in range(args.repeats):
        if repeat % 2 == 0:
            time_bare()
        lightning.append(lightning_loop(args.steps, args.warmup, workdir / f"lightning{repeat}"))
        if repeat % 2 == 1:
            time_bare()
    step_s = cfg.data.batch_size / statistics.median(bare)
    results["throughput"] = {
        "steps": args.steps, "warmup": args.warmup, "batch_size": cfg.data.batch_size,
        "bare_img_s": bare, "lightning_img_s": lightning,
        "bare_median": statistics.median(bare), "lightning_median": statistics.median(lightning),
        "ratio": statistics.median(lightning) / statistics.median(bare),
    }  # fmt: skip
    results["loader"]["share_of_step"] = fast_s / len(fast_batches) / step_s

    # 3. time to 99% with the fast preset
    timer = StepTimer(0)
    fast_cfg = config("experiment=fast", f"paths.output_dir={workdir / 'fast'}")
    result = train(fast_cfg, extra_callbacks=[timer])
    results["time_to_99"] = {
        "preset": "experiment=fast", "epochs": result["epochs"], "params": result["params"],
        "fit_s": timer.fit_end - timer.fit_start, "test_acc": result["test_acc"],
    }  # fmt: skip
    return results


def print_table(r: dict[str, Any]) -> None:
    loader, tp, fast = r["loader"], r["throughput"], r["time_to_99"]
    table = Table(title=f"benchmark ({r['cuda'] or r['machine']})")
    for column in ("what", "baseline", "project", "ratio", "target"):
        table.add_column(column)
    table.add_row(
        "one epoch of batches (s)", f"tutorial loader {loader['tutorial_epoch_s']:.2f}",
        f"fast path {loader['fast_epoch_s']:.3f}", f"{loader['speedup']:.0f}x", ">= 50x",
    )  # fmt: skip
    table.add_row(
        "fast path share of a step", "", f"{100 * loader['share_of_step']:.2f}%", "", "< 2%"
    )
    table.add_row(
        "training images/s (median)", f"bare loop {tp['bare_median']:.0f}",
        f"Lightning {tp['lightning_median']:.0f}", f"{tp['ratio']:.3f}x", ">= 0.95x",
    )  # fmt: skip
    table.add_row(
        "fit to 99.0% test acc", "", f"{fast['fit_s']:.1f} s, {fast['epochs']} epochs, "
        f"test acc {100 * fast['test_acc']:.2f}%", "", "<= 20 s",
    )  # fmt: skip
    Console(width=None if sys.stdout.isatty() else 140).print(table)


if __name__ == "__main__":
    sys.exit(main())
