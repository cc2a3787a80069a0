"""The composed training config, checked before any work (no data staging, no training),
beyond what its types (src/config/schema.py) and ranges (src/config/rules.py) say: whether the
net's layout and a training batch fit, the optimizer and schedule as torch builds them, the
trainer's limits against an epoch's batches, the callbacks, whether the folders can be written
and whether `ckpt_path` is a checkpoint of the configured net. A refused value is one
ConfigError line naming it and what is allowed. `check_checkpoint` is public on its own too:
resuming a run calls it."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import math
import os
from collections.abc import Mapping, Sequence
from decimal import ROUND_CEILING, Decimal
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

import src.lit.views
from src.config.rules import check_rules, is_int, is_number, plain
from src.config.schema import DataConfig, ModelConfig, TrainerConfig, schema, typed
from src.core.architecture import Layer, analyze, plan_layers, totals
from src.core.errors import ConfigError, first_line
from src.core.model import Net
from src.data.files import TEST_SIZE, TRAIN_SIZE
from src.lit.module import build_optimization
from src.lit.runs import net_difference, read_state

GIB = 2**30
# The model node's options that build the Net (the others are the module's own).
LAYOUT = tuple(inspect.signature(plan_layers).parameters)
# Callback options that count or divide (max_maps=0 is a ZeroDivisionError after an epoch).
CALLBACK_COUNTS = {
    "KernelImages": ("every_n_epochs", "max_shown"),
    "ActivationImages": ("max_maps",),
    "TestViews": ("max_mistakes",),
    "ShiftInvariance": ("max_shift", "every_nth"),
    "EffectiveReceptiveField": ("every_n_epochs",),
    "TopPatches": ("every_n_epochs", "max_channels", "top_k", "images"),
}
# What MNISTClassifier logs, for a callback to monitor (a test reads them back from a run).
LOGGED_METRICS = (
    "val/acc", "val/acc_best", "val/loss", "train/loss", "train/loss_epoch", "train/acc",
    "test/acc", "test/loss",
)  # fmt: skip
# Kernel file systems: os.access says root may write there, but no folder of ours can be made.
PSEUDO_FILE_SYSTEMS = {
    "proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "debugfs", "securityfs",
    "tracefs", "configfs", "pstore", "bpf",
}  # fmt: skip


def check_accelerator(trainer: Mapping[str, Any]) -> None:
    """A GPU asked for (trainer=gpu, trainer=ddp) where torch has none: Lightning refuses it
    only as the trainer is built, in words that name neither the option nor the way out."""
    accelerator = trainer.get("accelerator", "auto")
    usable = {"gpu": torch.cuda.is_available() or torch.backends.mps.is_available(),
              "cuda": torch.cuda.is_available()}  # fmt: skip
    if not usable.get(accelerator, True):
        raise ConfigError(
            f"trainer.accelerator={accelerator!r}: torch finds no GPU on this machine; use "
            "trainer=cpu, or trainer.accelerator=auto (a GPU where there is one)"
        )


def check_strategy(trainer: Mapping[str, Any]) -> None:
    """ddp_spawn's ranks are functions its parent process runs: a rank's stop reaches the parent
    only as a traceback's text. trainer=ddp starts them as processes that report themselves."""
    strategy = str(trainer.get("strategy", "auto"))
    if strategy.startswith(("ddp_spawn", "ddp_notebook", "ddp_fork")):
        raise ConfigError(
            f"trainer.strategy={strategy}: not supported (its ranks cannot report a stop); use "
            "trainer=ddp (on the CPU: trainer.accelerator=cpu trainer.devices=2)"
        )


