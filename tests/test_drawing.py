"""The drawing module: tensors in, figures out; what each figure shows, its scale and its size."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from src.core.drawing import (
    confusion_figure,
    crop,
    feature_map_figure,
    figure_pixels,
    kernel_figure,
    kernel_norm_figure,
    mistakes_figure,
    most_active,
    top_patches_figure,
    top_units,
)
from src.core.lessons import shift_figure

from .helpers import colour_share

CARD_WIDTH = 290  # pixels an image gets on a default card, Images tab, 1600-px window


def shown_array(figure: Figure, axes: int = 0) -> np.ndarray:
    """The values an axes' image draws, with the gaps (masked NaN) as NaN."""
    return np.ma.filled(figure.axes[axes].images[0].get_array().astype(float), np.nan)


def tile_pixels_on_a_card(figure: Figure, cells_per_tile: int, axes: int = 0) -> float:
    """How many screen pixels one tile of `cells_per_tile` mosaic cells gets once TensorBoard
    shrinks the figure to a card's width."""
    figure_pixels(figure)  # lays the figure out
    ax = figure.axes[axes]
    axes_width = ax.get_window_extent().width
    cells = shown_array(figure, axes).shape[1]
    width = figure.get_figwidth() * figure.dpi
    return axes_width / cells * cells_per_tile * CARD_WIDTH / width


def test_first_conv_shows_every_kernel_on_one_signed_scale() -> None:
    weight = torch.randn(16, 1, 3, 3)
    weight[5] *= 10  # one strong kernel: the others must look weak beside it
    figure = kernel_figure(weight, "conv1")
    image = figure.axes[0].images[0]
    limit = float(weight.abs().max())
    assert (image.norm.vmin, image.norm.vmax) == pytest.approx((-limit, limit))
    array = shown_array(figure)
    assert array.shape == (4 * 4 + 1, 4 * 4 + 1)  # 4 rows of 4 kernels, 1-cell gaps
    # the raw weights, not each kernel stretched to its own range
    assert np.allclose(array[1:4, 1:4], weight[0, 0].numpy())
    assert np.allclose(array[5:8, 5:8], weight[5, 0].numpy())
    assert np.isnan(array[0]).all()  # the gap rows draw as grey
    assert tile_pixels_on_a_card(figure, 3) >= 8
    assert "all 16 kernels" in figure.axes[0].get_title()


def axes_pixels(figure: Figure, index: int = 0) -> np.ndarray:
    """The rendered pixels inside one axes (the mosaic, without title and colour bar)."""
    pixels = figure_pixels(figure)
    box = figure.axes[index].get_window_extent()
    height = pixels.shape[0]
    return pixels[int(height - box.y1) + 1 : int(height - box.y0), int(box.x0) + 1 : int(box.x1)]


def test_a_negated_kernel_draws_differently() -> None:
    weight = torch.rand(8, 1, 3, 3) + 0.1  # all positive: red only
    positive = colour_share(axes_pixels(kernel_figure(weight, "conv1")))
    negative = colour_share(axes_pixels(kernel_figure(-weight, "conv1")))
    assert positive["red"] > 0.2 and negative["blue"] > 0.2
    assert positive["blue"] == 0 and negative["red"] == 0


def test_deeper_conv_shows_8_by_8_kernels_and_every_norm() -> None:
    weight = torch.randn(64, 32, 3, 3)
    weight[3, 7] = 0  # filter 3 ignores input 7
    figure = kernel_figure(weight, "conv4")
    array = shown_array(figure)
    assert array.shape == (8 * 4 + 1, 8 * 4 + 1)
    assert np.allclose(array[5:8, 1:4], weight[1, 0].numpy())  # row: filter, column: input
    assert tile_pixels_on_a_card(figure, 3) >= 8
    norms = shown_array(kernel_norm_figure(weight, "conv4"))
    assert norms.shape == (64, 32)
    assert norms[3, 7] == 0 and norms[0, 0] == pytest.approx(float(weight[0, 0].norm()))


def test_figures_are_no_taller_than_wide() -> None:
    # Time Series fits an image card's height, the Images tab its width: a tall figure would
    # shrink to a strip in one of them
    weight = torch.randn(64, 32, 3, 3)
    figures = [
        kernel_figure(torch.randn(32, 1, 3, 3), "conv1"),
        kernel_figure(weight, "conv4"),
        kernel_norm_figure(weight, "conv4"),
        kernel_figure(torch.randn(10, 64, 1, 1), "conv7"),
        feature_map_figure(torch.randn(10, 64, 7, 7), torch.rand(10, 1, 28, 28), "conv5"),
        confusion_figure(torch.diag(torch.full((10,), 1000))),
        mistakes_figure(torch.rand(18, 1, 28, 28), *torch.zeros(2, 18, dtype=torch.long),
                        torch.rand(18), total=49),
        shift_figure([0.99, 0.98, 0.95, 0.9, 0.8]),
        top_patches_figure(torch.rand(6, 8, 32, 32), "conv6"),
    ]  # fmt: skip
    for figure in figures:
        height, width = figure_pixels(figure).shape[:2]
        assert width == 440 and height <= width, figure.get_suptitle()


