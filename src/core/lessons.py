"""The tutorial's lessons drawn, with the sizes and colour conventions of `src.core.drawing`:
what each layer's units see of a digit (receptive field, effective receptive field), what
repeated max-pooling keeps, how accuracy holds under a shift, and where a class's evidence lies
(class activation maps). Pure functions from tensors to matplotlib figures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib
import matplotlib.patches
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from src.core.drawing import (
    DIGIT,
    DIVERGING,
    DPI,
    MAGNITUDE,
    TEXT,
    TITLE,
    WIDTH,
    colour_bar,
    plain_axes,
    symmetric_limit,
)


def receptive_field_figure(
    digit: Tensor, layers: Sequence[tuple[str, int, tuple, tuple]]
) -> Figure:
    """The tutorial's lesson on one digit (28, 28), 0-1 scale: for each layer (name, output
    size, centre unit's box, corner unit's box; boxes as (first edge, last edge) in input
    pixel-edge coordinates, the same along both axes), the window of the input that the centre
    unit (red) and the top-left corner unit (blue) of its output see. The grey margin around the
    digit is the padding a box reaches into."""
    side = digit.shape[-1]
    reach = max(
        [0.0]
        + [max(-box[0], box[1] - side) for *_, centre, corner in layers for box in (centre, corner)]
    )
    margin = int(math.ceil(reach))
    columns = min(4, len(layers))
    rows = -(-len(layers) // columns)
    figure = Figure(
        figsize=(WIDTH, 0.5 + rows * WIDTH / columns * 1.3), dpi=DPI, layout="constrained"
    )
    axes = figure.subplots(rows, columns, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    extent = (-0.5 - margin, side - 0.5 + margin, side - 0.5 + margin, -0.5 - margin)
    canvas = np.full((side + 2 * margin, side + 2 * margin), np.nan, dtype=np.float32)
    canvas[margin : margin + side, margin : margin + side] = digit.reshape(side, side).numpy()
    for ax, (name, out_size, centre, corner) in zip(axes.flat, layers, strict=False):
        ax.imshow(canvas, cmap=DIGIT, vmin=0, vmax=1, extent=extent, interpolation="nearest")
        for (first, last), colour in ((corner, "#3b7dd8"), (centre, "#e0442b")):
            # edges to image coordinates, where pixel i spans [i - 0.5, i + 0.5]
            ax.add_patch(
                matplotlib.patches.Rectangle(
                    (first - 0.5, first - 0.5), last - first, last - first,
                    fill=False, edgecolor=colour, linewidth=1.8,
                )
            )  # fmt: skip
        rf = int(centre[1] - centre[0])
        ax.set_title(f"{name} ({out_size}x{out_size})\nsees {rf}x{rf}", fontsize=TEXT - 1)
    figure.suptitle("receptive field: centre unit red, corner blue", fontsize=TITLE)
    return figure


def pooling_figure(digit: Tensor, times: int = 3) -> Figure:
    """A digit (28, 28) max-pooled 2x2 0, 1, ..., `times` times: what repeated pooling keeps."""
    figure = Figure(figsize=(WIDTH, WIDTH / (times + 1) + 0.9), dpi=DPI, layout="constrained")
    axes = figure.subplots(1, times + 1)
    image = digit.reshape(1, 1, *digit.shape[-2:]).float()
    for count, ax in enumerate(axes):
        ax.imshow(image[0, 0].numpy(), cmap=DIGIT, vmin=0, vmax=1, interpolation="nearest")
        plain_axes(ax)
        ax.set_title(f"{count}x: {image.shape[-1]}x{image.shape[-2]}", fontsize=TEXT)
        image = torch.nn.functional.max_pool2d(image, 2)
    figure.suptitle("max-pooled 2x2, again and again", fontsize=TITLE)
    return figure


def shift_figure(accuracy: Sequence[float], title: str = "test accuracy under shift") -> Figure:
    """Test accuracy (0-1) against how far every image was moved, accuracy[k] for k pixels (the
    mean of the four directions): the tutorial's "wagging tail" as a curve."""
    figure = Figure(figsize=(WIDTH, WIDTH * 0.75), dpi=DPI, layout="constrained")
    ax = figure.subplots()
    shifts = range(len(accuracy))
    percent = [100 * a for a in accuracy]
    ax.plot(shifts, percent, marker="o", color="tab:blue")
    for k, value in zip(shifts, percent, strict=True):
        ax.annotate(f"{value:.1f}", (k, value), xytext=(0, 7), textcoords="offset points",
                    ha="center", fontsize=TEXT - 2)  # fmt: skip
    ax.set_xticks(list(shifts))
    ax.set_xlabel("shift (pixels, each way)", fontsize=TEXT)
    ax.set_ylabel("test accuracy (%)", fontsize=TEXT)
    ax.set_title(title, fontsize=TITLE)
    ax.margins(y=0.2)
    ax.grid(True, alpha=0.3)
    return figure