def check_devices(trainer: Mapping[str, Any]) -> None:
    """On the CPU each device is a process: Lightning starts as many as asked, however many cores
    there are (64 on 2 cores run the machine out of memory). GPUs beyond those torch finds
    Lightning refuses itself, as the trainer is built (a one-line error there)."""
    accelerator = trainer.get("accelerator", "auto")
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
    # the cores this process may use (a container's or a CPU set's), not the host's
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    devices, cores = plain(trainer.get("devices", 1)), cores or 1
    if on_cpu and is_int(devices) and devices > cores:
        raise ConfigError(
            f"trainer.devices={devices}: more CPU processes than this machine's {cores} cores; "
            f"at most {cores}"
        )


def check_monitors(callbacks: Mapping[str, Any] | None) -> None:
    """A callback's `monitor` (model_checkpoint's, an early stop's) names a metric the module
    logs: Lightning finds out only at the first validation's end, a whole epoch later."""
    for name, node in (callbacks or {}).items():
        monitor = node.get("monitor") if isinstance(node, Mapping) else None
        if monitor is not None and monitor not in LOGGED_METRICS:
            raise ConfigError(
                f"callbacks.{name}.monitor={monitor}: not a logged metric (one of "
                f"{', '.join(LOGGED_METRICS)}, or null)"
            )


def check_trainer_batches(
    trainer: Mapping[str, Any], loader: Mapping[str, Any], test: bool
) -> None:
    """The trainer options that Lightning checks only once fit has begun, with the data staged:
    gradient accumulation, and the batch limits and the validation interval against an epoch's
    batches in each process. Left to Lightning where it sets the limits itself (fast_dev_run,
    overfit_batches) and with devices=-1 (counted as one process: the counts are then too
    large, so nothing Lightning accepts is refused)."""
    every_n_epochs = trainer.get("check_val_every_n_epoch", 1)
    train_size, size = TRAIN_SIZE - loader["val_size"], loader["batch_size"]
    if loader["drop_last"] and size > train_size:
        raise ConfigError(
            f"data.batch_size={size}: more than the {train_size} training images, and "
            "data.drop_last=true leaves out the one shorter batch: no training at all"
        )
    if trainer.get("fast_dev_run") or trainer.get("overfit_batches"):
        return
    processes = [trainer.get("devices", 1), trainer.get("num_nodes", 1)]
    world = math.prod(n for n in processes if is_int(n) and n > 1)

    def batches(images: int, batch_size: int, drop_last: bool = False) -> int:
        share = math.ceil(images / world)  # a process's share, rounded up (lenient)
        return share // batch_size if drop_last else math.ceil(share / batch_size)

    counts = {
        "train": batches(train_size, size, loader["drop_last"]),
        "val": batches(loader["val_size"], loader["eval_batch_size"]),
        "test": batches(TEST_SIZE, loader["eval_batch_size"]),
    }
    limited = {
        split: batches_left(split, trainer.get(f"limit_{split}_batches"), count,
                            used=split != "test" or test)
        for split, count in counts.items()
    }  # fmt: skip
    interval = trainer.get("val_check_interval")
    if isinstance(interval, float) and interval > 1 and interval.is_integer():
        interval = int(interval)  # as Lightning takes it
    if is_int(interval) and interval < 1:
        raise ConfigError(
            f"trainer.val_check_interval={interval}: must be a number of batches >= 1, or a "
            "fraction of an epoch"
        )
    # Lightning compares the interval with an epoch only where there is both training and
    # validation to run
    if (
        is_int(interval) and every_n_epochs is not None
        and limited["train"] > 0 and limited["val"] > 0 and interval > limited["train"]
    ):  # fmt: skip
        raise ConfigError(
            f"trainer.val_check_interval={interval}: more than an epoch's {limited['train']} "
            "training batches (a process's, after trainer.limit_train_batches); at most "
            "that, a fraction of an epoch, or with trainer.check_val_every_n_epoch=null a "
            "count across epochs"
        )


