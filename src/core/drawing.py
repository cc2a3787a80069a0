"""What the network sees, drawn: pure functions from tensors to matplotlib figures.

No Lightning and no TensorBoard here: the callbacks decide when to draw and where to log, and
every other command that shows a net (export, inspect, eval, predict) draws with these same
functions. Each figure is sized for TensorBoard's default image card (a 1600-pixel window): the
Images tab shows an image about 290 pixels wide, Time Series about 210 pixels high. So every
figure is 4.4 inches wide at 100 dpi, no taller than wide, with 12-14 pt text: either card
shrinks it to about a half to two thirds, and its text stays at 9-13 pixels.

Colour conventions, the same in every figure:
- signed values (weights, conv outputs) use a blue-white-red map centred on zero, with one
  symmetric scale for the whole figure (a layer), shown in a colour bar: white is 0, red
  positive, blue negative, and strengths compare across kernels, channels and digits;
- magnitudes (kernel norms) use a sequential map from 0;
- digits are drawn as MNIST has them, white ink on black;
- a grey grid separates tiles (it is no value of either map), and gaps are a fixed fraction of
  a tile, so they survive any scaling.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib
import matplotlib.patches
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from torch import Tensor

DIVERGING = matplotlib.colormaps["RdBu_r"].with_extremes(bad="#8c8c8c")
MAGNITUDE = matplotlib.colormaps["magma_r"].with_extremes(bad="#8c8c8c")
DIGIT = matplotlib.colormaps["gray"].with_extremes(bad="#8c8c8c")
DPI = 100
WIDTH = 4.4  # inches: 440 px, shown about 290 px wide on a card
TITLE = 14
TEXT = 12


def symmetric_limit(values: Tensor) -> float:
    """The colour scale's end for signed values: their largest magnitude (1 when all are 0)."""
    limit = float(values.detach().abs().max()) if values.numel() else 0.0
    return limit if limit > 0 and np.isfinite(limit) else 1.0


def mosaic(tiles: Tensor, gap: int) -> np.ndarray:
    """(rows, columns, h, w) tiles -> one 2-D array with `gap` NaN cells between tiles and
    around them; NaN draws in the colour map's 'bad' grey."""
    rows, columns, h, w = tiles.shape
    out = np.full((rows * (h + gap) + gap, columns * (w + gap) + gap), np.nan, dtype=np.float32)
    values = tiles.detach().float().cpu().numpy()
    for r in range(rows):
        for c in range(columns):
            top, left = gap + r * (h + gap), gap + c * (w + gap)
            out[top : top + h, left : left + w] = values[r, c]
    return out


def tile_gap(side: int) -> int:
    """Gap between tiles of `side` pixels: about an eighth of a tile, at least one pixel."""
    return max(1, round(side / 8))


def plain_axes(ax: Axes) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def draw_tiles(ax: Axes, tiles: Tensor, cmap, vmin: float, vmax: float) -> AxesImage:
    """(rows, columns, h, w) tiles as one mosaic on `ax`, one colour scale for all of them."""
    image = ax.imshow(
        mosaic(tiles, tile_gap(tiles.shape[-2])),
        cmap=cmap,
        vmin=vmin,
        vmax=vmax,
        interpolation="nearest",
    )
    plain_axes(ax)
    return image


def colour_bar(figure: Figure, image: AxesImage, ax: Axes | Sequence[Axes], label: str) -> None:
    bar = figure.colorbar(image, ax=ax, fraction=0.05, pad=0.02, shrink=0.9)
    bar.set_label(label, fontsize=TEXT)
    bar.ax.tick_params(labelsize=TEXT - 1)


