"""The composed training config, checked before any work (no data staging, no training): every
value's type and range, whether a training batch fits in memory, whether the folders can be
written and whether `ckpt_path` is a checkpoint of the configured net. A refused value is one
ConfigError line naming it and what is allowed, e.g. `model.batch_norm='no': must be true or
false`. `check_checkpoint` is public on its own too: resuming a run calls it."""

from __future__ import annotations

import importlib
import inspect
import math
import os
import pickle
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from decimal import ROUND_CEILING, Decimal
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

import src.lit.callbacks
import src.lit.views
import src.speed.progress
from src.core.architecture import Layer, analyze, plan_layers, totals
from src.core.errors import ConfigError, first_line
from src.core.model import Net
from src.data.datamodule import MNISTDataModule
from src.data.files import TEST_SIZE, TRAIN_SIZE
from src.lit.module import COMPILE_MODES, MNISTClassifier, build_optimization

# A rule: (does the value fit, what "must be" says when it does not).
Rule = tuple[Callable[[Any], bool], str]

MAX_SEED = 2**32 - 1  # the seed range numpy (and so Lightning's seed_everything) accepts
GIB = 2**30
# The model node's keys go to MNISTClassifier, its **net to Net, and Net's **layout to
# plan_layers: together their parameters are the model's options.
MODEL_SIGNATURES = (MNISTClassifier.__init__, Net.__init__, plan_layers)
# Callback options that count or divide (max_maps=0 is a ZeroDivisionError after an epoch).
CALLBACK_COUNTS = {
    "KernelImages": ("every_n_epochs", "max_shown"),
    "ActivationImages": ("max_maps",),
    "TestViews": ("max_mistakes",),
    "ShiftInvariance": ("max_shift", "every_nth"),
    "EffectiveReceptiveField": ("every_n_epochs",),
    "TopPatches": ("every_n_epochs", "max_channels", "top_k", "images"),
}
CALLBACK_MODULES = {
    "src.lit.callbacks": src.lit.callbacks,
    "src.lit.views": src.lit.views,
    "src.speed.progress": src.speed.progress,
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


def is_bool(value: object) -> bool:
    return isinstance(value, bool)


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_str(value: object) -> bool:
    return isinstance(value, str)


SCALARS: dict[type, tuple[Callable[[Any], bool], str, str]] = {
    bool: (is_bool, "true or false", "true/false values"),
    int: (is_int, "an integer", "integers"),
    float: (is_number, "a number", "numbers"),
    str: (is_str, "a string", "strings"),
}


def rule_for(hint: object) -> Rule | None:
    """The rule a type hint sets, or None for a hint shape not checked here."""
    if hint in SCALARS:
        check, say, _ = SCALARS[hint]
        return check, say
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        rest = [arg for arg in args if arg is not type(None)]
        inner = rule_for(rest[0]) if len(rest) == 1 else None
        if inner is None:
            return None
        return (lambda v: v is None or inner[0](v)), f"{inner[1]} or null"
    if origin in (list, Sequence) and len(args) == 1 and args[0] in SCALARS:
        item, _, plural = SCALARS[args[0]]
        return (lambda v: isinstance(v, list | tuple) and all(map(item, v))), f"a list of {plural}"
    if origin in (dict, Mapping):
        return (lambda v: isinstance(v, Mapping)), "a mapping of options"
    return None


def parameters(target: Callable) -> tuple[list[str], set[str], dict[str, Any]]:
    """(named parameters, the required ones, type hints) of a function or class."""
    params = [
        p
        for p in inspect.signature(target).parameters.values()
        if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    try:
        hints = typing.get_type_hints(target.__init__ if isinstance(target, type) else target)
    except (NameError, TypeError):  # a hint that does not evaluate: types go unchecked
        hints = {}
    required = {p.name for p in params if p.default is p.empty}
    return [p.name for p in params], required, hints


def check_options(prefix: str, options: Mapping[str, Any], targets: Sequence[Callable]) -> None:
    """Each option a parameter of one of `targets`, with a value of its type hint's type, and
    every required parameter given."""
    names: list[str] = []
    required: set[str] = set()
    hints: dict[str, Any] = {}
    for target in targets:
        target_names, target_required, target_hints = parameters(target)
        names += [name for name in target_names if name not in names]
        required |= target_required
        hints.update(target_hints)
    for key, value in options.items():
        if key not in names:
            raise ConfigError(f"{prefix}.{key}: not an option (options: {', '.join(names)})")
        rule = rule_for(hints.get(key))
        if rule is not None and not rule[0](value):
            raise ConfigError(f"{prefix}.{key}={value!r}: must be {rule[1]}")
    missing = sorted(required - set(options))
    if missing:
        raise ConfigError(f"{prefix}.{missing[0]}: missing; it must be given")


def plain(node: Any) -> Any:
    """A config node as plain Python values (dicts, lists), interpolations resolved."""
    if isinstance(node, DictConfig) or OmegaConf.is_list(node):
        return OmegaConf.to_container(node, resolve=True)
    return node


def own_options(node: Mapping[str, Any]) -> dict[str, Any]:
    """A node's options for its target: without Hydra's _target_, _convert_, ..."""
    return {key: value for key, value in node.items() if not str(key).startswith("_")}


def check_run_options(cfg: DictConfig) -> None:
    """`test`, `seed` and the trainer's epoch counts (max_epochs=-1 overflows much later)."""
    if not is_bool(cfg.get("test")):
        raise ConfigError(f"test={cfg.get('test')!r}: must be true or false")
    seed = cfg.get("seed")
    if not (is_int(seed) and 0 <= seed <= MAX_SEED):
        raise ConfigError(f"seed={seed!r}: must be an integer from 0 to {MAX_SEED}")
    trainer = cfg.get("trainer") or {}
    max_epochs = trainer.get("max_epochs")
    if not (is_int(max_epochs) and max_epochs >= 1):
        raise ConfigError(f"trainer.max_epochs={max_epochs!r}: must be an integer >= 1")
    min_epochs = trainer.get("min_epochs")
    if min_epochs is not None and not (is_int(min_epochs) and 0 <= min_epochs <= max_epochs):
        raise ConfigError(
            f"trainer.min_epochs={min_epochs!r}: must be an integer from 0 to "
            f"trainer.max_epochs ({max_epochs})"
        )


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
    accumulate = trainer.get("accumulate_grad_batches", 1)
    if not (is_int(accumulate) and accumulate >= 1):
        raise ConfigError(
            f"trainer.accumulate_grad_batches={accumulate!r}: must be an integer >= 1"
        )
    every_n_epochs = trainer.get("check_val_every_n_epoch", 1)
    if every_n_epochs is not None and not (is_int(every_n_epochs) and every_n_epochs >= 1):
        raise ConfigError(
            f"trainer.check_val_every_n_epoch={every_n_epochs!r}: must be an integer >= 1, or "
            "null (validation every val_check_interval batches across epochs)"
        )
    train_size, size = TRAIN_SIZE - loader.val_size, loader.batch_size
    if loader.drop_last and size > train_size:
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
        "train": batches(train_size, size, loader.drop_last),
        "val": batches(loader.val_size, loader.eval_batch_size),
        "test": batches(TEST_SIZE, loader.eval_batch_size),
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


def check_data(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """The data node's types, then its ranges as MNISTDataModule checks them (building it
    stages nothing); returns its options, defaults included."""
    options = own_options(data)
    check_options("data", options, [MNISTDataModule])
    return MNISTDataModule(**options).hparams


def net_options(model: Mapping[str, Any]) -> dict[str, Any]:
    """The model node's keys that MNISTClassifier passes on to Net."""
    own = set(parameters(MNISTClassifier)[0])
    return {key: value for key, value in own_options(model).items() if key not in own}


def input_size(model: Mapping[str, Any]) -> int:
    """The side of the square images the net is built for (Net's default unless given)."""
    return model.get("input_size", inspect.signature(Net).parameters["input_size"].default)


def check_model(model: Mapping[str, Any]) -> list[Layer]:
    """The model node's types and ranges; returns the net's layers from the arithmetic (no
    torch module is built)."""
    check_options("model", own_options(model), MODEL_SIGNATURES)
    smoothing = model.get("label_smoothing", 0.0)
    if not 0 <= smoothing < 1:
        raise ConfigError(f"model.label_smoothing={smoothing}: must be in [0, 1)")
    mode = model.get("compile_mode", "default")
    if mode not in COMPILE_MODES:
        raise ConfigError(f"model.compile_mode={mode!r}: must be one of {', '.join(COMPILE_MODES)}")
    if input_size(model) < 1:
        raise ConfigError(f"model.input_size={input_size(model)}: must be an integer >= 1")
    return plan_layers(**net_options(model))


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
    need, have = training_bytes(specs, input_size(model), batch_size), available_memory()
    if need > have:
        raise ConfigError(
            f"model.channels={list(model['channels'])}: one training batch of {batch_size} needs "
            f"about {need / GIB:,.1f} GiB (activations, gradients and parameters, from the "
            f"arithmetic); this machine has {have / GIB:,.1f} GiB available: use fewer channels "
            "or a smaller data.batch_size"
        )


def positive(value: Any) -> bool:
    return is_number(value) and value > 0


# Ranges of optimizer and scheduler options, beyond their type.
OPTION_RANGES: dict[str, Rule] = {
    "lr": (positive, "a number > 0"),
    "max_lr": (positive, "a number > 0"),
    "gamma": (positive, "a number > 0"),
    "momentum": (lambda v: is_number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "weight_decay": (lambda v: is_number(v) and v >= 0, "a number >= 0"),
    "step_size": (lambda v: is_int(v) and v >= 1, "an integer >= 1"),
    "pct_start": (lambda v: is_number(v) and 0 < v < 1, "a number in (0, 1)"),
    "betas": (
        lambda v: (
            isinstance(v, list | tuple)
            and len(v) == 2
            and all(is_number(b) and 0 <= b < 1 for b in v)
        ),
        "two numbers in [0, 1), e.g. [0.9,0.999]",
    ),
}


def option_rule(default: Any) -> Rule | None:
    """The type an option's default in the torch class's signature sets."""
    if isinstance(default, bool):
        return is_bool, "true or false"
    if is_number(default):
        return is_number, "a number"
    if isinstance(default, str):
        return is_str, "a string"
    if isinstance(default, tuple) and all(map(is_number, default)):
        return (
            lambda v: (
                isinstance(v, list | tuple) and len(v) == len(default) and all(map(is_number, v))
            ),
            f"a list of {len(default)} numbers",
        )
    return None


def check_optimization(
    optimizer: Mapping[str, Any], scheduler: Mapping[str, Any], total_steps: int
) -> None:
    """Optimizer and scheduler options: each one the torch class takes, of its default's type,
    in range; then both built on a dummy parameter so that torch's own checks apply too, the
    schedule over `total_steps` (about the run's)."""
    groups = (("optimizer", optimizer), ("scheduler", scheduler))
    for group, node in groups:
        if not node:  # no schedule
            continue
        target = named_class(f"model.{group}", node.get("_target_"))
        if node.get("_partial_") is not True:
            raise ConfigError(
                f"model.{group}._partial_={node.get('_partial_')!r}: must be true (the module "
                "hands the class its parameters or optimizer)"
            )
        defaults = {p.name: p.default for p in inspect.signature(target).parameters.values()}
        for key, value in own_options(node).items():
            if key not in defaults:
                allowed = ", ".join(sorted(set(defaults) - {"params", "optimizer"}))
                raise ConfigError(f"model.{group}.{key}: not an option of {target.__name__} "
                                  f"(options: {allowed})")  # fmt: skip
            for rule in (option_rule(defaults[key]), OPTION_RANGES.get(key)):
                if rule is not None and not rule[0](value):
                    raise ConfigError(f"model.{group}.{key}={value!r}: must be {rule[1]}")
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
        raise ConfigError(
            f"{key}._target_={target}: no such class (e.g. torch.optim.SGD; "
            f"{key.replace('.', '/')}= picks a ready one)"
        )
    return found


def check_entries(group: str, entries: Mapping[str, Any] | None) -> None:
    """Each entry of a group of named objects (callbacks, logger) is a mapping or null."""
    for name, entry in (entries or {}).items():
        if entry is not None and not isinstance(entry, Mapping):
            raise ConfigError(
                f"{group}.{name}={entry!r}: must be a _target_ with its options, or null"
            )


def check_callbacks(callbacks: Mapping[str, Any] | None, layers: Sequence[str]) -> None:
    """The project's callbacks (src.lit.callbacks, src.lit.views): options by signature, counts
    >= 1, and the activation layers (maps: the arithmetic's layers, not flatten or
    log_softmax) by name."""
    for name, node in (callbacks or {}).items():
        if not isinstance(node, Mapping) or not node:  # set to null: left out
            continue
        target = str(node.get("_target_", ""))
        module, _, class_name = target.rpartition(".")
        if module not in CALLBACK_MODULES:
            continue
        cls = getattr(CALLBACK_MODULES[module], class_name, None)
        if not isinstance(cls, type):
            raise ConfigError(f"callbacks.{name}._target_={target}: no such callback")
        options = own_options(plain(node))
        check_options(f"callbacks.{name}", options, [cls])
        for key in CALLBACK_COUNTS.get(class_name, ()):
            if key in options and not (is_int(options[key]) and options[key] >= 1):
                raise ConfigError(
                    f"callbacks.{name}.{key}={options[key]!r}: must be an integer >= 1"
                )
        if cls is src.lit.views.ActivationImages:
            unknown = [layer for layer in options.get("layers") or () if layer not in layers]
            if unknown:
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


def net_state_shapes(model: Mapping[str, Any]) -> dict[str, list[int]]:
    """The shapes of the `net.` entries of the state dict of the MNISTClassifier the model node
    builds, from a Net on the meta device: no memory is allocated, however wide the net."""
    with torch.device("meta"):
        net = Net(**net_options(model))
    return {f"net.{key}": list(value.shape) for key, value in net.state_dict().items()}


def state_difference(here: dict[str, list[int]], there: dict[str, list[int]]) -> str | None:
    """The first entry where a checkpoint's state dict (`there`) differs from the net's."""
    for name, shape in here.items():
        if name not in there:
            return f"{name} is missing there, {shape} here"
        if there[name] != shape:
            return f"{name} is {there[name]} there, {shape} here"
    for name in there:
        if name not in here:
            return f"{name} is there, not in this net"
    return None


def check_checkpoint(
    path: str | Path, model_cfg: Mapping[str, Any], key: str = "ckpt_path"
) -> None:
    """`path` is a Lightning checkpoint of this project whose weights fit the net `model_cfg`
    (the model node) builds; read with weights_only=True, so nothing pickled is executed."""
    where = f"{key}={path}"
    if not Path(path).is_file():
        raise ConfigError(f"{where}: no such checkpoint file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any failure to read it: corrupt, cut short, not torch's format
        text = str(err).strip().splitlines()[0] if str(err).strip() else ""
        if isinstance(err, pickle.UnpicklingError) and "Unsupported global" in str(err):
            raise ConfigError(
                f"{where}: not a checkpoint of this project (it holds pickled Python objects, "
                "not only weights and plain values; left unread)"
            ) from None
        reason = "not written by torch.save, or cut short"
        if isinstance(err, RuntimeError) and text:  # torch's own first sentence, no advice
            reason = text.split(". ")[0][:120]
        raise ConfigError(f"{where}: not a readable checkpoint ({reason})") from None
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or "pytorch-lightning_version" not in checkpoint:
        raise ConfigError(
            f"{where}: not a checkpoint of this project (no state_dict and "
            "pytorch-lightning_version)"
        )
    here = net_state_shapes(plain(model_cfg))
    # the net's weights only: metric states (val_acc_best) come and go between versions
    there = {
        name: list(getattr(value, "shape", []))
        for name, value in state.items()
        if name.startswith("net.")
    }
    detail = state_difference(here, there)
    if detail:
        raise ConfigError(
            f"{where}: a checkpoint of another net ({detail}); resume=<run dir> resumes a run "
            "with its own config"
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
    check_run_options(cfg)
    data = plain(cfg.data)
    loader = check_data(data)
    model = plain(cfg.model)
    specs = check_model(model)
    check_memory(model, specs, loader.batch_size)  # before anything is built from the model
    # the run's steps, about (trainer limits and devices aside)
    steps = math.ceil((TRAIN_SIZE - loader.val_size) / loader.batch_size) * cfg.trainer.max_epochs
    check_optimization(model["optimizer"], model["scheduler"], total_steps=steps)
    check_accelerator(cfg.trainer)
    check_strategy(cfg.trainer)
    check_devices(cfg.trainer)
    check_trainer_batches(cfg.trainer, loader, test=cfg.test)
    check_graphs(model, cfg.trainer)
    for group in ("callbacks", "logger"):
        check_entries(group, cfg.get(group))
    check_callbacks(cfg.get("callbacks"), [spec.name for spec in specs])
    check_monitors(plain(cfg.get("callbacks")))
    folders = [("paths.data_dir", cfg.paths.data_dir), ("paths.log_dir", cfg.paths.log_dir)]
    if data.get("data_dir") != cfg.paths.data_dir:
        folders.append(("data.data_dir", data.get("data_dir")))
    for key, folder in folders:
        if folder is not None:
            check_writable(key, str(folder))
    if cfg.get("ckpt_path"):
        check_checkpoint(cfg.ckpt_path, model, key="resume" if cfg.get("resume") else "ckpt_path")
