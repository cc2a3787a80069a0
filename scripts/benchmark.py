"""Speed benchmark, all in one process on this machine, printed as a table and saved as JSON:

1. one epoch of training batches: the tutorial's loader (torchvision dataset, ToTensor +
   Normalize, DataLoader) against the fast whole-tensor path, and the fast path's share of a
   training step;
2. training throughput (images/s) of a bare PyTorch loop against the project's Lightning
   Trainer (default callbacks and TensorBoard logger on), same net, data, optimizer, schedule
   and number of steps, timed after warm-up; medians over repeats, run alternately;
3. Lightning's own work per training step: the same comparison with a net so small (one conv
   of 4 channels, one image a batch) that the step is nearly all framework; on a GPU, where
   the default net's step is CPU time spent launching kernels, this is what Lightning adds to it;
   also as Python function calls a step, a count that does not move with the machine's speed;
4. host reads per training step under the project's Trainer: calls that read a tensor's value
   to the host (`.item()`, `float()`, `.tolist()`, `.cpu()`, ...), each a host-device sync on a
   GPU; counted on the CPU too, so that they can be kept out without a GPU; on a GPU also every
   synchronizing CUDA call, copies from the host included (torch's sync debug mode);
5. wall clock from the start of fit to the end of fit for `experiment=fast`, and the test
   accuracy it reaches;
6. the same for `experiment=speedrun` (the training step recorded as CUDA graphs on a GPU,
   large batches, nothing but training in the loop), against a bare PyTorch loop with the same
   net, recipe and epochs (then a validation pass, as fit ends with one): each side
   `--fit-repeats` times, alternately; medians; and, where the net is compiled instead
   (`--speedrun-overrides model.compile_mode=reduce-overhead`), the graphs torch.compile made
   (none under model.compile=true: the net ran eagerly).

On a GPU every clock read waits for the GPU first (torch.cuda.synchronize), and the card's name
heads the table and the JSON.

    python scripts/benchmark.py [--repeats 5] [--steps 300] [--fit-repeats 3]
                                [--out logs/benchmark.json]
                                [--fast-overrides KEY=VALUE ...]
                                [--speedrun-overrides KEY=VALUE ...]

Run it from the repository root (data/ and logs/ are taken from there, as `src.train` does);
it needs MNIST in data/ or MNIST_OFFLINE_DIR set (as `make train` does).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from rich.console import Console
from rich.table import Table
from torch.overrides import TorchFunctionMode

from src.config.build import instantiate
from src.data.datamodule import MNISTDataModule, TensorBatches
from src.lit.console import quiet_framework
from src.lit.module import MNISTClassifier, build_optimization, interval
from src.speed.startup import freeze_imported
from src.train import train

ROOT = Path(__file__).resolve().parents[1]
# A net so small that a training step is nearly all framework work (row 3).
TINY_NET = ("model.channels=[4]", "data.batch_size=1")
# Tensor methods and functions that read a value to the host: on a GPU each waits for the work
# queued before it (a host-device sync).
HOST_READS = frozenset({
    "item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__", "__index__",
    "__format__", "nonzero", "equal", "allclose", "unique", "bincount", "masked_select",
})  # fmt: skip
# What torch.cuda.set_sync_debug_mode("warn") warns at each call that waits for the GPU.
SYNC_WARNING = "called a synchronizing CUDA operation"


def clock() -> float:
    """perf_counter once the GPU (if any) has finished what it was given: GPU work is
    asynchronous, and a clock read without a sync times only the queueing."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter()


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"CPU, {os.cpu_count()} cores, {torch.get_num_threads()} threads"


class StepTimer(L.Callback):
    """Times training from the start of batch `warmup` to the end of batch `last` (syncing only
    there, so that the steps between run as they would), and fit from start to end."""

    def __init__(self, warmup: int, last: int | None = None) -> None:
        self.warmup, self.last = warmup, last
        self.start = self.end = self.fit_start = self.fit_end = 0.0

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.fit_start = clock()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if batch_idx == self.warmup:
            self.start = clock()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if batch_idx == self.last:
            self.end = clock()

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.fit_end = clock()


