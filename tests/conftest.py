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


# Slow tests of the modules whose test code is kept as it is (only their imports change here),
# marked here by name; the other modules mark theirs with @pytest.mark.slow in place. `make test`
# leaves the slow ones out, `make test-all` (CI) runs them.
SLOW_BY_NAME = {
    "test_trust.py": {
        "test_a_stopped_and_resumed_run_ends_bit_identical": "three 4-epoch runs with every view",
        "test_a_diverged_run_says_so": "a run with every view, through the command line",
        "test_sigterm_stops_the_command_and_resume_goes_on": "two runs, processes of their own",
        "test_a_signal_stops_every_process_of_a_two_process_run": "a two-process DDP run",
    },
    "test_model.py": {
        "test_compiled_net_trains_and_keeps_its_checkpoint_keys": "torch.compile of a whole run",
    },
}


@pytest.hookimpl(tryfirst=True)  # before `-m "not slow"` deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = SLOW_BY_NAME.get(item.path.name, {})
        unknown = [name for name in names if not hasattr(item.module, name)]
        if unknown:  # renamed or gone: the list must follow
            raise pytest.UsageError(f"conftest.SLOW_BY_NAME: no {unknown} in {item.path.name}")
        if item.originalname in names:
            item.add_marker(pytest.mark.slow)
