"""A finished run, used again: its own config, its weights (loaded as weights only: nothing
pickled is executed), and the net's predictions. Shared by `src.eval`, `src.predict` and
`src.export`, and the Python API for notebooks:

    from src.lit.runs import load_run, predict
    model, cfg = load_run("logs/train/runs/<run>")
    probabilities = predict(model, images)   # (N, 28, 28) or (N, 1, 28, 28), ink 1 on 0
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from src.config.build import instantiate
from src.core.errors import ConfigError, first_line
from src.core.folders import cannot_make, unwritable
from src.data.datamodule import MNIST_MEAN, MNIST_STD
from src.lit.module import MNISTClassifier

CHECKPOINT_CHOICES = ("best", "last")
# What a run's config may build: a run copied from elsewhere must not run other code.
TARGETS = {"model": "src.lit.module.MNISTClassifier", "data": "src.data.datamodule.MNISTDataModule"}
# A run made before src/ was grouped by layer names its classes by their old paths; the one
# callback since dropped (ddp_spawn's clean-up) is left out of it.
CALLBACKS = ("LearningRateCurve", "HParamsSummary", "ArchitectureReport")
VIEWS = ("KernelImages", "ActivationImages", "TopPatches", "EffectiveReceptiveField",
         "ClassActivationMaps", "TestViews", "ShiftInvariance")  # fmt: skip
MOVED_TARGETS: dict[str, str | None] = {
    "src.module.MNISTClassifier": TARGETS["model"],
    "src.data.MNISTDataModule": TARGETS["data"],
    "src.overhead.NoProfiler": "src.speed.overhead.NoProfiler",
    "src.callbacks.ProgressBar": "src.speed.progress.ProgressBar",
    "src.callbacks.ReleaseProcessGroup": None,
    **{f"src.callbacks.{name}": f"src.lit.callbacks.{name}" for name in CALLBACKS},
    **{f"src.callbacks.{name}": f"src.lit.views.{name}" for name in VIEWS},
}


# ... and its optimizer and scheduler by name, where they are `_target_` + `_partial_` nodes now.
NAMED_OPTIMIZATION = {
    "sgd": "torch.optim.SGD",
    "adam": "torch.optim.Adam",
    "onecycle": "torch.optim.lr_scheduler.OneCycleLR",
    "step": "torch.optim.lr_scheduler.StepLR",
    "none": None,
}


def target_named_optimization(model: DictConfig) -> None:
    """A saved model node's `name: sgd`-style optimizer and scheduler as today's nodes, in
    place, built by the module itself (`_recursive_: false`)."""
    for group in ("optimizer", "scheduler"):
        node = model.get(group)
        if isinstance(node, DictConfig) and node.get("name") in NAMED_OPTIMIZATION:
            target = NAMED_OPTIMIZATION[node.pop("name")]
            model[group] = {"_target_": target, "_partial_": True, **node} if target else {}
    model._recursive_ = False


def rename_moved_targets(node: DictConfig) -> None:
    """Every `_target_` under `node` (a run's saved config) by its path today, in place; an
    entry whose class is gone is set to null (left out, as `callbacks.<name>=null` is)."""
    for key, value in node.items_ex(resolve=False):
        if not isinstance(value, DictConfig):
            continue
        target = value.get("_target_")
        if isinstance(target, str) and target in MOVED_TARGETS:
            if MOVED_TARGETS[target] is None:
                node[key] = None
                continue
            value._target_ = MOVED_TARGETS[target]
        rename_moved_targets(value)


def run_config(run_dir: str | Path, key: str = "run") -> DictConfig:
    """The config the run was started with (`.hydra/config.yaml`), its output folder set to
    the run directory; a ConfigError names what is missing (as `<key>=<run_dir>`)."""
    run, saved, reason = Path(run_dir), Path(run_dir) / ".hydra" / "config.yaml", None
    if not run.is_dir():
        reason = "no such run directory"
    elif not saved.is_file():
        reason = ("no .hydra/config.yaml; name the directory of a training run (logs/train/runs/"
                  "<run>, or a sweep job's logs/train/multiruns/<sweep>/<job>)")  # fmt: skip
    else:
        try:
            cfg = OmegaConf.load(saved)
            rename_moved_targets(cfg)
            target_named_optimization(cfg.model)
            wrong = [group for group, target in TARGETS.items()
                     if cfg[group].get("_target_") != target]  # fmt: skip
            if wrong:
                reason = (
                    f"{wrong[0]}._target_ is not {TARGETS[wrong[0]]}: not a run of this project"
                )
        except Exception as err:  # YAML or OmegaConf errors of a damaged file
            reason = f".hydra/config.yaml unreadable ({err})"
    if reason:
        raise ConfigError(f"{key}={run_dir}: {reason}")
    cfg.paths.output_dir = str(run)  # was ${hydra:runtime.output_dir}
    # paths relative to where the run was started, not to where this command is
    hydra_file = run / ".hydra" / "hydra.yaml"
    if hydra_file.is_file() and not Path(cfg.paths.root_dir).is_absolute():
        started = OmegaConf.load(hydra_file).hydra.runtime.cwd
        cfg.paths.root_dir = str(Path(started) / cfg.paths.root_dir)
    return cfg


def run_status(run_dir: Path) -> str | None:
    """result.json's status, None if there is none (a run still going, or killed)."""
    try:
        return json.loads((run_dir / "result.json").read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        return None


# The runs that resume= does not go on with, by the status in their result.json.
RESUME_REFUSED = {
    "ok": "the run finished (result.json says ok)",
    "diverged": "the run diverged, and would again (it goes on exactly); start a new run with "
    "a lower model.optimizer.lr",
}


def resume_config(run_dir: str | Path) -> tuple[DictConfig, list[str]]:
    """(config, overrides) to go on with a stopped run: its own config, set to continue from its
    last.ckpt in its own directory, and the overrides it was started with."""
    run = Path(run_dir)
    cfg = run_config(run, key="resume")
    last = run / "checkpoints" / "last.ckpt"
    reason = RESUME_REFUSED.get(run_status(run))
    if not last.is_file():
        reason = (
            "no checkpoints/last.ckpt (the run stopped before its first epoch ended): start again"
        )
    if reason:
        raise ConfigError(f"resume={run_dir}: {reason}")
    cfg.ckpt_path, cfg.resume = str(last), str(run)
    overrides = run / ".hydra" / "overrides.yaml"
    typed = OmegaConf.to_container(OmegaConf.load(overrides)) if overrides.is_file() else []
    return cfg, [str(o) for o in typed]  # as typed: not resolved


def checkpoint_path(run_dir: str | Path, ckpt: str = "best") -> Path:
    """`best`: the epoch checkpoint that ModelCheckpoint kept (the latest epoch for presets that
    monitor nothing), else last.ckpt; `last`: last.ckpt; anything else: a checkpoint file."""
    folder = Path(run_dir) / "checkpoints"
    if ckpt not in CHECKPOINT_CHOICES:
        path = Path(ckpt)
        if not path.is_file():
            raise ConfigError(f"ckpt={ckpt}: no such checkpoint file (or use best, last)")
        return path
    last = folder / "last.ckpt"
    # ModelCheckpoint keeps one epoch_NNN.ckpt (save_top_k=1); with more, the latest epoch
    kept = sorted(
        folder.glob("epoch_*.ckpt"), key=lambda p: int("".join(filter(str.isdigit, p.stem)) or 0)
    )
    path = kept[-1] if ckpt == "best" and kept else last
    if not path.is_file():
        raise ConfigError(f"run={run_dir}: no checkpoints in {folder} (ckpt={ckpt})")
    return path


def read_state(path: str | Path, key: str, resumable: bool = False) -> dict[str, Any]:
    """The state dict of the checkpoint of this project at `path` (given as `key`), read with
    weights_only=True, so nothing pickled is executed; `resumable`: one Lightning wrote, that
    a fit can go on from. A ConfigError otherwise."""
    reason, state = None, None
    if not Path(path).is_file():
        reason = "no such checkpoint file"
    else:
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
            state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
            if not isinstance(state, dict):
                reason = "not a checkpoint of this project (no state_dict)"
            elif resumable and "pytorch-lightning_version" not in checkpoint:
                reason = "not a checkpoint Lightning wrote (no pytorch-lightning_version)"
        except Exception as err:  # any failure to read it: corrupt, cut short, not torch's format
            reason = unreadable(err)
    if reason:
        raise ConfigError(f"{key}={path}: {reason}")
    return state


def unreadable(err: Exception) -> str:
    """Why torch.load could not read a checkpoint, in a refusal's words."""
    if isinstance(err, pickle.UnpicklingError) and "Unsupported global" in str(err):
        return ("not a checkpoint of this project (it holds pickled Python objects, not only "
                "weights and plain values; unread)")  # fmt: skip
    if isinstance(err, RuntimeError) and str(err).strip():  # torch's first sentence, no advice
        return f"not a readable checkpoint ({first_line(err).split('. ')[0][:120]})"
    return "not a readable checkpoint (not written by torch.save, or cut short)"


def net_difference(net: torch.nn.Module, state: dict[str, Any]) -> str | None:
    """The first of the net's weights where a checkpoint's state dict differs from `net`
    (the module's `net.` entries: metric states come and go between versions), or None."""
    here = {f"net.{name}": list(value.shape) for name, value in net.state_dict().items()}
    there = {name: list(getattr(v, "shape", [])) for name, v in state.items() if name[:4] == "net."}
    for name, shape in here.items():
        if name not in there:
            return f"{name} is missing there, {shape} here"
        if there[name] != shape:
            return f"{name} is {there[name]} there, {shape} here"
    extra = next((name for name in there if name not in here), None)
    return f"{extra} is there, not in this net" if extra else None


def load_weights(model: MNISTClassifier, path: Path) -> None:
    """The checkpoint's weights into `model` (read_state); one of another net is refused."""
    state = read_state(path, "ckpt")
    detail = net_difference(model.net, state)
    if detail:
        channels = list(model.hparams["channels"])
        raise ConfigError(
            f"ckpt={path}: does not fit the run's net (model.channels={channels}): {detail}"
        )
    model.load_state_dict(state)


def load_run(run_dir: str | Path, ckpt: str = "best") -> tuple[MNISTClassifier, DictConfig]:
    """(model in eval mode on the CPU, config) of a run: the net its own config builds (not
    compiled), with the weights of `ckpt` (best, last or a path)."""
    cfg = run_config(run_dir)
    path = checkpoint_path(run_dir, ckpt)
    model: MNISTClassifier = instantiate(cfg.model, _convert_="all", compile=False)
    load_weights(model, path)
    model.eval()
    model.checkpoint_path = path
    return model, cfg


def normalize_unit(images: Tensor) -> Tensor:
    """(N, 28, 28) or (N, 1, 28, 28) images on the 0-1 scale, ink 1 (uint8 ones on 0-255, as
    torchvision's MNIST.data holds them), as the net's input."""
    if images.dim() == 3:
        images = images.unsqueeze(1)
    scale = 255.0 if images.dtype == torch.uint8 else 1.0
    return (images.float() / scale - MNIST_MEAN) / MNIST_STD


@torch.no_grad()
def predict(model: MNISTClassifier, images: Tensor, batch_size: int = 1000) -> Tensor:
    """(N, 10) probabilities of the digits for MNIST-like images on the 0-1 scale (ink 1 on 0),
    (N, 28, 28) or (N, 1, 28, 28); `src.core.digits.mnist_like` makes them from any digit image."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        parts = [
            model(normalize_unit(part).to(device)).exp().cpu() for part in images.split(batch_size)
        ]
    finally:
        model.train(was_training)
    return torch.cat(parts)


def check_output(key: str, value: str, target: Path, *, folder: bool, allowed: str) -> None:
    """Before any work: that the command can write `target`, the folder (`folder`) or the file
    that `key=value` has it write (out=, or the run folder's own eval/, predictions/,
    model.onnx); else a ConfigError `key=value: what is wrong; <allowed>`."""
    if target.exists() and target.is_dir() != folder:
        kind = "a file, not a folder" if folder else "a folder, not a file"
        problem = f"{target} is {kind}"
    else:
        reason = cannot_make(value) if folder or not target.exists() else None
        if reason is None and target.exists() and (not folder or target != Path(value)):
            reason = unwritable(target, folder)  # inside the folder named, written over
        problem = reason and f"cannot be written ({reason})"
    if problem:
        raise ConfigError(f"{key}={value}: {problem}; {allowed}")
