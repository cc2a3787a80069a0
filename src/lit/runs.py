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
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import Tensor

from src.config.build import instantiate
from src.core.errors import ConfigError
from src.data.datamodule import MNIST_MEAN, MNIST_STD
from src.lit.module import MNISTClassifier

CHECKPOINT_CHOICES = ("best", "last")
# What a run's config may build: a run copied from elsewhere must not run other code.
TARGETS = {"model": "src.lit.module.MNISTClassifier", "data": "src.data.datamodule.MNISTDataModule"}
# A run made before src/ was grouped by layer names its classes by their old paths.
MOVED_MODULES = {
    "src.module.": "src.lit.module.",
    "src.data.MNISTDataModule": "src.data.datamodule.MNISTDataModule",
    "src.overhead.": "src.speed.overhead.",
    "src.callbacks.": "src.lit.callbacks.",
}
VIEWS = ("KernelImages", "ActivationImages", "TopPatches", "EffectiveReceptiveField",
         "ClassActivationMaps", "TestViews", "ShiftInvariance")  # fmt: skip


def moved(target: str) -> str:
    """A `_target_` of a run made before src/ was grouped by layer, by its path today."""
    name = target.rpartition(".")[2]
    if target.startswith("src.callbacks.") and name in VIEWS:
        return f"src.lit.views.{name}"
    for old, new in MOVED_MODULES.items():
        if target.startswith(old):
            return new + target[len(old) :]
    return target


def rename_moved_targets(node: Any) -> None:
    """Every `_target_` under `node` (a run's saved config) by its path today, in place."""
    if isinstance(node, DictConfig):
        for key in node:
            value = node._get_node(key)
            if key == "_target_" and isinstance(node[key], str):
                node[key] = moved(node[key])
            elif isinstance(value, DictConfig | ListConfig):
                rename_moved_targets(value)
    elif isinstance(node, ListConfig):
        for item in node:
            rename_moved_targets(item)


def run_config(run_dir: str | Path, key: str = "run") -> DictConfig:
    """The config the run was started with (`.hydra/config.yaml`), its output folder set to
    the run directory; a ConfigError names what is missing (as `<key>=<run_dir>`)."""
    run = Path(run_dir)
    if not run.is_dir():
        raise ConfigError(f"{key}={run_dir}: no such run directory")
    saved = run / ".hydra" / "config.yaml"
    if not saved.is_file():
        raise ConfigError(
            f"{key}={run_dir}: no .hydra/config.yaml; name the directory of a training run "
            "(logs/train/runs/<run>, or a sweep job's logs/train/multiruns/<sweep>/<job>)"
        )
    try:
        cfg = OmegaConf.load(saved)
        rename_moved_targets(cfg)
        for group, target in TARGETS.items():
            if cfg[group].get("_target_") != target:
                raise ConfigError(
                    f"{key}={run_dir}: {group}._target_ is not {target}: not a run of this project"
                )
    except ConfigError:
        raise
    except Exception as err:  # YAML or OmegaConf errors of a damaged file
        raise ConfigError(f"{key}={run_dir}: .hydra/config.yaml unreadable ({err})") from None
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


def resume_config(run_dir: str | Path) -> tuple[DictConfig, list[str]]:
    """(config, overrides) to go on with a stopped run: its own config, set to continue from its
    last.ckpt in its own directory, and the overrides it was started with."""
    run = Path(run_dir)
    cfg = run_config(run, key="resume")
    last = run / "checkpoints" / "last.ckpt"
    if not last.is_file():
        raise ConfigError(
            f"resume={run_dir}: no checkpoints/last.ckpt (the run stopped before its first epoch "
            "ended): start it again"
        )
    status = run_status(run)
    if status == "ok":
        raise ConfigError(f"resume={run_dir}: the run finished (result.json says ok)")
    if status == "diverged":
        raise ConfigError(
            f"resume={run_dir}: the run diverged, and would again (it goes on exactly); start a "
            "new run with a lower model.optimizer.lr"
        )
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


def load_weights(model: MNISTClassifier, path: Path) -> None:
    """The checkpoint's weights into `model`, read with weights_only=True; a file that is not a
    checkpoint of this project, or of another net, is a ConfigError."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"ckpt={path}: not a readable checkpoint ({first[:120]})") from None
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise ConfigError(f"ckpt={path}: not a checkpoint of this project (no state_dict)")
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        detail = next((line for line in lines[1:] if "size mismatch" in line), lines[-1])
        raise ConfigError(
            f"ckpt={path}: does not fit the run's net "
            f"(model.channels={list(model.hparams['channels'])}): {detail[:160]}"
        ) from None


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


@dataclass(frozen=True)
class Argument:
    """A `key=value` argument of a command: its default (None: required) and what it means."""

    default: str | None
    help: str


RUN = Argument(None, "a training run's directory: logs/train/runs/<run>, or a sweep job's")
CKPT = Argument("best", "best (the epoch checkpoint the run kept), last, or a checkpoint file")


def usage(command: str, summary: str, allowed: dict[str, Argument]) -> str:
    """The text of `python -m <command> --help`: its call, what it does, every argument."""
    call = " ".join(
        f"{key}=<{key}>" if arg.default is None else f"[{key}={arg.default or '...'}]"
        for key, arg in allowed.items()
    )
    width = max(len(key) for key in allowed) + 1
    lines = [f"usage: python -m {command} {call}", "", summary, "", "arguments:"]
    for key, arg in allowed.items():
        # an empty default is one the help text describes (out=: a folder made per call)
        default = {None: " (required)", "": ""}.get(arg.default, f" (default: {arg.default})")
        lines.append(f"  {key + '=':<{width}}  {arg.help}{default}")
    return "\n".join(lines)


def parse_args(
    argv: list[str], allowed: dict[str, Argument], command: str, summary: str
) -> dict[str, str]:
    """key=value arguments of a command, with defaults; a wrong one is a ConfigError naming the
    allowed keys. `--help` (or `-h`) prints the usage and exits 0."""
    if "--help" in argv or "-h" in argv:
        print(usage(command, summary, allowed))
        sys.exit(0)
    args: dict[str, str] = {}
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or key not in allowed:
            names = " ".join(f"{k}=..." for k in allowed)
            raise ConfigError(
                f"{arg}: not an argument of {command} (arguments: {names}; --help explains them)"
            )
        args[key] = value
    for key, arg in allowed.items():
        if key not in args:
            if arg.default is None:
                raise ConfigError(f"{command}: {key}=... is required (--help explains it)")
            args[key] = arg.default
    return args


def exit_on_config_error(error: ConfigError) -> None:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)
