from __future__ import annotations

import io
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from src.config.build import instantiate
from src.config.checks import LOGGED_METRICS
from src.core.architecture import analyze, plan_layers
from src.core.errors import ConfigError
from src.lit.views import unit_patches
from src.train import train

from .helpers import (
    NO_VIEWS,
    ROOT,
    TINY,
    colour_share,
    compose_train,
    read_events,
    write_tiny_mnist,
)

CHANNELS = "model.channels=[4,8,8,16]"  # conv1-4 + conv5 (1x1 logits); pool1 after conv2
HOOKED = ["conv1", "conv2", "pool1", "conv3", "conv4"]
CONVS = [f"conv{i}" for i in range(1, 6)]


def decoded(events: EventAccumulator, tag: str, index: int = -1) -> np.ndarray:
    """The logged image as an (H, W, 3) uint8 array, decoded from its PNG."""
    encoded = events.Images(tag)[index].encoded_image_string
    return np.asarray(Image.open(io.BytesIO(encoded)).convert("RGB"))


def heatmap_colours(pixels: np.ndarray) -> int:
    """How many distinct non-grey colours the left three quarters of an image hold (the colour
    bar, on the right, holds a whole gradient of its own)."""
    left = pixels[:, : pixels.shape[1] * 3 // 4].reshape(-1, 3).astype(int)
    coloured = left[np.ptp(left, axis=1) > 20]
    return len(np.unique(coloured, axis=0))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, EventAccumulator, dict]:
    tmp = tmp_path_factory.mktemp("callbacks")
    data_dir = write_tiny_mnist(tmp / "data")
    overrides = [f"data.data_dir={data_dir}", *TINY, CHANNELS, "trainer.max_epochs=2"]
    cfg = compose_train(overrides, tmp / "run")
    probe = instantiate(cfg.data).probe_batch()
    metrics = train(cfg)["metrics"]
    return tmp / "run", read_events(tmp / "run"), {"probe": probe, "metrics": metrics}


def test_kernel_images_for_every_conv_layer_in_network_order(run) -> None:
    _, events, _ = run
    tags = sorted(t for t in events.Tags()["images"] if t.startswith("kernels/"))
    kernels = [f"kernels/{i:02d}_{name}" for i, name in enumerate(CONVS, start=1)]
    norms = [f"{tag}_norms" for tag in kernels[1:4]]  # 3x3 convs with several inputs
    assert tags == sorted(kernels + norms)
    assert [e.step for e in events.Images("kernels/01_conv1")] == [0, 7, 14]  # start + 2 epochs
    assert {f"weights/{name}" for name in CONVS} <= set(events.Tags()["histograms"])


def test_every_logged_image_has_contrast(run) -> None:
    _, events, _ = run
    tags = events.Tags()["images"]
    # kernels, norms, inputs + 5 hooked layers, test views, receptive field, CAM, shift curve,
    # effective receptive fields, top patches of conv1-4
    assert len(tags) == 5 + 3 + 6 + 2 + 1 + 1 + 1 + 1 + 4
    for tag in tags:
        share = colour_share(decoded(events, tag))
        if tag == "architecture/receptive_field":  # red and blue boxes on digits
            assert share["red"] > 0.002 and share["blue"] > 0.002, (tag, share)
            assert share["black"] > 0.03, (tag, share)
        elif tag.endswith("_norms") or tag == "erf/maps":  # magnitudes: many shades (a
            assert heatmap_colours(decoded(events, tag)) > 20, tag  # constant map draws one)
        elif tag.startswith("kernels/"):  # random weights: both signs show, the 1x1 conv too
            assert share["red"] > 0.01 and share["blue"] > 0.01, (tag, share)
        elif tag.startswith("activations/") and "pool" in tag:  # after ReLU: only positive
            assert share["red"] > 0.01, (tag, share)
        elif tag.startswith("activations/") and "inputs" not in tag:
            assert share["red"] > 0.01 and share["blue"] > 0.01, (tag, share)
        elif tag == "cam/probe":  # a signed map under every digit's outline
            assert share["red"] + share["blue"] > 0.1 and share["black"] > 0.005, (tag, share)
        elif tag == "shift/accuracy":  # a blue curve on white
            assert share["blue"] > 0.003, (tag, share)
        elif tag == "test/confusion_matrix":
            assert share["green"] > 0.01 and share["red"] > 0.01, (tag, share)
        else:  # digits on black tiles; the tiny data's noise 'ink' is grey (a blank tile: 1.5%)
            assert share["black"] > 0.03 and share["grey"] > 0.03, (tag, share)