def batches_left(split: str, limit: Any, count: int, used: bool) -> int:
    """The batches of a split that its trainer.limit_<split>_batches leaves of `count`, as
    Lightning reads it: a whole number of batches, or a fraction of them (null: all). A
    fraction that leaves none of a split that is `used` is refused, naming the least that
    leaves one (two significant digits, rounded up)."""
    key = f"trainer.limit_{split}_batches"
    if limit is None:
        return count
    if isinstance(limit, float) and limit > 1 and limit.is_integer():
        limit = int(limit)
    if is_int(limit) and limit >= 0:
        return min(count, limit)
    if not (is_number(limit) and 0 <= limit <= 1):
        raise ConfigError(
            f"{key}={limit!r}: must be a whole number of batches (>= 0) or a fraction of them "
            "in [0, 1]"
        )
    left = int(count * limit)
    if left == 0 and limit > 0 and used:
        step = Decimal(1).scaleb((Decimal(1) / count).adjusted() - 1)
        least = (Decimal(1) / count).quantize(step, rounding=ROUND_CEILING)
        while int(count * float(least)) < 1:
            least += step
        raise ConfigError(
            f"{key}={limit}: less than one of the {count} {split} batches; at least {least}, "
            "or a whole number of batches"
        )
    return left


def training_bytes(specs: Sequence[Layer], input_size: int, batch_size: int) -> int:
    """Bytes one float32 training step needs, from the arithmetic: the input and every layer's
    output (kept for backward) and their gradients, and 4 copies of the parameters (weights,
    gradients, two optimizer states at most)."""
    rows = analyze(specs, input_size)
    values = specs[0].in_channels * input_size**2
    values += sum(row.out_size**2 * row.layer.out_channels for row in rows)
    params = int(totals(rows)["params"])
    return 4 * (2 * batch_size * values + 4 * params)


