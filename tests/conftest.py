"""Shared fixtures: the tiny data set written into a test's folder, and the real MNIST from the
offline folder. Plain helpers (paths, the tiny run settings, compose_train...) are in helpers.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from src.data.files import stage_offline_files

from .helpers import ROOT, write_tiny_mnist


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
