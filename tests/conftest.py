"""Shared fixtures: small IDX files written here, the real MNIST from the offline folder, and
the Hydra config composed as `python -m src.train` would."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from src.data.files import stage_offline_files

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"
# The tutorial's own parameter summary of its Net, conv1 to conv7 (with biases).
TUTORIAL_CONV_PARAMS = [320, 18_496, 73_856, 295_168, 1_180_160, 4_719_616, 92_170]


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


@pytest.fixture
def tiny_data_dir(tmp_path: Path) -> Path:
    return write_tiny_mnist(tmp_path / "data")


@pytest.fixture(scope="session")
def offline_dir() -> Path:
    """The folder with the four real MNIST .gz files (MNIST_OFFLINE_DIR, else ../shared/...)."""
    folder = Path(os.environ.get("MNIST_OFFLINE_DIR") or ROOT.parent / "shared/datasets/mnist")
    if not (folder / "train-images-idx3-ubyte.gz").is_file():
        pytest.fail(f"real MNIST not found in {folder}: set MNIST_OFFLINE_DIR to its folder")
    return folder


@pytest.fixture(scope="session")
def real_data_dir(tmp_path_factory: pytest.TempPathFactory, offline_dir: Path) -> Path:
    data_dir = tmp_path_factory.mktemp("real") / "data"
    stage_offline_files(offline_dir, data_dir / "MNIST" / "raw")
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