class HostReads(TorchFunctionMode, L.Callback):
    """Counts the host reads (HOST_READS) of each training step, from one batch's start to the
    next one's (so the step's logging and scheduler work count too): `per_step` has one count
    per step but each epoch's last, whose span would hold the validation. With `cuda_syncs` (on
    a GPU) it also counts, in `syncs_per_step`, the calls that torch's sync debug mode reports
    as waiting for the GPU: the host reads, and copies from the host, which no name in
    HOST_READS catches. torch says not every sync warns, so that count is a lower bound; every
    warning in the block is recorded, not shown."""

    def __init__(self, cuda_syncs: bool = False) -> None:
        super().__init__()
        self.count, self.counting = 0, False
        self.per_step: list[int] = []
        self.logging_steps: list[bool] = []
        self.cuda_syncs = cuda_syncs
        self.warned: list[warnings.WarningMessage] = []
        self.warned_before_step = 0
        self.syncs_per_step: list[int] = []

    def __enter__(self) -> HostReads:
        self.restore = contextlib.ExitStack()
        if self.cuda_syncs:
            self.warned = self.restore.enter_context(warnings.catch_warnings(record=True))
            warnings.simplefilter("always")  # every sync, not each place's first
            self.restore.callback(torch.cuda.set_sync_debug_mode, torch.cuda.get_sync_debug_mode())
            torch.cuda.set_sync_debug_mode("warn")
        return super().__enter__()

    def __exit__(self, *exc_info: object) -> None:
        try:
            super().__exit__(*exc_info)
        finally:
            self.restore.close()

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        if self.counting and getattr(func, "__name__", "") in HOST_READS:
            self.count += 1
        return func(*args, **(kwargs or {}))

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if self.counting:
            self.per_step.append(self.count)
            if self.cuda_syncs:
                step = self.warned[self.warned_before_step :]
                self.syncs_per_step.append(sum(SYNC_WARNING in str(w.message) for w in step))
        self.warned_before_step = len(self.warned)
        every = max(trainer.log_every_n_steps, 1)
        self.logging_steps.append((trainer.global_step + 1) % every == 0)
        self.count, self.counting = 0, True

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.counting = False
        self.logging_steps.pop()  # the last step's span went on into validation

    def summary(self) -> dict[str, Any]:
        counted = {"steps": len(self.per_step), **self.maxima(self.per_step)}
        if self.cuda_syncs:
            counted["cuda_syncs"] = self.maxima(self.syncs_per_step)
        return counted

    def maxima(self, per_step: list[int]) -> dict[str, Any]:
        """The counts of each step, and their largest on the steps that log and between."""
        flagged = list(zip(per_step, self.logging_steps, strict=True))
        return {
            "per_step": per_step,
            "max_between_logging_steps": max((n for n, logs in flagged if not logs), default=0),
            "max_on_logging_steps": max((n for n, logs in flagged if logs), default=0),
        }


class PythonCalls(L.Callback):
    """Counts the Python function calls this thread makes (sys.setprofile; the same on any
    machine, unlike times) from the start of training batch `first` to that of batch `last`,
    or, as a context manager, in its block."""

    def __init__(self, first: int = 0, last: int = 0) -> None:
        self.first, self.last, self.calls = first, last, 0
        self.outer = None  # the profile function set before this one, if any

    def count(self, frame, event: str, arg) -> None:  # noqa: ANN001
        if event == "call":
            self.calls += 1

    def __enter__(self) -> PythonCalls:
        self.outer = sys.getprofile()  # a profiler already running (cProfile) is put back after
        sys.setprofile(self.count)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.setprofile(self.outer if callable(self.outer) else None)
        self.calls -= 1  # this call's own

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if batch_idx == self.first:
            self.__enter__()
        elif batch_idx == self.last:
            self.__exit__()

    def per_step(self) -> float:
        return self.calls / (self.last - self.first)


def config(*overrides: str):
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        return compose("train.yaml", overrides=list(overrides))


def epoch_seconds(batches) -> float:
    start = clock()
    for _ in batches:
        pass
    return clock() - start