def test_one_activation_image_per_hooked_layer_in_network_order(run) -> None:
    _, events, _ = run
    tags = sorted(t for t in events.Tags()["images"] if t.startswith("activations/"))
    expected = ["activations/00_inputs"]
    expected += [f"activations/{i:02d}_{name}" for i, name in enumerate(HOOKED, start=1)]
    assert tags == expected  # conv5 (1x1 output) is not hooked
    assert [e.step for e in events.Images("activations/02_conv2")] == [7, 14]


def test_probe_batch_is_the_first_val_image_of_each_digit_and_fixed(run) -> None:
    _, events, holder = run
    images, labels = holder["probe"]
    assert labels.tolist() == list(range(10)) and images.shape == (10, 1, 28, 28)
    inputs = events.Images("activations/00_inputs")
    assert len(inputs) == 2 and inputs[0].encoded_image_string == inputs[1].encoded_image_string


def test_test_views_confusion_matrix_and_mistakes(run) -> None:
    _, events, holder = run
    tags = set(events.Tags()["images"])
    assert {"test/confusion_matrix", "test/mistakes"} <= tags
    assert holder["metrics"]["test/acc"] < 1.0  # random tiny data: there are mistakes to show
    height, width = decoded(events, "test/mistakes").shape[:2]
    assert width == 440 and height <= width  # drawn for the card (see test_drawing.py)


def test_learning_rate_is_logged_at_every_step(run) -> None:
    _, events, _ = run
    lr = events.Scalars("train/lr")
    assert [e.step for e in lr] == list(range(14))  # 2 epochs of 7 batches
    values = [e.value for e in lr]
    peak = values.index(max(values))  # OneCycle: up, then down
    assert 0 < peak < 13 and values[0] < values[peak] > values[-1]


def test_reading_guide_in_the_text_tab(run) -> None:
    _, events, _ = run
    guide = events.Tensors("how_to_read_the_images/text_summary")[0]
    text = guide.tensor_proto.string_val[0].decode()
    # an entry for every group of images the run logged, in the Images tab's (sorted) order
    groups = sorted({tag.split("/")[0] for tag in events.Tags()["images"]})
    assert {"activations", "kernels"} <= set(groups), groups
    places = [text.find(f"- **{group}/") for group in groups]
    assert -1 not in places, [g for g, p in zip(groups, places, strict=True) if p == -1]
    assert places == sorted(places), groups
    for entry in ["top_patches/NN_convK", "erf/maps", "cam/probe", "shift/accuracy"]:
        assert f"- **{entry}**" in text, entry  # views the short test run may not draw


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
    assert "activations/01_conv1" in events.Tags()["images"]  # the hooks did run
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_without_a_logger_one_line_names_the_views_and_the_run_completes(
    tiny_data_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = compose_train(
        [f"data.data_dir={tiny_data_dir}", *TINY, "logger=none", "trainer.max_epochs=1"], tmp_path
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        metrics = train(cfg)["metrics"]
    assert not [w for w in caught if "TensorBoard" in str(w.message)]  # none from each view
    assert "test/acc" in metrics
    assert (tmp_path / "architecture.md").is_file()
    unlogged = [r.getMessage() for r in caplog.records if "TensorBoard" in r.getMessage()]
    assert unlogged == [
        "no TensorBoard logger, so these draw nothing: HParamsSummary, ArchitectureReport, "
        "KernelImages, ActivationImages, TopPatches, EffectiveReceptiveField, "
        "ClassActivationMaps, TestViews, ShiftInvariance"
    ]


def test_bad_callback_values_are_refused(tiny_data_dir: Path, tmp_path: Path) -> None:
    cfg = compose_train(
        [f"data.data_dir={tiny_data_dir}", *TINY, "callbacks.activations.layers=[conv1,conv9]"],
        tmp_path,
    )
    with pytest.raises(ConfigError, match=r"no layer 'conv9' in the net"):
        train(cfg)


def test_export_script_writes_the_logged_images_as_png(run, tmp_path: Path) -> None:
    run_dir, events, _ = run
    script = ROOT / "scripts" / "export_images.py"
    out = tmp_path / "png"
    args = [sys.executable, str(script), str(run_dir), "--out", str(out), "--tag", "kernels/"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in out.iterdir())
    kernels = [f"kernels_{i:02d}_conv{i}" for i in range(1, 6)]
    expected = kernels + [f"{name}_norms" for name in kernels[1:4]]
    assert names == sorted(f"{name}_step000014.png" for name in expected)
    logged = events.Images("kernels/01_conv1")[-1].encoded_image_string
    assert (out / names[0]).read_bytes() == logged
    missing = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "nope")], capture_output=True, text=True
    )
    assert missing.returncode == 2 and missing.stderr.startswith("error: ")


