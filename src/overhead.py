"""What Lightning does at every training step that this project leaves out, unchanged in
what a run computes, logs or draws: on a GPU a step of the default net is host time spent
launching kernels, and Lightning's own Python comes on top of it (README, "Speed")."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import lightning as L
from lightning.pytorch.profilers import PassThroughProfiler

# The hooks Lightning calls on every callback and on the module at every training step.
STEP_HOOKS = (
    "on_train_batch_start", "on_before_backward", "on_after_backward",
    "on_before_optimizer_step", "on_before_zero_grad", "on_train_batch_end",
)  # fmt: skip


def skip_unused_step_hooks(callbacks: Sequence[L.Callback], module: L.LightningModule) -> None:
    """Lets Lightning pass over the training-step hooks that the callbacks and the module do
    not override. Lightning calls every one at every step, each inside its profiler's context
    manager and with the module's `_current_fx_name` set and reset: 18 callbacks and the module,
    6 hooks each, half of Lightning's Python calls a step; on a GPU that is host time the step
    waits for. Lightning skips a hook that is not callable, so each unused one is set to None
    on the instance (the class keeps its methods).
    """
    hooked = [(callback, L.Callback) for callback in callbacks] + [(module, L.LightningModule)]
    for instance, base in hooked:
        for name in STEP_HOOKS:
            # the base's own empty method, bound: not a subclass's, nor one set on the instance
            # (as LambdaCallback sets its hooks)
            if getattr(getattr(instance, name), "__func__", None) is getattr(base, name):
                setattr(instance, name, None)


class NoProfiler(PassThroughProfiler):
    """Lightning's default, no profiling, with one shared null context for every hook call:
    PassThroughProfiler makes a generator-based context manager (8 Python calls) for each of
    the some 20 hooks Lightning calls a step. `trainer.profiler=simple` (or any other) still
    profiles."""

    NULL = contextlib.nullcontext()

    def profile(self, action_name: str) -> contextlib.nullcontext:
        return self.NULL


class PlainHookName:
    """A LightningModule mixin: Lightning records the hook it is in by setting the module's
    `_current_fx_name` before and after every hook call, some 35 times a training step, and
    nn.Module's __setattr__ checks each value against parameters, buffers and submodules (3
    Python calls). A hook's name is a string, none of those, so it is set as a plain attribute.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)