def cam_figure(digits: Tensor, maps: Tensor, predicted: Tensor, truth: Tensor) -> Figure:
    """Class activation maps: for each digit (N, 1, 28, 28, 0-1), the map (N, h, w) of the class
    the net predicted, upsampled to the digit's size, on one signed scale for all: red where the
    place adds to that class's logit, blue where it takes away (the logit is the map's mean).
    The digit's strokes are drawn over it as an outline."""
    n, side = len(digits), digits.shape[-1]
    maps = maps.detach().float().cpu()
    upsampled = torch.nn.functional.interpolate(maps[:, None], size=(side, side), mode="bilinear",
                                                align_corners=False)[:, 0]  # fmt: skip
    limit = symmetric_limit(upsampled)
    columns = min(n, 5)
    rows = -(-n // columns)
    tile = (WIDTH - 0.9) / columns
    figure = Figure(figsize=(WIDTH, 0.9 + rows * tile * 1.3), dpi=DPI, layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    image = None
    for ax in axes.flat:
        plain_axes(ax)
    for ax, digit, cam, guess, label in zip(axes.flat, digits, upsampled, predicted, truth,
                                            strict=False):  # fmt: skip
        image = ax.imshow(cam.numpy(), cmap=DIVERGING, vmin=-limit, vmax=limit,
                          interpolation="bilinear")  # fmt: skip
        ax.contour(digit[0].cpu().numpy(), levels=[0.5], colors="black", linewidths=1.2)
        colour = "black" if int(guess) == int(label) else "tab:red"
        ax.set_title(f"{int(guess)} (is {int(label)})", fontsize=TEXT, color=colour)
    figure.suptitle(f"where the predicted class is seen ({maps.shape[-2]}x{maps.shape[-1]} map)",
                    fontsize=TITLE)  # fmt: skip
    if image is not None:
        colour_bar(figure, image, axes, "logit share")
    return figure


def erf_figure(
    gradients: Sequence[Tensor],
    names: Sequence[str],
    windows: Sequence[tuple[float, float]],
    sides: Sequence[int],
    title: str,
) -> Figure:
    """Effective receptive fields: for each layer, the input-gradient magnitude of its centre
    unit (H, W), scaled to its own maximum (the layers' gradients differ by orders of
    magnitude), with the theoretical receptive field (`windows`, pixel-edge coordinates, the
    same on both axes) as a dashed box and, in the title, the side of the square that holds 90%
    of the gradient (`sides`) against the theoretical one."""
    columns = min(4, len(gradients))
    rows = -(-len(gradients) // columns)
    tile = (WIDTH - 0.2) / columns
    figure = Figure(figsize=(WIDTH, 0.6 + rows * tile * 1.45), dpi=DPI, layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    for ax in axes.flat:
        plain_axes(ax)
    for ax, gradient, name, (low, high), side in zip(axes.flat, gradients, names, windows, sides,
                                                     strict=False):  # fmt: skip
        peak = float(gradient.max()) or 1.0
        ax.imshow((gradient / peak).numpy(), cmap=MAGNITUDE, vmin=0, vmax=1,
                  interpolation="nearest")  # fmt: skip
        # pixel i spans [i - 0.5, i + 0.5] in imshow's coordinates
        side_of_box = high - low
        box = matplotlib.patches.Rectangle(
            (low - 0.5, low - 0.5), side_of_box, side_of_box, fill=False, edgecolor="tab:blue",
            linestyle="--", linewidth=1.2,
        )  # fmt: skip
        ax.add_patch(box)
        ax.set_xlim(min(-0.5, low - 0.5), max(gradient.shape[1] - 0.5, high - 0.5))
        ax.set_ylim(max(gradient.shape[0] - 0.5, high - 0.5), min(-0.5, low - 0.5))
        ax.set_title(f"{name}\n{side} of {high - low:g}", fontsize=TEXT - 1, linespacing=1.1)
    figure.suptitle(title, fontsize=TITLE)
    return figure
