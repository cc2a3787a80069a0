"""The ranges and cross-field rules of the training config, beyond the types its schema
(src/config/schema.py) enforces: one table of what each value must be, one list of the rules
that tie values together, and the callbacks' counts. `rules_refusal` names the first value
refused."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from src.core.architecture import HEADS, padded_convs
from src.data.datamodule import LOADERS
from src.data.files import TRAIN_SIZE
from src.lit.module import COMPILE_MODES

MAX_SEED = 2**32 - 1  # the seed range numpy (and so Lightning's seed_everything) accepts


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def ints_from(low: int, high: float = float("inf")) -> Callable[[Any], bool]:
    return lambda value: is_int(value) and low <= value <= high


def numbers(low: float, high: float, closed: str = "[)") -> Callable[[Any], bool]:
    above = (lambda v: v >= low) if closed[0] == "[" else (lambda v: v > low)
    below = (lambda v: v <= high) if closed[1] == "]" else (lambda v: v < high)
    return lambda value: is_number(value) and above(value) and below(value)


def optional(fits: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or fits(value)


def one_of(*choices: str) -> tuple[Callable[[Any], bool], str]:
    return (lambda value: value in choices), f"one of {', '.join(choices)}"


def is_channel_list(value: object) -> bool:
    return isinstance(value, list) and len(value) > 0 and all(map(ints_from(1), value))


def whole(value: Any) -> Any:
    """A whole float above 1 as the int Lightning takes it for (batches, not a fraction)."""
    return int(value) if isinstance(value, float) and value > 1 and value.is_integer() else value


AT_LEAST_ONE = (ints_from(1), "an integer >= 1")
RATE = (numbers(0, 1), "a rate in [0, 1)")

# key: (does the value fit, what it must be), checked on the typed config (defaults filled in);
# an optimizer's or scheduler's option that its class does not have is not checked.
RANGES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "seed": (ints_from(0, MAX_SEED), f"an integer from 0 to {MAX_SEED}"),
    "test": (lambda value: isinstance(value, bool), "true or false"),
    "trainer.max_epochs": AT_LEAST_ONE,
    "trainer.accumulate_grad_batches": AT_LEAST_ONE,
    "trainer.check_val_every_n_epoch": (
        optional(ints_from(1)),
        "an integer >= 1, or null (validation every val_check_interval batches across epochs)",
    ),
    "trainer.val_check_interval": (
        lambda value: not is_int(value) or value >= 1,
        "a number of batches >= 1, or a fraction of an epoch",
    ),
    **{
        f"trainer.limit_{split}_batches": (
            optional(lambda v: is_number(v) and v >= 0 and (is_int(whole(v)) or v <= 1)),
            "a whole number of batches (>= 0) or a fraction of them in [0, 1]",
        )
        for split in ("train", "val", "test")
    },
    "data.batch_size": AT_LEAST_ONE,
    "data.eval_batch_size": AT_LEAST_ONE,
    "data.val_size": (
        ints_from(1, TRAIN_SIZE - 1),
        f"1 to {TRAIN_SIZE - 1:,} (MNIST has "
        f"{TRAIN_SIZE:,} training images, and at least one must be left to train on)",
    ),
    "data.loader": one_of(*LOADERS),
    "data.rotation": (numbers(0, float("inf")), "a number of degrees >= 0"),
    "data.translate": (numbers(0, 1), "a fraction of the image's size in [0, 1)"),
    "data.augment_epochs": (optional(ints_from(1)), "null or a positive integer"),
    "data.num_workers": (ints_from(0), "an integer >= 0"),
    "model.channels": (
        is_channel_list,
        "a non-empty list of positive integers, e.g. model.channels=[16,32]",
    ),
    "model.head": one_of(*HEADS),
    "model.pool_every": AT_LEAST_ONE,
    "model.dropout": RATE,
    "model.label_smoothing": RATE,
    "model.compile_mode": one_of(*COMPILE_MODES),
    "model.input_size": AT_LEAST_ONE,
    # optimizer and scheduler options, where the chosen class has them
    "model.optimizer.lr": (numbers(0, float("inf"), "()"), "a number > 0"),
    "model.optimizer.momentum": (numbers(0, 1), "a number in [0, 1)"),
    "model.optimizer.weight_decay": (numbers(0, float("inf")), "a number >= 0"),
    "model.optimizer.betas": (
        lambda value: (
            isinstance(value, list) and len(value) == 2 and all(map(numbers(0, 1), value))
        ),
        "two numbers in [0, 1), e.g. [0.9,0.999]",
    ),  # fmt: skip
    "model.scheduler.max_lr": (numbers(0, float("inf"), "()"), "a number > 0"),
    "model.scheduler.gamma": (numbers(0, float("inf"), "()"), "a number > 0"),
    "model.scheduler.step_size": AT_LEAST_ONE,
    "model.scheduler.pct_start": (numbers(0, 1, "()"), "a number in (0, 1)"),
}


def min_epochs(cfg: DictConfig) -> str | None:
    low, high = cfg.trainer.get("min_epochs"), cfg.trainer.max_epochs
    if low is not None and not ints_from(0, high)(low):
        return (
            f"trainer.min_epochs={low!r}: must be an integer from 0 to trainer.max_epochs ({high})"
        )
    return None


def whole_batches(cfg: DictConfig) -> str | None:
    size, train_size = cfg.data.batch_size, TRAIN_SIZE - cfg.data.val_size
    if cfg.data.drop_last and size > train_size:
        return (f"data.batch_size={size}: more than the {train_size} training images, and "
                "data.drop_last=true leaves out the one shorter batch")  # fmt: skip
    return None


def augment_epochs(cfg: DictConfig) -> str | None:
    if cfg.data.augment_epochs is not None and cfg.data.loader != "fast":
        return (f"data.augment_epochs={cfg.data.augment_epochs}: needs data.loader=fast (the "
                "torchvision loader's transforms augment every epoch)")  # fmt: skip
    return None


def offline_dir(cfg: DictConfig) -> str | None:
    folder = cfg.data.offline_dir
    if folder and not Path(folder).is_dir():
        return (f"data.offline_dir={folder}: no such folder; name the folder holding the four "
                "MNIST .gz files (or leave it unset to download)")  # fmt: skip
    return None


def kernels(cfg: DictConfig) -> str | None:
    sizes, count = cfg.model.kernels, len(cfg.model.channels)
    fits = all(k >= 1 and k % 2 == 1 for k in sizes or ())
    if sizes is not None and (len(sizes) != count or not fits):
        return (f"model.kernels={list(sizes)}: must list one odd kernel size per model.channels "
                f"entry ({count}), e.g. 3 for a 3x3 conv and 1 for a 1x1 transition")  # fmt: skip
    return None


def pools(cfg: DictConfig) -> str | None:
    """Explicit pool places (after these convs, counted from 1): each a conv with two convs
    after it (max-pooling never sits near the output), named once."""
    places, count = cfg.model.pools, len(cfg.model.channels)
    last = count - 1
    if places is not None and (len(set(places)) != len(places) or
                               not all(1 <= i <= last for i in places)):  # fmt: skip
        return (f"model.pools={list(places)}: must name distinct convs a pool may follow, 1 to "
                f"{last} (two convs must come after a pool)")  # fmt: skip
    return None


def valid_tail(cfg: DictConfig) -> str | None:
    model = cfg.model
    n_3x3 = padded_convs(len(model.channels), model.head)
    if not 0 <= model.valid_tail <= n_3x3:
        return f"model.valid_tail={model.valid_tail}: must be between 0 and {n_3x3}"
    return None


CROSS_FIELD = (min_epochs, whole_batches, augment_epochs, offline_dir, kernels, pools, valid_tail)


def rules_refusal(cfg: DictConfig) -> str | None:
    """The first value of the typed config `cfg` out of its RANGES, else the first CROSS_FIELD
    rule's refusal; None if all hold."""
    for key, (fits, allowed) in RANGES.items():
        value = plain(OmegaConf.select(cfg, key, default="<absent>"))
        if value != "<absent>" and not fits(value):
            return f"{key}={value!r}: must be {allowed}"
    return next((refused for rule in CROSS_FIELD if (refused := rule(cfg))), None)


def plain(value: Any) -> Any:
    """A config value as plain Python (lists, dicts), interpolations resolved."""
    if OmegaConf.is_config(value):
        return OmegaConf.to_container(value, resolve=True)
    return value


# Callback options that count or divide (max_maps=0 is a ZeroDivisionError after an epoch).
CALLBACK_COUNTS = {
    "KernelImages": ("every_n_epochs", "max_shown"),
    "ActivationImages": ("max_maps",),
    "TestViews": ("max_mistakes",),
    "ShiftInvariance": ("max_shift", "every_nth"),
    "EffectiveReceptiveField": ("every_n_epochs",),
    "TopPatches": ("every_n_epochs", "max_channels", "top_k", "images"),
}


def uncounted(key: str, class_name: str, options: dict[str, Any]) -> str | None:
    """The first count of a callback's `options` (at `key`) that is not an integer >= 1."""
    for name in CALLBACK_COUNTS.get(class_name, ()):
        if not ints_from(1)(options[name]):
            return f"{key}.{name}={options[name]!r}: must be {AT_LEAST_ONE[1]}"
    return None
