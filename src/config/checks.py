"""The composed training config, checked before any work (no data staging, no training),
beyond what its types (src/config/schema.py) and ranges (src/config/rules.py) say: whether the
net's layout and a training batch fit, the optimizer and schedule as torch builds them, the
trainer's limits against an epoch's batches, the callbacks, whether the folders can be written
and whether `ckpt_path` is a checkpoint of the configured net. A refused value is one
ConfigError line naming it and what is allowed: each check returns its refusal (None: fine)
and check_config raises the first; a wrong type, a `_target_` that names nothing and a
checkpoint that does not fit are raised where they are found."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import ROUND_CEILING, Decimal
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

import src.lit.views
from src.config.rules import is_int, plain, rules_refusal, uncounted, whole
from src.config.schema import DataConfig, ModelConfig, TrainerConfig, schema, typed
from src.core.architecture import Layer, analyze, plan_layers, totals
from src.core.errors import ConfigError, first_line
from src.core.folders import cannot_make
from src.core.model import Net
from src.data.files import TEST_SIZE, TRAIN_SIZE
from src.lit.module import build_optimization
from src.lit.runs import net_difference, read_state

GIB = 2**30
# The model node's options that build the Net (the others are the module's own).
LAYOUT = tuple(inspect.signature(plan_layers).parameters)
# What MNISTClassifier logs, for a callback to monitor (a test reads them back from a run).
LOGGED_METRICS = (
    "val/acc", "val/acc_best", "val/loss", "train/loss", "train/loss_epoch", "train/acc",
    "test/acc", "test/loss",
)  # fmt: skip


def accelerator(trainer: Mapping[str, Any]) -> str | None:
    """A GPU asked for (trainer=gpu, trainer=ddp) where torch has none: Lightning refuses it
    only as the trainer is built, in words that name neither the option nor the way out."""
    name = trainer["accelerator"]
    usable = {"gpu": torch.cuda.is_available() or torch.backends.mps.is_available(),
              "cuda": torch.cuda.is_available()}  # fmt: skip
    if not usable.get(name, True):
        return (f"trainer.accelerator={name!r}: torch finds no GPU on this machine; use "
                "trainer=cpu, or trainer.accelerator=auto (a GPU where there is one)")  # fmt: skip
    return None


def strategy(trainer: Mapping[str, Any]) -> str | None:
    """ddp_spawn's ranks are functions its parent process runs: a rank's stop reaches the parent
    only as a traceback's text. trainer=ddp starts them as processes that report themselves."""
    name = str(trainer["strategy"])
    if name.startswith(("ddp_spawn", "ddp_notebook", "ddp_fork")):
        return (f"trainer.strategy={name}: not supported (its ranks cannot report a stop); use "
                "trainer=ddp (on the CPU: trainer.accelerator=cpu trainer.devices=2)")  # fmt: skip
    return None


def devices(trainer: Mapping[str, Any]) -> str | None:
    """On the CPU each device is a process: Lightning starts as many as asked, however many cores
    there are (64 on 2 cores run the machine out of memory). GPUs beyond those torch finds
    Lightning refuses itself, as the trainer is built (a one-line error there)."""
    name, count = trainer["accelerator"], trainer["devices"]
    on_cpu = name == "cpu" or (name == "auto" and not torch.cuda.is_available())
    # the cores this process may use (a container's or a CPU set's), not the host's
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    if on_cpu and is_int(count) and count > cores:
        return (f"trainer.devices={count}: more CPU processes than this machine's {cores} "
                f"cores; at most {cores}")  # fmt: skip
    return None


def monitors(callbacks: Mapping[str, Any]) -> str | None:
    """A callback's `monitor` (model_checkpoint's, an early stop's) names a metric the module
    logs: Lightning finds out only at the first validation's end, a whole epoch later."""
    for name, node in callbacks.items():
        monitor = node.get("monitor") if isinstance(node, Mapping) else None
        if monitor is not None and monitor not in LOGGED_METRICS:
            return (f"callbacks.{name}.monitor={monitor}: not a logged metric (one of "
                    f"{', '.join(LOGGED_METRICS)}, or null)")  # fmt: skip
    return None