def test_class_activation_maps_after_every_validation_epoch(run) -> None:
    _, events, _ = run
    assert [e.step for e in events.Images("cam/probe")] == [7, 14]
    assert {f"shift/acc_{k}px" for k in (1, 2, 3, 4)} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Images("shift/accuracy")] == [14]


def test_effective_receptive_fields_at_fit_start_and_after_every_epoch(run) -> None:
    _, events, _ = run
    assert [e.step for e in events.Images("erf/maps")] == [0, 7, 14]
    # each layer's 90% square is no wider than its theoretical receptive field
    for name, field in (("conv1", 3), ("conv2", 5), ("pool1", 6), ("conv3", 10), ("conv4", 14)):
        sides = [e.value for e in events.Scalars(f"erf/{name}")]
        assert len(sides) == 3 and all(1 <= side <= field for side in sides), (name, sides)


def test_a_conv_head_net_gets_no_cam_and_one_warning(tiny_data_dir: Path, tmp_path: Path):
    # the other views off: the `run` above draws theirs
    cfg = compose_train(
        [f"data.data_dir={tiny_data_dir}", *TINY, "model.channels=[4,8,8,16,16,16]",
         "model.head=conv", "model.valid_tail=3", "trainer.max_epochs=1", "test=false",
         *(view for view in NO_VIEWS if view != "callbacks.cam=null")], tmp_path,
    )  # fmt: skip
    with pytest.warns(UserWarning, match="head=conv net has no exact class activation map"):
        train(cfg)
    assert "cam/probe" not in read_events(tmp_path).Tags()["images"]


def test_top_patches_of_every_conv_after_the_last_epoch(run) -> None:
    _, events, _ = run
    tags = sorted(t for t in events.Tags()["images"] if t.startswith("top_patches/"))
    assert tags == [f"top_patches/{i:02d}_conv{i}" for i in range(1, 5)]  # not the 1x1 logits
    assert [e.step for e in events.Images("top_patches/04_conv4")] == [14]  # the last epoch


def test_top_patches_are_the_windows_the_arithmetic_gives() -> None:
    # [8,8,16,16]: conv1, conv2, pool1, conv3 has start 1.0, jump 2, receptive field 10 (by hand)
    row = next(r for r in analyze(plan_layers([8, 8, 16, 16]), 28) if r.layer.name == "conv3")
    assert (row.start, row.jump, row.receptive_field) == (1.0, 2, 10)
    digits = torch.rand(3, 1, 28, 28)
    # unit (row 0, column 2) of image 1: centre (1.0, 5.0), window rows -4..6, columns 0..10
    patches = unit_patches(digits, row, torch.tensor([[[1, 0, 2]]]))
    assert patches.shape == (1, 1, 10, 10)
    assert patches[0, 0, :4].abs().sum() == 0  # four rows of padding, drawn as blank paper
    assert torch.equal(patches[0, 0, 4:], digits[1, 0, 0:6, 0:10])


def test_the_metrics_a_callback_may_monitor_are_the_ones_a_run_logs(run) -> None:
    # callbacks.<name>.monitor is checked against LOGGED_METRICS before any work
    _, events, _ = run
    scalars = events.Tags()["scalars"]
    logged = {tag for tag in scalars if tag.split("/")[0] in ("train", "val", "test")}
    assert logged - {"train/lr"} <= set(LOGGED_METRICS)
    # train/loss goes out every trainer.log_every_n_steps (50) steps, more than this run has
    assert set(LOGGED_METRICS) - logged == {"train/loss"}