def kernel_figure(
    weight: Tensor, name: str, max_shown: int = 8, output_label: str = "output channel"
) -> Figure:
    """A conv layer's weights (out, in, k, k) on one blue-white-red scale for the layer.

    - one input channel (the first conv): every kernel, in a near-square grid of at most 8 a row;
    - a 1x1 conv: one heatmap of out x in weights (`output_label` names the rows);
    - a deeper kxk conv: the kernels of the first `max_shown` filters (rows) on the first
      `max_shown` input channels (columns); `kernel_norm_figure` shows all of them at once.
    """
    weight = weight.detach().float().cpu()
    out_c, in_c, kh, kw = weight.shape
    if kh == kw == 1:
        return heatmap_figure(
            weight[:, :, 0, 0],
            f"{name}: 1x1 weights, {out_c} x {in_c}",
            ylabel=output_label,
            xlabel="input channel",
        )
    if in_c == 1:
        columns = min(8, math.ceil(math.sqrt(out_c)))
        rows = -(-out_c // columns)
        padded = torch.full((rows * columns, kh, kw), float("nan"))
        padded[:out_c] = weight[:, 0]
        tiles = padded.reshape(rows, columns, kh, kw)
        title = f"{name}: all {out_c} kernels, {kh}x{kw}"
    else:
        tiles = weight[:max_shown, :max_shown]
        rows, columns = tiles.shape[:2]
        title = f"{name}: filters 0-{rows - 1} x inputs 0-{columns - 1}\nof {out_c} x {in_c}"
    limit = symmetric_limit(weight)
    height = 0.9 + (WIDTH - 1.3) * rows / columns
    figure = Figure(figsize=(WIDTH, height), dpi=DPI, layout="constrained")
    ax = figure.subplots()
    image = draw_tiles(ax, tiles, DIVERGING, -limit, limit)
    if in_c > 1:
        ax.set_ylabel("filter", fontsize=TEXT)
        ax.set_xlabel("input channel", fontsize=TEXT)
    ax.set_title(title, fontsize=TITLE)
    colour_bar(figure, image, ax, "weight")
    return figure


def kernel_norm_figure(weight: Tensor, name: str, output_label: str = "output channel") -> Figure:
    """The L2 norm of every filter's kernel on every input channel of a conv (out, in, k, k):
    which inputs each filter uses (dark) and which it ignores (pale)."""
    weight = weight.detach().float().cpu()
    out_c, in_c = weight.shape[:2]
    norms = weight.flatten(2).norm(dim=2)
    figure = Figure(figsize=(WIDTH, WIDTH * 0.82), dpi=DPI, layout="constrained")
    ax = figure.subplots()
    image = ax.imshow(norms.numpy(), cmap=MAGNITUDE, vmin=0, interpolation="nearest", aspect="auto")
    ax.set_title(f"{name}: kernel norms, {out_c} x {in_c}", fontsize=TITLE)
    ax.set_xlabel("input channel", fontsize=TEXT)
    ax.set_ylabel(output_label, fontsize=TEXT)
    ax.tick_params(labelsize=TEXT - 1)
    colour_bar(figure, image, ax, "L2 norm")
    return figure


def heatmap_figure(values: Tensor, title: str, ylabel: str, xlabel: str) -> Figure:
    """A signed (rows, columns) matrix on a blue-white-red scale centred on zero; with 10 rows
    (the digits) every row is labelled."""
    values = values.detach().float().cpu()
    rows, columns = values.shape
    limit = symmetric_limit(values)
    height = min(WIDTH * 0.82, max(2.6, 1.4 + WIDTH * 0.8 * rows / max(columns, 1)))
    figure = Figure(figsize=(WIDTH, height), dpi=DPI, layout="constrained")
    ax = figure.subplots()
    image = ax.imshow(
        values.numpy(),
        cmap=DIVERGING,
        vmin=-limit,
        vmax=limit,
        interpolation="nearest",
        aspect="auto",
    )
    if rows <= 10:
        ax.set_yticks(range(rows))
    ax.set_title(title, fontsize=TITLE)
    ax.set_xlabel(xlabel, fontsize=TEXT)
    ax.set_ylabel(ylabel, fontsize=TEXT)
    ax.tick_params(labelsize=TEXT - 1)
    colour_bar(figure, image, ax, "weight")
    return figure


def most_active(maps: Tensor, count: int) -> Tensor:
    """Indices of the `count` channels of (N, C, H, W) maps with the largest mean magnitude over
    the batch, most active first."""
    activity = maps.detach().float().abs().mean(dim=(0, 2, 3))
    return activity.argsort(descending=True)[:count]


def top_units(maps: Tensor, channels: int, count: int) -> Tensor:
    """For each of the first `channels` channels of (N, C, h, w) maps, the `count` images whose
    strongest unit of that channel is strongest: (channels, count, 3) rows of (image, row,
    column), strongest first, one unit per image."""
    maps = maps.detach().float()[:, :channels]
    n, c, h, w = maps.shape
    peak, where = maps.flatten(2).max(dim=2)  # (N, C): each image's strongest unit
    images = peak.argsort(dim=0, descending=True)[:count].T  # (C, count)
    positions = where.T.gather(1, images)  # (C, count), flat index into h x w
    return torch.stack([images, positions // w, positions % w], dim=2)


def crop(images: Tensor, top: int, left: int, side: int) -> Tensor:
    """The `side` x `side` window of each image (N, 1, H, W) at (top, left), with blank paper
    (0) where the window runs past the image: what a unit at the border sees of its padding."""
    n, _, height, width = images.shape
    out = torch.zeros(n, side, side)
    rows = slice(max(top, 0), min(top + side, height))
    columns = slice(max(left, 0), min(left + side, width))
    out[:, rows.start - top : rows.stop - top, columns.start - left : columns.stop - left] = images[
        :, 0, rows, columns
    ]
    return out


def top_patches_figure(patches: Tensor, name: str) -> Figure:
    """What excites each channel most (Zeiler and Fergus): (channels, count, side, side) crops of
    validation digits (0-1), each the receptive field of the unit that responded most in that
    image, a row per channel, strongest first."""
    channels, count, side, _ = patches.shape
    figure = Figure(figsize=(WIDTH, 0.7 + (WIDTH - 0.5) * channels / count), dpi=DPI,
                    layout="constrained")  # fmt: skip
    ax = figure.subplots()
    draw_tiles(ax, patches, DIGIT, 0, 1)
    ax.set_ylabel(f"channels 0-{channels - 1}", fontsize=TEXT)
    figure.suptitle(f"{name}: top {count} patches ({side}x{side}) a channel", fontsize=TITLE)
    return figure


def feature_map_figure(maps: Tensor, digits: Tensor, name: str, max_maps: int = 12) -> Figure:
    """One layer's output (N, C, H, W) for N probe digits: a row per digit, its image (`digits`,
    (N, 1, 28, 28) on the 0-1 scale) first, then the `max_maps` most active channels, on one
    blue-white-red scale for the whole layer."""
    maps = maps.detach().float().cpu()
    n, channels, h, w = maps.shape
    chosen = most_active(maps, max_maps)
    shown = maps[:, chosen]
    limit = symmetric_limit(shown)
    columns = len(chosen)
    width_ratios = [1, columns]
    height = 1.3 + (WIDTH - 1.2) * n / (columns + 1)
    figure = Figure(figsize=(WIDTH, height), dpi=DPI, layout="constrained")
    digit_ax, maps_ax = figure.subplots(1, 2, width_ratios=width_ratios)
    draw_tiles(digit_ax, digits.cpu(), DIGIT, 0, 1)
    digit_ax.set_title("digit", fontsize=TEXT)
    image = draw_tiles(maps_ax, shown, DIVERGING, -limit, limit)
    maps_ax.set_title(f"channels {', '.join(map(str, chosen[:4].tolist()))}, ...", fontsize=TEXT)
    which = "every channel" if columns == channels else f"the {columns} most active of {channels}"
    figure.suptitle(f"{name} ({h}x{w}): {which}", fontsize=TITLE)
    colour_bar(figure, image, maps_ax, "activation")
    return figure


def digits_figure(images: Tensor, captions: Sequence[str], title: str, columns: int = 10) -> Figure:
    """Digits (N, 1, 28, 28) on the 0-1 scale, white ink on black, each with its caption."""
    n = len(images)
    columns = min(columns, max(n, 1))
    rows = max(1, -(-n // columns))
    tile = WIDTH / columns
    figure = Figure(figsize=(WIDTH, 0.6 + rows * tile * 1.45), dpi=DPI, layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, caption in zip(axes.flat, images, captions, strict=False):
        ax.imshow(image[0].cpu().numpy(), cmap=DIGIT, vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(caption, fontsize=TEXT, linespacing=1.1)
    figure.suptitle(title, fontsize=TITLE)
    return figure


def order_mistakes(confidence: Tensor, count: int) -> Tensor:
    """Indices of the `count` mistakes the net was most sure of (highest probability for its
    wrong answer), surest first."""
    return confidence.argsort(descending=True)[:count]


def mistakes_figure(
    images: Tensor, predicted: Tensor, true: Tensor, confidence: Tensor, total: int
) -> Figure:
    """Misclassified digits (N, 1, 28, 28) on the 0-1 scale, the surest mistakes first, each
    captioned with the prediction, its probability and the true digit; the title says how many
    of the `total` mistakes are shown."""
    order = order_mistakes(confidence, len(confidence))
    captions = [
        f"{int(predicted[i])} ({float(confidence[i]):.0%})\ntrue {int(true[i])}" for i in order
    ]
    title = f"{len(order)} of {total} mistakes, surest first\npredicted (probability), true digit"
    return digits_figure(images[order], captions, title, columns=6)


def confusion_figure(confusion: Tensor) -> Figure:
    """A (true, predicted) 10x10 count matrix: right answers on the diagonal in green, mistakes
    off it in red on their own scale, zeros left empty."""
    counts = confusion.detach().cpu().numpy().astype(np.int64)
    n = len(counts)
    diagonal = np.eye(n, dtype=bool)
    errors = np.where(diagonal, 0, counts)
    worst = max(int(errors.max()), 1)
    colours = np.ones((n, n, 3))
    reds = matplotlib.colormaps["Reds"](0.15 + 0.85 * errors / worst)[..., :3]
    colours[errors > 0] = reds[errors > 0]
    colours[diagonal] = matplotlib.colors.to_rgb("#cfe8cf")
    figure = Figure(figsize=(WIDTH, WIDTH * 0.9), dpi=DPI, layout="constrained")
    ax = figure.subplots()
    ax.imshow(colours, interpolation="nearest")
    for (true, pred), count in np.ndenumerate(counts):
        if count == 0:
            continue
        dark = not diagonal[true, pred] and errors[true, pred] > worst / 2
        ax.text(
            pred,
            true,
            str(count),
            ha="center",
            va="center",
            fontsize=TEXT if count < 1000 else TEXT - 3,
            color="white" if dark else "black",
            fontweight="bold" if not diagonal[true, pred] else "normal",
        )
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.tick_params(labelsize=TEXT, length=0)
    ax.set_xticks(np.arange(n + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(n + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="#bbbbbb", linewidth=0.6)
    ax.tick_params(which="minor", length=0)
    ax.set_xlabel("predicted", fontsize=TEXT + 1)
    ax.set_ylabel("true", fontsize=TEXT + 1)
    right, total = int(np.trace(counts)), int(counts.sum())
    ax.set_title(f"{right:,} of {total:,} right, {total - right:,} mistakes", fontsize=TITLE)
    return figure


def figure_pixels(figure: Figure) -> np.ndarray:
    """The figure rendered as an (H, W, 3) uint8 array, as TensorBoard and PNG files get it."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def prediction_figure(
    given: np.ndarray,
    seen: Tensor,
    probabilities: Tensor,
    activations: dict[str, Tensor],
    cam: Tensor | None,
    title: str,
    max_maps: int = 8,
) -> Figure:
    """What goes in and what comes out, for one image: the image as given (H, W) or (H, W, 3),
    the 28x28 the net sees (0-1 scale), the ten probabilities, the class activation map of the
    predicted digit over the digit (when there is one), and a row per layer of its `max_maps`
    most active channels (C, h, w), each row on its own signed scale."""
    predicted = int(probabilities.argmax())
    rows = 1 + len(activations)
    figure = Figure(figsize=(8, 2.6 + 1.15 * len(activations)), dpi=DPI, layout="constrained")
    grid = figure.add_gridspec(rows, 4, height_ratios=[2.2] + [1] * len(activations))
    panels = [figure.add_subplot(grid[0, i]) for i in range(4)]
    panels[0].imshow(given, cmap="gray" if given.ndim == 2 else None)
    panels[0].set_title("as given", fontsize=TEXT)
    draw_tiles(panels[1], seen.reshape(1, 1, *seen.shape[-2:]), DIGIT, 0, 1)
    panels[1].set_title("what the net sees", fontsize=TEXT)
    if cam is not None:
        panels[2].imshow(seen.reshape(seen.shape[-2:]).numpy(), cmap=DIGIT, vmin=0, vmax=1)
        upsampled = torch.nn.functional.interpolate(
            cam.reshape(1, 1, *cam.shape[-2:]), size=seen.shape[-2:], mode="bilinear"
        )[0, 0]
        limit = symmetric_limit(upsampled)
        overlay = panels[2].imshow(
            upsampled.numpy(), cmap=DIVERGING, vmin=-limit, vmax=limit, alpha=0.55
        )
        colour_bar(figure, overlay, panels[2], f"evidence for {predicted}")
        panels[2].set_title(f"class activation map of {predicted}", fontsize=TEXT)
    else:
        panels[2].text(0.5, 0.5, "no class activation map\n(head=conv)", ha="center", va="center")
    plain_axes(panels[0])
    plain_axes(panels[2])
    bars = panels[3].bar(range(10), probabilities.numpy(), color="#9ab")
    bars[predicted].set_color("#c0392b")
    panels[3].set_xticks(range(10))
    panels[3].set_ylim(0, 1)
    panels[3].set_title("probabilities", fontsize=TEXT)
    panels[3].tick_params(labelsize=TEXT - 2)
    for row, (name, maps) in enumerate(activations.items(), start=1):
        ax = figure.add_subplot(grid[row, :])
        chosen = most_active(maps.unsqueeze(0), max_maps)
        shown = maps[chosen].unsqueeze(0)
        limit = symmetric_limit(shown)
        draw_tiles(ax, shown, DIVERGING, -limit, limit)
        ax.set_ylabel(name, fontsize=TEXT - 1)
    figure.suptitle(title, fontsize=TITLE)
    return figure