def batches(trainer: Mapping[str, Any], data: Mapping[str, Any], test: bool) -> str | None:
    """The trainer's batch limits and validation interval against an epoch's batches in each
    process, which Lightning checks only once fit has begun, with the data staged. Left to
    Lightning where it sets the limits itself (fast_dev_run, overfit_batches) and with
    devices=-1 (counted as one process: the counts are then too large, so nothing Lightning
    accepts is refused)."""
    if trainer["fast_dev_run"] or trainer["overfit_batches"]:
        return None
    processes = [trainer["devices"], trainer["num_nodes"]]
    world = math.prod(n for n in processes if is_int(n) and n > 1)

    def count(images: int, batch_size: int, drop_last: bool = False) -> int:
        share = math.ceil(images / world)  # a process's share, rounded up (lenient)
        return share // batch_size if drop_last else math.ceil(share / batch_size)

    counts = {
        "train": count(TRAIN_SIZE - data["val_size"], data["batch_size"], data["drop_last"]),
        "val": count(data["val_size"], data["eval_batch_size"]),
        "test": count(TEST_SIZE, data["eval_batch_size"]),
    }
    left = {}
    for split, total in counts.items():
        limit = whole(trainer[f"limit_{split}_batches"])
        if limit is None or is_int(limit):
            left[split] = total if limit is None else min(total, limit)
            continue
        left[split] = int(total * limit)  # a fraction
        if left[split] == 0 and limit > 0 and (split != "test" or test):
            return (f"trainer.limit_{split}_batches={limit}: less than one of the {total} "
                    f"{split} batches; at least {least_fraction(total)}, or a whole number of "
                    "batches")  # fmt: skip
    interval = whole(trainer["val_check_interval"])
    # Lightning compares the interval with an epoch only where there is both training and
    # validation to run
    if (is_int(interval) and trainer["check_val_every_n_epoch"] is not None
            and left["train"] > 0 and left["val"] > 0 and interval > left["train"]):  # fmt: skip
        return (f"trainer.val_check_interval={interval}: more than an epoch's {left['train']} "
                "training batches (a process's, after trainer.limit_train_batches); at most that, "
                "a fraction of an epoch, or with trainer.check_val_every_n_epoch=null a count "
                "across epochs")  # fmt: skip
    return None


def least_fraction(count: int) -> Decimal:
    """The least fraction of `count` batches that leaves one, two significant digits, rounded
    up."""
    step = Decimal(1).scaleb((Decimal(1) / count).adjusted() - 1)
    least = (Decimal(1) / count).quantize(step, rounding=ROUND_CEILING)
    while int(count * float(least)) < 1:
        least += step
    return least


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


def memory(model: Mapping[str, Any], specs: Sequence[Layer], batch_size: int) -> str | None:
    need, have = training_bytes(specs, model["input_size"], batch_size), available_memory()
    if need > have:
        return (f"model.channels={list(model['channels'])}: one training batch of {batch_size} "
                f"needs about {need / GIB:,.1f} GiB (activations, gradients and parameters, from "
                f"the arithmetic); this machine has {have / GIB:,.1f} GiB available: use fewer "
                "channels or a smaller data.batch_size")  # fmt: skip
    return None


def optimization_options(model: Mapping[str, Any]) -> str | None:
    """Optimizer and scheduler options: each one the torch class takes, of its type (their
    ranges: src.config.rules)."""
    for group in ("optimizer", "scheduler"):
        node = model[group]
        if not node:  # no schedule
            continue
        target = named_target(f"model.{group}", node.get("_target_"))
        if node.get("_partial_") is not True:
            return (f"model.{group}._partial_={node.get('_partial_')!r}: must be true (the module "
                    "hands the class its parameters or optimizer)")  # fmt: skip
        given = "params" if group == "optimizer" else "optimizer"  # the module hands it
        config = schema(target, given=[given], _partial_=True)
        typed(f"model.{group}", options_of(node, keep="_partial_"), config)
    return None


