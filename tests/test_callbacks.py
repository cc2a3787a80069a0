from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from src.callbacks import kernel_grid
from src.errors import ConfigError
from src.train import instantiate, train

from .conftest import ROOT, compose_train, write_tiny_mnist
from .test_train import TINY, read_events

CHANNELS = "model.channels=[4,8,8,16]"  # conv1-4 + conv5 (1x1 logits); pool1 after conv2
HOOKED = ["conv1", "conv2", "pool1", "conv3", "conv4"]


def image_size(events: EventAccumulator, tag: str, index: int = -1) -> tuple[int, int]:
    """(width, height) of the logged image, decoded from its PNG."""
    encoded = events.Images(tag)[index].encoded_image_string
    return Image.open(io.BytesIO(encoded)).size


def grid_side(tiles: int, pixels: int) -> int:
    return tiles * (pixels + 1) + 1  # tiles separated and framed by 1 pixel


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, EventAccumulator, dict]:
    tmp = tmp_path_factory.mktemp("callbacks")
    data_dir = write_tiny_mnist(tmp / "data")
    overrides = [f"data.data_dir={data_dir}", *TINY, CHANNELS, "trainer.max_epochs=2"]
    cfg = compose_train(overrides, tmp / "run")
    probe = instantiate(cfg.data).probe_batch()
    metrics = train(cfg)["metrics"]
    return tmp / "run", read_events(tmp / "run"), {"probe": probe, "metrics": metrics}


def test_kernel_images_for_every_conv_layer(run) -> None:
    _, events, _ = run
    tags = set(events.Tags()["images"])
    assert {f"kernels/conv{i}" for i in range(1, 6)} <= tags
    assert [e.step for e in events.Images("kernels/conv1")] == [0, 7, 14]  # fit start + 2 epochs
    # conv1: 4 kernels of 3x3 (8 px a weight) in one row; conv3: 8 filters x 8 inputs
    assert image_size(events, "kernels/conv1") == (grid_side(4, 24), grid_side(1, 24))
    assert image_size(events, "kernels/conv3") == (grid_side(8, 24), grid_side(8, 24))
    assert image_size(events, "kernels/conv5") == (grid_side(16, 8), grid_side(10, 8))
    assert {f"weights/conv{i}" for i in range(1, 6)} <= set(events.Tags()["histograms"])


def test_activation_images_per_hooked_layer_and_digit_each_epoch(run) -> None:
    _, events, _ = run
    tags = set(events.Tags()["images"])
    expected = {f"activations/{layer}/{digit}" for layer in HOOKED for digit in range(10)}
    assert expected <= tags
    assert not any(t.startswith("activations/conv5") for t in tags)  # 1x1 output: not hooked
    assert [e.step for e in events.Images("activations/conv2/7")] == [7, 14]
    # conv2: 8 maps of 28x28 in one row of 8; pool1: 8 maps of 14x14 enlarged to 28x28
    assert image_size(events, "activations/conv2/7") == (grid_side(8, 28), grid_side(1, 28))
    assert image_size(events, "activations/pool1/0") == (grid_side(8, 28), grid_side(1, 28))
    assert image_size(events, "activations/conv4/3") == (grid_side(8, 28), grid_side(2, 28))


def test_probe_batch_is_the_first_val_image_of_each_digit_and_fixed(run) -> None:
    _, events, holder = run
    images, labels = holder["probe"]
    assert labels.tolist() == list(range(10)) and images.shape == (10, 1, 28, 28)
    inputs = events.Images("activations/inputs")
    assert len(inputs) == 2 and inputs[0].encoded_image_string == inputs[1].encoded_image_string


def test_test_views_confusion_matrix_and_mistakes(run) -> None:
    _, events, holder = run
    tags = set(events.Tags()["images"])
    assert {"test/confusion_matrix", "test/mistakes"} <= tags
    width, height = image_size(events, "test/confusion_matrix")
    assert (width, height) == (600, 550)
    assert holder["metrics"]["test/acc"] < 1.0  # random tiny data: there are mistakes to show


def test_no_forward_hook_stays_after_fit(tiny_data_dir: Path, tmp_path: Path) -> None:
    cfg = compose_train([f"data.data_dir={tiny_data_dir}", *TINY], tmp_path)
    model = instantiate(cfg.model, _convert_="all")
    trainer = Trainer(
        max_epochs=1,
        logger=TensorBoardLogger(tmp_path, name="", version=""),
        callbacks=[instantiate(cfg.callbacks.activations)],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=instantiate(cfg.data))
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert "activations/conv1/0" in events.Tags()["images"]  # the hooks did run
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_without_a_logger_the_callbacks_warn_and_the_run_completes(
    tiny_data_dir: Path, tmp_path: Path
) -> None:
    cfg = compose_train(
        [f"data.data_dir={tiny_data_dir}", *TINY, "logger=none", "trainer.max_epochs=1"], tmp_path
    )
    with pytest.warns(UserWarning, match="KernelImages: no TensorBoard logger"):
        metrics = train(cfg)["metrics"]
    assert "test/acc" in metrics
    assert (tmp_path / "architecture.md").is_file()


def test_kernel_grid_normalization() -> None:
    weight = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]], [[[0.0, 10.0], [20.0, 30.0]]]])
    per_kernel = kernel_grid(weight, 32, "per_kernel", 1)[0]
    per_layer = kernel_grid(weight, 32, "per_layer", 1)[0]
    # image row 1 holds the kernels' first rows: kernel 0 at x=1,2; kernel 1 at x=4,5
    assert per_kernel[1, 1:3].tolist() == pytest.approx([0.0, 1 / 3])
    assert per_kernel[1, 4:6].tolist() == pytest.approx([0.0, 1 / 3])
    assert per_layer[1, 1:3].tolist() == pytest.approx([0.0, 1 / 30])
    assert per_layer[2, 4:6].tolist() == pytest.approx([20 / 30, 1.0])


def test_bad_callback_values_are_refused(tiny_data_dir: Path, tmp_path: Path) -> None:
    cfg = compose_train(["callbacks.kernels.normalize=global"], tmp_path)
    with pytest.raises(
        ConfigError, match=r"callbacks\.kernels\.normalize='global': must be one of"
    ):
        instantiate(cfg.callbacks.kernels)
    cfg = compose_train(
        [f"data.data_dir={tiny_data_dir}", *TINY, "callbacks.activations.layers=[conv1,conv9]"],
        tmp_path,
    )
    with pytest.raises(ConfigError, match=r"no layer 'conv9' in the net"):
        train(cfg)


def test_export_script_writes_the_logged_images_as_png(run, tmp_path: Path) -> None:
    run_dir, _, _ = run
    script = ROOT / "scripts" / "export_images.py"
    out = tmp_path / "png"
    args = [sys.executable, str(script), str(run_dir), "--out", str(out), "--tag", "kernels/"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"kernels_conv{i}_step000014.png" for i in range(1, 6)]
    assert Image.open(out / names[0]).size == (grid_side(4, 24), grid_side(1, 24))
    missing = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "nope")], capture_output=True, text=True
    )
    assert missing.returncode == 2 and missing.stderr.startswith("error: ")