def test_a_1x1_logits_conv_is_a_signed_heatmap_with_contrast() -> None:
    weight = torch.randn(10, 64, 1, 1)
    figure = kernel_figure(weight, "conv7", output_label="digit")
    assert shown_array(figure).shape == (10, 64)
    assert figure.axes[0].get_ylabel() == "digit"
    share = colour_share(figure_pixels(figure))
    assert share["red"] > 0.05 and share["blue"] > 0.05  # never a black image again


def test_activation_figure_shows_the_most_active_channels_and_says_so() -> None:
    maps = torch.zeros(10, 64, 7, 7)
    for rank, channel in enumerate([40, 3, 17]):
        maps[:, channel] = 3.0 - rank  # three active channels, 40 the most
    maps[:, 9] = -0.5
    assert most_active(maps, 4).tolist() == [40, 3, 17, 9]
    digits = torch.rand(10, 1, 28, 28)
    figure = feature_map_figure(maps, digits, "conv5", max_maps=4)
    assert figure.get_suptitle() == "conv5 (7x7): the 4 most active of 64"
    array = shown_array(figure, axes=1)
    assert array.shape == (10 * 8 + 1, 4 * 8 + 1)  # a row per digit, 7x7 maps, 1-cell gaps
    assert np.allclose(array[1:8, 1:8], 3.0) and np.allclose(array[1:8, 25:32], -0.5)
    image = figure.axes[1].images[0]
    assert (image.norm.vmin, image.norm.vmax) == (-3.0, 3.0)  # one scale for the layer
    every = feature_map_figure(maps[:, :4], digits, "conv1", max_maps=12)
    assert every.get_suptitle() == "conv1 (7x7): every channel"


def test_mistakes_surest_first_and_how_many_of_all() -> None:
    images = torch.rand(3, 1, 28, 28)
    predicted, true = torch.tensor([1, 2, 3]), torch.tensor([7, 7, 8])
    figure = mistakes_figure(images, predicted, true, torch.tensor([0.5, 0.99, 0.7]), total=49)
    assert figure.get_suptitle().startswith("3 of 49 mistakes, surest first")
    titles = [ax.get_title() for ax in figure.axes if ax.get_title()]
    assert titles == ["2 (99%)\ntrue 7", "3 (70%)\ntrue 8", "1 (50%)\ntrue 7"]


def test_confusion_figure_counts_and_leaves_zeros_empty() -> None:
    confusion = torch.diag(torch.full((10,), 98))
    confusion[4, 9] = 2
    figure = confusion_figure(confusion)
    texts = [t.get_text() for t in figure.axes[0].texts]
    assert sorted(texts) == sorted(["98"] * 10 + ["2"])
    assert figure.axes[0].get_title() == "980 of 982 right, 2 mistakes"


def test_shift_curve_plots_accuracy_in_percent_against_whole_pixels() -> None:
    figure = shift_figure([0.992, 0.981, 0.95, 0.9, 0.8])
    x, y = figure.axes[0].lines[0].get_data()
    assert list(x) == [0, 1, 2, 3, 4] and np.allclose(y, [99.2, 98.1, 95, 90, 80])
    assert [t.get_text() for t in figure.axes[0].texts] == ["99.2", "98.1", "95.0", "90.0", "80.0"]
    pixels = figure_pixels(figure)[..., :3].astype(int)
    blue = (pixels[..., 2] > 150) & (pixels[..., 0] < 100)  # the curve, tab:blue
    assert blue.mean() > 0.003


def test_top_units_are_each_channels_strongest_images_and_places() -> None:
    maps = torch.zeros(5, 3, 7, 7)
    maps[2, 0, 1, 4] = 9.0  # channel 0: image 2 strongest (at row 1, column 4), then image 4
    maps[4, 0, 6, 0] = 5.0
    maps[0, 1, 3, 3] = 7.0  # channel 1: image 0 first
    units = top_units(maps, channels=2, count=2)
    assert units.shape == (2, 2, 3)
    assert units[0].tolist() == [[2, 1, 4], [4, 6, 0]]
    assert units[1, 0].tolist() == [0, 3, 3]


def test_a_crop_is_the_window_the_arithmetic_gives_with_paper_past_the_edge() -> None:
    images = torch.arange(28 * 28, dtype=torch.float).reshape(1, 1, 28, 28) / 1000
    inside = crop(images, 5, 7, 10)
    assert inside.shape == (1, 10, 10) and torch.equal(inside[0], images[0, 0, 5:15, 7:17])
    corner = crop(images, -2, -2, 5)  # a corner unit of a padded conv sees 2 rows of padding
    assert torch.equal(corner[0, 2:, 2:], images[0, 0, :3, :3])
    assert corner[0, :2].abs().sum() == 0 and corner[0, :, :2].abs().sum() == 0
