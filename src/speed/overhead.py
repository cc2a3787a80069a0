"""What Lightning does at every training step that this project leaves out, unchanged in
what a run computes, logs or draws: on a GPU a step of the default net is host time spent
launching kernels, and Lightning's own Python comes on top of it (docs/performance.md).

Lightning's private names this relies on (tests/test_speed_private.py checks each against the
installed Lightning): the module's `_current_fx_name`, set around every hook call, and
ModelCheckpoint's `_every_n_train_steps` and `_train_time_interval`."""

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


# The attribute Lightning sets on the module around every hook call: the name of the hook it is in
HOOK_NAME = "_current_fx_name"


def lean_steps(trainer: L.Trainer, module: L.LightningModule) -> None:
    """Everything this file takes out of Lightning's training step, for this trainer and module:
    the unused step hooks skipped, the module's current-hook name set as a plain attribute, and
    its `training_step` signature built once."""
    skip_unused_step_hooks(trainer, module)
    set_hook_name_plainly(module)
    build_step_signature_once(module)


def set_hook_name_plainly(module: L.LightningModule) -> None:
    """Lightning records the hook it is in by setting the module's `_current_fx_name` before and
    after every hook call, dozens of times a training step, and nn.Module's __setattr__ checks
    each value against parameters, buffers and submodules. A hook's name is a string, none of
    those, so the module's class sets it as a plain attribute (one Python call where
    nn.Module's took three); every other attribute goes through the class's __setattr__ as
    before. Done once per class (Python looks __setattr__ up on the class, never on the
    instance); Lightning's own LightningModule is left as it is."""
    cls = type(module)
    if cls is L.LightningModule or getattr(cls.__setattr__, "sets_hook_name_plainly", False):
        return
    setattr_before = cls.__setattr__

    def __setattr__(self: L.LightningModule, name: str, value: Any) -> None:
        if name == HOOK_NAME:
            object.__setattr__(self, name, value)
        else:
            setattr_before(self, name, value)

    __setattr__.sets_hook_name_plainly = True  # type: ignore[attr-defined]
    __setattr__.__qualname__ = f"{cls.__qualname__}.__setattr__"
    cls.__setattr__ = __setattr__  # type: ignore[method-assign]


def build_step_signature_once(module: L.LightningModule) -> None:
    """Lightning reads `training_step`'s signature at every step (`inspect.getfullargspec`, to
    know whether it takes `batch_idx`), and inspect builds it anew each time, in many Python
    calls. The module's `training_step` gets its signature built once, kept on the function,
    where inspect finds it (Lightning's own, a LightningModule's that defines none, is left as
    it is)."""
    step = getattr(type(module), "training_step", None)
    if (
        inspect.isfunction(step)
        and step is not L.LightningModule.training_step
        and "__signature__" not in vars(step)
    ):
        step.__signature__ = inspect.signature(step)