def optimization(model: Mapping[str, Any], total_steps: int) -> str | None:
    """The optimizer and the schedule built on a dummy parameter, so that torch's own checks
    apply too, the schedule over `total_steps` (about the run's)."""
    dummy = [torch.zeros(1, requires_grad=True)]
    # The optimizer alone first, so that torch's refusal is put on the right group.
    for group in ("optimizer", "scheduler"):
        scheduler = model["scheduler"] if group == "scheduler" else {}
        try:
            build_optimization(dummy, model["optimizer"], scheduler, total_steps=total_steps)
        except (ValueError, TypeError, ZeroDivisionError) as err:
            return f"model.{group} ({model[group]['_target_']}): {first_line(err)}"
    return None


def named_target(key: str, target: Any) -> Callable:
    """The class or function a `_target_` names; a ConfigError if it names none."""
    module, _, name = str(target).rpartition(".")
    try:
        found = getattr(importlib.import_module(module), name) if module else None
        inspect.signature(found)  # its options: none to read for a built-in like dict
    except (ImportError, AttributeError, ValueError, TypeError):
        found = None
    if not callable(found):
        raise ConfigError(f"{key}._target_={target}: no such class or function")
    return found


def options_of(node: Mapping[str, Any], keep: str = "_target_") -> dict[str, Any]:
    """A node's options and `_target_` (and `keep`): without Hydra's other keys (_args_,
    _convert_, _recursive_), which the schema of its target does not have."""
    return {k: v for k, v in node.items() if not k.startswith("_") or k in ("_target_", keep)}


def entries(cfg: DictConfig) -> str | None:
    """Each entry of a group of named objects (callbacks, logger) is a mapping or null."""
    for group in ("callbacks", "logger"):
        for name, entry in (plain(cfg.get(group)) or {}).items():
            if entry is not None and not isinstance(entry, Mapping):
                return f"{group}.{name}={entry!r}: must be a _target_ with its options, or null"
    return None


def callbacks(nodes: Mapping[str, Any], layers: Sequence[str]) -> str | None:
    """Each callback's options: those its class takes, of their types (a class that takes
    **kwargs, any more), counts >= 1, and the activation layers (maps: the arithmetic's layers,
    not flatten or log_softmax) by name."""
    for name, node in nodes.items():
        if not node or "_target_" not in node:  # null: left out; no _target_: warned of
            continue
        target = named_target(f"callbacks.{name}", node["_target_"])
        takes_more = any(
            p.kind == p.VAR_KEYWORD for p in inspect.signature(target).parameters.values()
        )
        config = schema(target)
        fields = {field.name for field in dataclasses.fields(config)}
        given = {k: v for k, v in options_of(node).items() if k in fields or not takes_more}
        options = typed(f"callbacks.{name}", given, config)
        if refused := uncounted(f"callbacks.{name}", target.__name__, options):
            return refused
        unknown = [layer for layer in options.get("layers") or () if layer not in layers]
        if target is src.lit.views.ActivationImages and unknown:
            return (f"callbacks.{name}.layers: no layer {unknown[0]!r} in the net (layers: "
                    f"{', '.join(layers)})")  # fmt: skip
    return None


def folders(cfg: DictConfig, data: Mapping[str, Any]) -> str | None:
    """The folders a run writes can be written or made (nothing is created)."""
    named = [("paths.data_dir", cfg.paths.data_dir), ("paths.log_dir", cfg.paths.log_dir)]
    if data["data_dir"] != cfg.paths.data_dir:
        named.append(("data.data_dir", data["data_dir"]))
    for key, folder in named:
        if folder is not None and (reason := cannot_make(str(folder))):
            return f"{key}={folder}: cannot be written ({reason})"
    return None


def check_checkpoint(
    path: str | Path, model_cfg: Mapping[str, Any], key: str = "ckpt_path"
) -> None:
    """`path` is a Lightning checkpoint of this project whose weights fit the net `model_cfg`
    (the model node) builds, a Net on the meta device: no memory is allocated, however wide."""
    with torch.device("meta"):
        net = Net(**{name: model_cfg[name] for name in LAYOUT if name in model_cfg})
    detail = net_difference(net, read_state(path, key, resumable=True))
    if detail:
        raise ConfigError(
            f"{key}={path}: a checkpoint of another net ({detail}); resume=<run dir> resumes a "
            "run with its own config"
        )