def available_memory() -> int:
    """Bytes of memory available now: Linux's MemAvailable, else the free pages."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_memory(model: Mapping[str, Any], specs: Sequence[Layer], batch_size: int) -> None:
    need, have = training_bytes(specs, model["input_size"], batch_size), available_memory()
    if need > have:
        raise ConfigError(
            f"model.channels={list(model['channels'])}: one training batch of {batch_size} needs "
            f"about {need / GIB:,.1f} GiB (activations, gradients and parameters, from the "
            f"arithmetic); this machine has {have / GIB:,.1f} GiB available: use fewer channels "
            "or a smaller data.batch_size"
        )


def check_optimization_options(optimizer: Mapping[str, Any], scheduler: Mapping[str, Any]) -> None:
    """Optimizer and scheduler options: each one the torch class takes, of its type (their
    ranges: src.config.rules)."""
    for group, node in (("optimizer", optimizer), ("scheduler", scheduler)):
        if not node:  # no schedule
            continue
        target = named_class(f"model.{group}", node.get("_target_"))
        if node.get("_partial_") is not True:
            raise ConfigError(
                f"model.{group}._partial_={node.get('_partial_')!r}: must be true (the module "
                "hands the class its parameters or optimizer)"
            )
        given = "params" if group == "optimizer" else "optimizer"  # the module hands it
        typed(f"model.{group}", node, schema(target, given=[given], _partial_=True))


def check_optimization(
    optimizer: Mapping[str, Any], scheduler: Mapping[str, Any], total_steps: int
) -> None:
    """The optimizer and the schedule built on a dummy parameter, so that torch's own checks
    apply too, the schedule over `total_steps` (about the run's)."""
    groups = (("optimizer", optimizer), ("scheduler", scheduler))
    dummy = [torch.zeros(1, requires_grad=True)]
    # The optimizer alone first, so that torch's refusal is put on the right group.
    for group, node in groups:
        try:
            build_optimization(dummy, optimizer, scheduler if group == "scheduler" else {},
                               total_steps=total_steps)  # fmt: skip
        except (ValueError, TypeError, ZeroDivisionError) as err:
            raise ConfigError(f"model.{group} ({node['_target_']}): {first_line(err)}") from None


def named_class(key: str, target: Any) -> type:
    """The class a `_target_` names; a ConfigError if it names none."""
    module, _, name = str(target).rpartition(".")
    try:
        found = getattr(importlib.import_module(module), name) if module else None
        inspect.signature(found)  # its options: none to read for a built-in like dict
    except (ImportError, AttributeError, ValueError, TypeError):
        found = None
    if not isinstance(found, type):
        raise ConfigError(f"{key}._target_={target}: no such class")
    return found


def check_entries(group: str, entries: Mapping[str, Any] | None) -> None:
    """Each entry of a group of named objects (callbacks, logger) is a mapping or null."""
    for name, entry in (entries or {}).items():
        if entry is not None and not isinstance(entry, Mapping):
            raise ConfigError(
                f"{group}.{name}={entry!r}: must be a _target_ with its options, or null"
            )


def check_callbacks(callbacks: Mapping[str, Any] | None, layers: Sequence[str]) -> None:
    """Each callback's options: those its class takes, of their types (a class that takes
    **kwargs, any more), counts >= 1, and the activation layers (maps: the arithmetic's layers,
    not flatten or log_softmax) by name."""
    for name, node in (callbacks or {}).items():
        if not node or "_target_" not in node:  # null: left out; no _target_: warned of
            continue
        cls = named_class(f"callbacks.{name}", node["_target_"])
        takes_more = any(
            p.kind == p.VAR_KEYWORD for p in inspect.signature(cls).parameters.values()
        )
        config = schema(cls, **{k: v for k, v in node.items() if k.startswith("_")})
        fields = {field.name for field in dataclasses.fields(config)}
        given = {k: v for k, v in node.items() if k in fields or not takes_more}
        options = typed(f"callbacks.{name}", given, config)
        counts = CALLBACK_COUNTS.get(cls.__name__, ())
        uncounted = next(
            (key for key in counts if not (is_int(options[key]) and options[key] >= 1)), None
        )
        unknown = [layer for layer in options.get("layers") or () if layer not in layers]
        if uncounted:
            raise ConfigError(
                f"callbacks.{name}.{uncounted}={options[uncounted]!r}: must be an integer >= 1"
            )
        if cls is src.lit.views.ActivationImages and unknown:
            raise ConfigError(
                f"callbacks.{name}.layers: no layer {unknown[0]!r} in the net "
                f"(layers: {', '.join(layers)})"
            )


def file_system(path: Path) -> str:
    """The type of the file system `path` lies on, from the mount table ('' if unknown)."""
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return ""
    target, best, kind = str(path.resolve()), "", ""
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):  # the deepest mount, the last one mounted
            best, kind = point, fields[2]
    return kind


def check_writable(key: str, folder: str) -> None:
    """`folder` exists as a writable folder or can be made: its nearest existing ancestor is a
    writable folder. Nothing is created."""
    existing = Path(folder).absolute()
    while not os.path.exists(existing):
        existing = existing.parent
    if not existing.is_dir():
        reason = f"{existing} is a file, not a folder"
    elif not os.access(existing, os.W_OK | os.X_OK):
        reason = f"{existing} is not writable"
    elif (kind := file_system(existing)) in PSEUDO_FILE_SYSTEMS:
        reason = f"{existing} is on the kernel's {kind} file system"
    else:
        return
    raise ConfigError(f"{key}={folder}: cannot be written ({reason})")


def check_checkpoint(
    path: str | Path, model_cfg: Mapping[str, Any], key: str = "ckpt_path"
) -> None:
    """`path` is a Lightning checkpoint of this project whose weights fit the net `model_cfg`
    (the model node) builds, a Net on the meta device: no memory is allocated, however wide."""
    with torch.device("meta"):
        net = Net(**{name: model_cfg[name] for name in LAYOUT if name in model_cfg})
    detail = net_difference(net, read_state(path, key))
    if detail:
        raise ConfigError(
            f"{key}={path}: a checkpoint of another net ({detail}); resume=<run dir> resumes a "
            "run with its own config"
        )


