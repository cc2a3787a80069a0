"""What Lightning does at every training step that this project leaves out, unchanged in
what a run computes, logs or draws: on a GPU a step of the default net is host time spent
launching kernels, and Lightning's own Python comes on top of it (docs/performance.md)."""

from __future__ import annotations

import contextlib
import inspect
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.profilers import PassThroughProfiler

# The hooks Lightning calls on every callback and on the module at every training step.
STEP_HOOKS = (
    "on_train_batch_start", "on_before_backward", "on_after_backward",
    "on_before_optimizer_step", "on_before_zero_grad", "on_train_batch_end",
)  # fmt: skip


def skip_unused_step_hooks(trainer: L.Trainer, module: L.LightningModule) -> None:
    """Lets Lightning pass over the training-step hooks that do nothing in this run. Lightning
    calls every one at every step, each inside its profiler's context manager and with the
    module's `_current_fx_name` set and reset: every callback and the module, six hooks each, a
    large share of Lightning's Python calls a step; on a GPU that is host time the step waits
    for. Lightning skips a hook that is not callable, so each of these is set to None on the
    instance (the class keeps its methods):
    - the step hooks that a callback's (or the module's) class does not override;
    - a ModelCheckpoint's own `on_train_batch_end` where it saves by epochs only (no
      `every_n_train_steps`, no `train_time_interval`): the hook then returns at once, after
      a chain of Python calls of checks;
    - the module's `configure_gradient_clipping`, Lightning's own, where the trainer clips
      nothing (`gradient_clip_val` unset or 0): it then clips nothing, in a chain of calls.
    """
    hooked = [(callback, L.Callback) for callback in trainer.callbacks]
    for instance, base in [*hooked, (module, L.LightningModule)]:
        for name in STEP_HOOKS:
            if is_base_hook(instance, base, name):
                setattr(instance, name, None)
    for callback in trainer.callbacks:
        if (
            isinstance(callback, ModelCheckpoint)
            and is_base_hook(callback, ModelCheckpoint, "on_train_batch_end")
            and saves_by_epoch_only(callback)
        ):
            callback.on_train_batch_end = None
    if not trainer.gradient_clip_val and is_base_hook(
        module, L.LightningModule, "configure_gradient_clipping"
    ):
        module.configure_gradient_clipping = None


def is_base_hook(instance: object, base: type, name: str) -> bool:
    """Whether `instance.name` is `base`'s own method, bound: not a subclass's, nor one set on
    the instance (as LambdaCallback sets its hooks)."""
    return getattr(getattr(instance, name), "__func__", None) is getattr(base, name)


def saves_by_epoch_only(checkpoint: ModelCheckpoint) -> bool:
    return checkpoint._every_n_train_steps < 1 and checkpoint._train_time_interval is None


class NoProfiler(PassThroughProfiler):
    """Lightning's default, no profiling, with one shared null context for every hook call:
    PassThroughProfiler makes a generator-based context manager (several Python calls) for
    each of the hooks Lightning calls a step. `trainer.profiler=simple` (or any other) still
    profiles."""

    NULL = contextlib.nullcontext()

    def profile(self, action_name: str) -> contextlib.nullcontext:
        return self.NULL


class PlainHookName:
    """A LightningModule mixin: Lightning records the hook it is in by setting the module's
    `_current_fx_name` before and after every hook call, dozens of times a training step, and
    nn.Module's __setattr__ checks each value against parameters, buffers and submodules. A
    hook's name is a string, none of those, so it is set as a plain attribute.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)


class StepSignatureOnce:
    """A LightningModule mixin: Lightning reads `training_step`'s signature at every step
    (`inspect.getfullargspec`, to know whether it takes `batch_idx`), and inspect builds it
    anew each time, in many Python calls. Each subclass's signature is built once and kept on
    the function, where inspect finds it."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        step = cls.__dict__.get("training_step")
        if inspect.isfunction(step):
            step.__signature__ = inspect.signature(step)