def graphs(model: Mapping[str, Any], trainer: Mapping[str, Any]) -> str | None:
    """`model.compile_mode=cuda-graphs` records the training step of one CUDA device, in one
    precision, and hands back each batch's gradients in buffers that the next batch's replay
    overwrites. Refused with it on CUDA: autocast (torch records no step under its cache), several
    processes (DDP's step would need its own warm-up before it is recorded) and gradients
    accumulated over batches (the next replay would overwrite the sum). Elsewhere than on CUDA
    the net runs eagerly, so any trainer goes there: the CPU, Apple's mps, and `accelerator=gpu`
    or `auto` where torch finds no CUDA device."""
    if not (model["compile"] and model["compile_mode"] == "cuda-graphs"):
        return None
    accelerator = trainer.get("accelerator", "auto")
    on_cuda = accelerator == "cuda" or (
        accelerator in ("gpu", "auto") and torch.cuda.is_available()
    )
    if not on_cuda:
        return None
    why = "model.compile_mode=cuda-graphs records the step of"
    precision = str(trainer.get("precision", "32-true"))
    if not (precision.endswith("-true") or precision in ("32", "64")):
        return (
            f"trainer.precision={precision!r}: {why} one precision (32-true, bf16-true, ...); "
            "torch records none under mixed precision's autocast"
        )
    count = trainer.get("devices", 1)
    one_device = count in (1, "1") or (isinstance(count, list) and len(count) == 1)
    name, nodes = str(trainer.get("strategy", "auto")), trainer.get("num_nodes", 1)
    if not one_device or nodes != 1 or name not in ("auto", "single_device"):
        return (
            f"trainer.devices={count!r}, trainer.num_nodes={nodes!r}, "
            f"trainer.strategy={name!r}: {why} one device (trainer=gpu: devices 1, one node, "
            "strategy auto)"
        )
    accumulate = trainer.get("accumulate_grad_batches", 1)
    if accumulate != 1:
        return (
            f"trainer.accumulate_grad_batches={accumulate!r}: {why} one batch: its gradients "
            "come back in buffers that the next batch overwrites, so they cannot add up over "
            "batches; use a larger data.batch_size instead"
        )
    return None


def check_config(cfg: DictConfig) -> None:
    """Every value of a composed training config, before any work; the first refused value is
    a ConfigError. Cheap, except for reading a checkpoint given as ckpt_path."""
    refused = next((line for line in refusals(cfg) if line), None)
    if refused:
        raise ConfigError(refused)


def refusals(cfg: DictConfig) -> Iterator[str | None]:
    """Each check's refusal in turn (None: fine), each later one relying on those before."""
    data = typed("data", plain(cfg.data), DataConfig)
    model = typed("model", plain(cfg.model), ModelConfig)
    trainer = typed("trainer", plain(cfg.trainer), TrainerConfig)
    yield optimization_options(model)
    values = {"seed": cfg.get("seed"), "test": cfg.get("test")}
    yield rules_refusal(
        OmegaConf.create({**values, "data": data, "model": model, "trainer": trainer})
    )
    specs = plan_layers(**{key: model[key] for key in LAYOUT if key in model})
    yield memory(model, specs, data["batch_size"])  # before anything is built from the model
    # the run's steps, about (trainer limits and devices aside)
    steps = math.ceil((TRAIN_SIZE - data["val_size"]) / data["batch_size"]) * trainer["max_epochs"]
    yield optimization(model, total_steps=steps)
    yield accelerator(trainer)
    yield strategy(trainer)
    yield devices(trainer)
    yield batches(trainer, data, test=cfg.test)
    yield graphs(model, trainer)
    yield entries(cfg)
    nodes = plain(cfg.get("callbacks")) or {}
    yield callbacks(nodes, [spec.name for spec in specs])
    yield monitors(nodes)
    yield folders(cfg, data)
    if cfg.get("ckpt_path"):
        check_checkpoint(cfg.ckpt_path, model, key="resume" if cfg.get("resume") else "ckpt_path")
