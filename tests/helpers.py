"""Helpers shared by the test modules: paths, the tiny data set and its run settings, the
config as `python -m src.train` composes it, and readers of what a run leaves (TensorBoard
events, sweep tables, figures). Fixtures live in conftest.py; no test module imports another."""

from __future__ import annotations

import csv
import os
import runpy
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"
# The tutorial's own parameter summary of its Net, conv1 to conv7 (with biases).
TUTORIAL_CONV_PARAMS = [320, 18_496, 73_856, 295_168, 1_180_160, 4_719_616, 92_170]

# Run settings for the tiny data set (write_tiny_mnist): 300 training images - 100 for
# validation = 7 batches of 32 an epoch (the last one short).
TINY = ["data.val_size=100", "data.batch_size=32", "data.eval_batch_size=50"]
STEPS_PER_EPOCH = 7
# The default callbacks' TensorBoard image views, each switched off: they take most of a tiny
# run's time (about 8 s an epoch with them, under 1 s without), for tests that look at none.
NO_VIEWS = [
    f"callbacks.{name}=null"
    for name in ("kernels", "activations", "top_patches", "erf", "cam", "test_views",
                 "shift_invariance")
]  # fmt: skip


def write_idx(path: Path, array: np.ndarray) -> None:
    """An IDX file as MNIST ships it: magic (0, 0, uint8 type 0x08, ndim), big-endian dims, data."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_tiny_mnist(data_dir: Path, n_train: int = 300, n_test: int = 100) -> Path:
    """Random 28x28 'digits' with labels 0-9 in turn, laid out where torchvision reads MNIST."""
    rng = np.random.default_rng(0)
    raw = data_dir / "MNIST" / "raw"
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    return data_dir


def compose_train(overrides: list[str], output_dir: Path) -> DictConfig:
    """The config `python -m src.train <overrides>` would run, writing into `output_dir`."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return compose(
            config_name="train.yaml",
            overrides=[
                f"paths.root_dir={ROOT}",
                f"paths.output_dir={output_dir}",
                "data.offline_dir=null",
                "++callbacks.progress_bar=null",  # ++: also where callbacks=none has none
                *overrides,
            ],
        )


def tiny_cfg(data_dir: Path, out: Path, *overrides: str) -> DictConfig:
    """compose_train on the tiny data set in `data_dir`, with the TINY settings."""
    return compose_train([f"data.data_dir={data_dir}", *TINY, *overrides], out)


def run_cli(*overrides: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """`python -m src.train <overrides>` in a process of its own, its output captured."""
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(
        [sys.executable, "-m", "src.train", *overrides],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def read_events(run_dir: Path) -> EventAccumulator:
    """The TensorBoard events of a run: fit and test each write an event file into the run's
    tensorboard/ folder."""
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    events = EventAccumulator(
        str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0}
    )
    events.Reload()
    return events


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


def colour_share(pixels: np.ndarray) -> dict[str, float]:
    """Shares of an image's pixels that are clearly red, blue, green, black and mid grey."""
    r, g, b = (pixels[..., i].astype(int) for i in range(3))
    grey = (abs(r - g) < 10) & (abs(g - b) < 10)
    return {
        "red": float(((r - b > 60) & (r > g + 30)).mean()),
        "blue": float(((b - r > 60) & (b > g)).mean()),
        "green": float(((g - r > 15) & (g - b > 15)).mean()),
        "black": float((grey & (r < 40)).mean()),
        "grey": float((grey & (r > 60) & (r < 200)).mean()),
    }


# An optimizer node as conf/model/optimizer/sgd.yaml makes one, for a module built by hand.
SGD = {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1}


def in_process(capsys: pytest.CaptureFixture, call: Callable[[], object]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of a command's `call` (its main, or its module run as
    `python -m` does) in this process, which saves the interpreter's start-up; Hydra's global
    state cleared before and after."""
    capsys.readouterr()
    GlobalHydra.instance().clear()
    try:
        call()
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
    finally:
        GlobalHydra.instance().clear()
    out, err = capsys.readouterr()
    return code, out, err


def run_as_main(module: str) -> Callable[[], object]:
    """`python -m <module>`, as a call: Hydra finds conf/ from the __main__ module's file."""
    return lambda: runpy.run_module(module, run_name="__main__")