def bare_loop(module: MNISTClassifier, batches: TensorBatches, steps: int, warmup: int) -> float:
    """Images/s of a plain PyTorch loop over the same net (through the module's forward, as
    model.compile says), optimizer and schedule."""
    module.train()
    hp = module.hparams
    optimizer, scheduler = build_optimization(
        module.parameters(), hp.optimizer, hp.scheduler, steps
    )
    per_batch = interval(scheduler) == "step"
    start = 0.0
    for i, (x, y) in enumerate(batches):
        if i == warmup:
            start = clock()
        if i == steps:
            break
        loss = F.nll_loss(module(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if per_batch:  # an epoch-wise schedule does not move within these few hundred steps
            scheduler.step()
    return (steps - warmup) * batches.batch_size / (clock() - start)


def lightning_loop(
    steps: int, warmup: int, out: Path, *overrides: str, extra_callbacks: tuple = ()
) -> float:
    """Images/s of the project's Trainer (default callbacks and logger) for the same steps."""
    timer = StepTimer(warmup, last=steps - 1)
    cfg = config(
        f"paths.output_dir={out}", "trainer.max_epochs=1", f"+trainer.limit_train_batches={steps}",
        "+trainer.limit_val_batches=0", "test=false", *overrides,
    )  # fmt: skip
    train(cfg, extra_callbacks=[timer, *extra_callbacks])
    return (steps - warmup) * cfg.data.batch_size / (timer.end - timer.start)


def train_batches(cfg, device: torch.device) -> TensorBatches:
    """The fast path's shuffled training batches, on `device`."""
    datamodule: MNISTDataModule = instantiate(cfg.data, loader="fast")
    datamodule.prepare_data()
    datamodule.setup()
    images, labels = (t.to(device) for t in datamodule.splits["train"])
    return TensorBatches(images, labels, cfg.data.batch_size, shuffle=True)


def python_calls(
    cfg, device: torch.device, steps: int, out: Path, overrides: tuple = ()
) -> dict[str, float]:
    """Python function calls a training step: a bare loop's (with building its optimizer and
    schedule once) and Lightning's for `cfg`, both after 10 steps' one-off work."""
    module = instantiate(cfg.model, _convert_="all").to(device)
    batches = train_batches(cfg, device)
    bare_loop(module, batches, 10, warmup=0)
    with PythonCalls() as bare:
        bare_loop(module, batches, steps, warmup=0)
    lightning = PythonCalls(first=10, last=10 + steps)  # after the first steps' one-off work
    lightning_loop(lightning.last + 1, 0, out, *overrides, extra_callbacks=[lightning])
    return {"bare": bare.calls / steps, "lightning": lightning.per_step()}


def alternately(repeats: int, bare: Callable[[], object], project: Callable[[int], object]) -> None:
    """Runs the bare side and the project's side (given the repeat's number) `repeats` times
    each, alternately and in turn first, so that a drift in the machine's speed over the run
    weighs on both alike."""
    for repeat in range(repeats):
        if repeat % 2 == 0:
            bare()
        project(repeat)
        if repeat % 2 == 1:
            bare()


def compare_loops(
    cfg, args: argparse.Namespace, device: torch.device, out: Path, overrides: tuple = ()
) -> dict[str, Any]:
    """Images/s of a bare loop and of Lightning for `cfg`, alternately; medians."""
    batches = train_batches(cfg, device)
    bare, lightning = [], []

    def time_bare() -> None:
        L.seed_everything(cfg.seed, verbose=False)
        module = instantiate(cfg.model, _convert_="all").to(device)
        bare.append(bare_loop(module, batches, args.steps, args.warmup))

    def time_lightning(repeat: int) -> None:
        run_dir = out / f"lightning{repeat}"
        lightning.append(lightning_loop(args.steps, args.warmup, run_dir, *overrides))

    alternately(args.repeats, time_bare, time_lightning)
    return {
        "steps": args.steps, "warmup": args.warmup, "batch_size": cfg.data.batch_size,
        "bare_img_s": bare, "lightning_img_s": lightning,
        "bare_median": statistics.median(bare), "lightning_median": statistics.median(lightning),
        "ratio": statistics.median(lightning) / statistics.median(bare),
    }  # fmt: skip


def at_least_one(text: str) -> int:
    """An argparse type: a whole number >= 1 (argparse turns the error into one line, exit 2)."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be a whole number >= 1")
    return int(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=at_least_one, default=5)
    parser.add_argument("--steps", type=at_least_one, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("logs/benchmark.json"))
    parser.add_argument(
        "--fit-repeats", type=at_least_one, default=3, help="runs of each side of the speedrun row"
    )
    parser.add_argument("--fast-overrides", nargs="*", default=[], help="for the fast row")
    parser.add_argument(
        "--speedrun-overrides", nargs="*", default=[], help="for both sides of the speedrun row"
    )
    args = parser.parse_args()
    quiet_framework()
    results: dict[str, Any] = {
        "device": device_name(),
        "torch": torch.__version__,
        "lightning": L.__version__,
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
    """The measurements; Lightning's runs write their logs under `workdir`."""
    results: dict[str, Any] = {}

    # 1. loaders
    fast_batches = train_batches(cfg, device)
    tutorial_dm: MNISTDataModule = instantiate(cfg.data, loader="torchvision")
    tutorial_dm.setup()
    fast_s = statistics.median(epoch_seconds(fast_batches) for _ in range(5))
    tutorial_s = statistics.median(
        epoch_seconds(tutorial_dm.train_dataloader()) for _ in range(args.repeats)
    )
    results["loader"] = {"tutorial_epoch_s": tutorial_s, "fast_epoch_s": fast_s,
                         "speedup": tutorial_s / fast_s, "batches": len(fast_batches)}  # fmt: skip

    # 2. bare loop vs Lightning
    results["throughput"] = compare_loops(cfg, args, device, workdir / "default")
    step_s = cfg.data.batch_size / results["throughput"]["bare_median"]
    results["loader"]["share_of_step"] = fast_s / len(fast_batches) / step_s

    # 3. the same with a net so small that a step is all framework, in ms a step, and in
    # Python calls a step (which, unlike times, do not move with the machine's speed)
    tiny_cfg = config(*TINY_NET)
    tiny = compare_loops(tiny_cfg, args, device, workdir / "tiny", TINY_NET)
    calls = python_calls(tiny_cfg, device, 100, workdir / "calls", TINY_NET)
    to_ms = 1000 * tiny["batch_size"]
    results["framework_per_step"] = {
        "overrides": list(TINY_NET), "bare_ms": to_ms / tiny["bare_median"],
        "lightning_ms": to_ms / tiny["lightning_median"],
        "added_ms": to_ms / tiny["lightning_median"] - to_ms / tiny["bare_median"],
        "bare_repeats_ms": [to_ms / x for x in tiny["bare_img_s"]],
        "lightning_repeats_ms": [to_ms / x for x in tiny["lightning_img_s"]],
        "bare_python_calls": calls["bare"], "lightning_python_calls": calls["lightning"],
    }  # fmt: skip

    # 4. host reads per step over three logging intervals, default callbacks and logger (the
    # tiny net: the framework's reads do not depend on the net)
    reads = HostReads(cuda_syncs=device.type == "cuda")
    every = cfg.trainer.log_every_n_steps
    with reads:
        lightning_loop(3 * every + 2, 0, workdir / "reads", *TINY_NET, extra_callbacks=[reads])
    results["host_reads"] = {"log_every_n_steps": every, **reads.summary()}

    # 5. time to 99% with the fast preset
    fast_cfg = config("experiment=fast", f"paths.output_dir={workdir / 'fast'}",
                      *args.fast_overrides)  # fmt: skip
    fit_s, result = timed_train(fast_cfg)
    results["time_to_99_fast"] = {
        "preset": "experiment=fast", "epochs": result["epochs"], "params": result["params"],
        "fit_s": fit_s, "test_acc": result["test_acc"], "overrides": args.fast_overrides,
    }  # fmt: skip

    # 6. and with the speedrun preset, against a bare loop with the same recipe
    results["time_to_99_speedrun"] = compare_fits(
        "speedrun", args.speedrun_overrides, args.fit_repeats, device, workdir / "speedrun"
    )
    return results


def timed_train(cfg) -> tuple[float, dict[str, Any]]:
    """Seconds from the start of `train(cfg)`'s fit to its end, and its result."""
    timer = StepTimer(0)
    result = train(cfg, extra_callbacks=[timer])
    return timer.fit_end - timer.fit_start, result


def compare_fits(
    preset: str, overrides: list[str], repeats: int, device: torch.device, out: Path
) -> dict[str, Any]:
    """Fit seconds of `experiment=<preset>` through the project's Trainer and as a bare loop
    with the same recipe (bare_fit), `repeats` times each, alternately; medians. Two steps of
    the bare loop run first, untimed: a compiled net is then in the cache, and the process's
    CUDA start-up done, for both sides alike, as for a sweep's later jobs."""
    cfg = config(f"experiment={preset}", *overrides)
    graphs_before = compiled_graphs()
    bare_fit(cfg, device, max_steps=2)
    bare: list[dict[str, float]] = []
    runs: list[tuple[float, dict[str, Any]]] = []

    def time_lightning(repeat: int) -> None:
        output = f"paths.output_dir={out / str(repeat)}"
        runs.append(timed_train(config(f"experiment={preset}", *overrides, output)))

    alternately(repeats, lambda: bare.append(bare_fit(cfg, device)), time_lightning)
    fit_s, test_accs = [fit for fit, _ in runs], [result["test_acc"] for _, result in runs]
    bare_fit_s = [b["fit_s"] for b in bare]
    return {
        "preset": f"experiment={preset}", "overrides": overrides,
        "epochs": runs[0][1]["epochs"], "params": runs[0][1]["params"],
        "fit_s": statistics.median(fit_s), "fit_s_repeats": fit_s,
        "test_acc": statistics.median(test_accs), "test_acc_repeats": test_accs,
        "bare": {"fit_s": statistics.median(bare_fit_s), "fit_s_repeats": bare_fit_s,
                 "test_acc": statistics.median(b["test_acc"] for b in bare)},
        "ratio": statistics.median(fit_s) / statistics.median(bare_fit_s),
        "compile": cfg.model.compile, "compile_mode": cfg.model.compile_mode,
        "device_type": device.type, "compiled_graphs": compiled_graphs() - graphs_before,
    }  # fmt: skip


def compiled_graphs() -> int:
    """Graphs torch.compile has made in this process: none under model.compile=true means the
    net ran eagerly (see Net.forward)."""
    return torch._dynamo.utils.counters["stats"]["unique_graphs"]


def bare_fit(cfg, device: torch.device, max_steps: int | None = None) -> dict[str, float]:
    """`cfg`'s recipe (net, compilation, data, optimizer, schedule, epochs) as a plain PyTorch
    loop, timed from the first step to the end of a validation pass; and its test accuracy.
    `max_steps` stops it early (a warm-up that compiles the net)."""
    L.seed_everything(cfg.seed, verbose=False)
    datamodule: MNISTDataModule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup()
    splits = {name: [t.to(device) for t in datamodule.splits[name]] for name in datamodule.splits}
    module: MNISTClassifier = instantiate(cfg.model, _convert_="all").to(device)
    hp = module.train().hparams
    batches = TensorBatches(
        *splits["train"], cfg.data.batch_size, shuffle=True, seed=cfg.seed,
        drop_last=cfg.data.drop_last,
    )  # fmt: skip
    steps = len(batches) * cfg.trainer.max_epochs
    optimizer, scheduler = build_optimization(
        module.parameters(), hp.optimizer, hp.scheduler, steps
    )
    per_batch = interval(scheduler) == "step"

    def accuracy(split: str) -> float:
        module.eval()  # the module's forward: eval compiled or not, as model.compile_eval says
        with torch.no_grad():
            images, labels = splits[split]
            parts = zip(
                images.split(cfg.data.eval_batch_size),
                labels.split(cfg.data.eval_batch_size),
                strict=True,
            )
            right = sum(int((module(x).argmax(1) == y).sum()) for x, y in parts)
        module.train()
        return right / len(labels)

    start = clock()
    all_batches = itertools.chain.from_iterable(itertools.repeat(batches, cfg.trainer.max_epochs))
    for batch in itertools.islice(all_batches, max_steps):
        loss, _, _ = module.step(batch, hp.label_smoothing)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if per_batch:
            scheduler.step()
    val_acc = accuracy("val")
    fit_s = clock() - start
    return {"fit_s": fit_s, "val_acc": val_acc, "test_acc": accuracy("test")}


def epochs(n: int) -> str:
    return f"{n} epoch" if n == 1 else f"{n} epochs"


def how_the_step_ran(speedrun: dict[str, Any]) -> str:
    """What the speedrun row says of its step: recorded as CUDA graphs, eager, or the graphs
    torch.compile made (or that it made none)."""
    if not speedrun["compile"]:
        return ", not compiled"
    if speedrun["compile_mode"] == "cuda-graphs":
        if speedrun["device_type"] == "cuda":
            return ", training step as CUDA graphs"
        return ", eager (CUDA graphs need a GPU)"
    if speedrun["compiled_graphs"] == 0:
        return ", COMPILED NOTHING (ran eagerly)"
    return f", {speedrun['compiled_graphs']} graphs compiled"


def print_table(r: dict[str, Any]) -> None:
    loader, tp, fast = r["loader"], r["throughput"], r["time_to_99_fast"]
    speedrun = r["time_to_99_speedrun"]
    bare = speedrun["bare"]
    table = Table(
        title=f"benchmark ({r['device']}; torch {r['torch']}, Lightning {r['lightning']})"
    )
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
        f"Lightning {tp['lightning_median']:.0f}", f"{tp['ratio']:.3f}x",
        ">= 0.95x (CPU), >= 0.90x (GPU)",
    )  # fmt: skip
    per_step, reads = r["framework_per_step"], r["host_reads"]
    table.add_row(
        "Lightning's own work a step (ms; 1 conv of 4 channels, batch 1)",
        f"bare loop {per_step['bare_ms']:.2f}", f"Lightning {per_step['lightning_ms']:.2f}",
        f"+{per_step['added_ms']:.2f} ms", "",
    )  # fmt: skip
    table.add_row(
        "Python calls a training step (the same net)",
        f"bare loop {per_step['bare_python_calls']:,.0f}",
        f"Lightning {per_step['lightning_python_calls']:,.0f}",
        f"{per_step['lightning_python_calls'] / per_step['bare_python_calls']:.1f}x", "",
    )  # fmt: skip
    table.add_row(
        "host reads (GPU syncs) a training step", "",
        f"{reads['max_between_logging_steps']} between logging steps, "
        f"<= {reads['max_on_logging_steps']} on them (every {reads['log_every_n_steps']})",
        "", "0 between",
    )  # fmt: skip
    if "cuda_syncs" in reads:
        syncs = reads["cuda_syncs"]
        table.add_row(
            "CUDA syncs a training step (sync debug mode)", "",
            f"{syncs['max_between_logging_steps']} between logging steps, "
            f"<= {syncs['max_on_logging_steps']} on them", "", "0 between",
        )  # fmt: skip
    table.add_row(
        "experiment=fast: fit to 99.0% test acc", "", f"{fast['fit_s']:.1f} s, "
        f"{epochs(fast['epochs'])}, test acc {100 * fast['test_acc']:.2f}%", "", "<= 20 s (CPU)",
    )  # fmt: skip
    table.add_row(
        "experiment=speedrun: fit to 99.0% (median)",
        f"bare loop {bare['fit_s']:.2f} s, test acc {100 * bare['test_acc']:.2f}%",
        f"{speedrun['fit_s']:.2f} s, {epochs(speedrun['epochs'])}, "
        f"test acc {100 * speedrun['test_acc']:.2f}%{how_the_step_ran(speedrun)}",
        f"{speedrun['ratio']:.2f}x", "<= 1.1x (CPU); <= 1.0 s (H100)",
    )  # fmt: skip
    Console(width=None if sys.stdout.isatty() else 140).print(table)


if __name__ == "__main__":
    freeze_imported()  # as the project's commands do: both sides run in this process alike
    sys.exit(main())