def check_graphs(model: Mapping[str, Any], trainer: Mapping[str, Any]) -> None:
    """`model.compile_mode=cuda-graphs` records the training step of one CUDA device, in one
    precision, and hands back each batch's gradients in buffers that the next batch's replay
    overwrites. Refused with it on CUDA: autocast (torch records no step under its cache), several
    processes (DDP's step would need its own warm-up before it is recorded) and gradients
    accumulated over batches (the next replay would overwrite the sum). Elsewhere than on CUDA
    the net runs eagerly, so any trainer goes there: the CPU, Apple's mps, and `accelerator=gpu`
    or `auto` where torch finds no CUDA device."""
    if not (model.get("compile") and model.get("compile_mode") == "cuda-graphs"):
        return
    accelerator = trainer.get("accelerator", "auto")
    on_cuda = accelerator == "cuda" or (
        accelerator in ("gpu", "auto") and torch.cuda.is_available()
    )
    if not on_cuda:
        return
    why = "model.compile_mode=cuda-graphs records the step of"
    precision = str(trainer.get("precision", "32-true"))
    if not (precision.endswith("-true") or precision in ("32", "64")):
        raise ConfigError(
            f"trainer.precision={precision!r}: {why} one precision (32-true, bf16-true, ...); "
            "torch records none under mixed precision's autocast"
        )
    devices = plain(trainer.get("devices", 1))
    one_device = devices in (1, "1") or (isinstance(devices, list) and len(devices) == 1)
    strategy, nodes = str(trainer.get("strategy", "auto")), trainer.get("num_nodes", 1)
    if not one_device or nodes != 1 or strategy not in ("auto", "single_device"):
        raise ConfigError(
            f"trainer.devices={devices!r}, trainer.num_nodes={nodes!r}, "
            f"trainer.strategy={strategy!r}: {why} one device (trainer=gpu: devices 1, one node, "
            "strategy auto)"
        )
    accumulate = trainer.get("accumulate_grad_batches", 1)
    if accumulate != 1:
        raise ConfigError(
            f"trainer.accumulate_grad_batches={accumulate!r}: {why} one batch: its gradients "
            "come back in buffers that the next batch overwrites, so they cannot add up over "
            "batches; use a larger data.batch_size instead"
        )


def check_config(cfg: DictConfig) -> None:
    """Every value of a composed training config, before any work; the first refused value is
    a ConfigError. Cheap, except for reading a checkpoint given as ckpt_path."""
    data = typed("data", plain(cfg.data), DataConfig)
    model = typed("model", plain(cfg.model), ModelConfig)
    trainer = typed("trainer", plain(cfg.trainer), TrainerConfig)
    check_optimization_options(model["optimizer"], model["scheduler"])
    check_rules(cfg)
    specs = plan_layers(**{key: model[key] for key in LAYOUT if key in model})
    check_memory(model, specs, data["batch_size"])  # before anything is built from the model
    # the run's steps, about (trainer limits and devices aside)
    steps = math.ceil((TRAIN_SIZE - data["val_size"]) / data["batch_size"]) * trainer["max_epochs"]
    check_optimization(model["optimizer"], model["scheduler"], total_steps=steps)
    check_accelerator(trainer)
    check_strategy(trainer)
    check_devices(trainer)
    check_trainer_batches(trainer, data, test=cfg.test)
    check_graphs(model, trainer)
    for group in ("callbacks", "logger"):
        check_entries(group, plain(cfg.get(group)))
    callbacks = plain(cfg.get("callbacks"))
    check_callbacks(callbacks, [spec.name for spec in specs])
    check_monitors(callbacks)
    folders = [("paths.data_dir", cfg.paths.data_dir), ("paths.log_dir", cfg.paths.log_dir)]
    if data["data_dir"] != cfg.paths.data_dir:
        folders.append(("data.data_dir", data["data_dir"]))
    for key, folder in folders:
        if folder is not None:
            check_writable(key, str(folder))
    if cfg.get("ckpt_path"):
        check_checkpoint(cfg.ckpt_path, model, key="resume" if cfg.get("resume") else "ckpt_path")
