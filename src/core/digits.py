"""Any digit image made MNIST-like, the way MNIST itself was made: grey, ink bright on a dark
background, cropped to the ink, scaled to fit a 20x20 box keeping its aspect ratio, and placed
in a 28x28 field with its centre of mass at the centre.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

FIELD, BOX = 28, 20
FAINTEST_INK = 0.02  # after stretching paper to 0 and the strongest ink to 1
MIN_CONTRAST = 0.15  # ink at least this far from the paper, on the 0-1 scale


class NotADigit(ValueError):
    """An image that cannot be made MNIST-like: not an image, or no ink on it."""


def read_image(path: str | Path) -> Image.Image:
    """The image, turned upright as its EXIF orientation says (phone photos)."""
    try:
        with Image.open(path) as image:
            image.load()
            return ImageOps.exif_transpose(image)
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        Image.DecompressionBombError,
    ) as err:
        raise NotADigit(f"not an image ({type(err).__name__})") from None


def grey(image: Image.Image) -> np.ndarray:
    """Grey levels on the 0-1 scale. 16-bit and float images keep their range; transparent
    parts become paper of the opposite shade to the ink's average (so that white ink on a
    transparent background stays visible)."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        levels = np.asarray(image, dtype=np.float32)
        top = 1.0 if image.mode == "F" and levels.max() <= 1 else 255.0
        top = 65535.0 if levels.max() > 255 else top
        return np.clip(levels / top, 0.0, 1.0)
    if image.mode in ("RGBA", "LA", "PA", "P"):
        rgba = image.convert("RGBA")
        alpha = np.asarray(rgba, dtype=np.float32)[..., 3] / 255.0
        ink = np.asarray(rgba.convert("L"), dtype=np.float32) / 255.0
        drawn = alpha > 0.5
        shade = 0 if drawn.any() and ink[drawn].mean() > 0.5 else 255
        paper = Image.new("RGBA", image.size, (shade, shade, shade, 255))
        image = Image.alpha_composite(paper, rgba)
    try:
        return np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    except ValueError as err:  # modes Pillow cannot turn grey, e.g. LAB
        raise NotADigit(f"not an image PIL can read as grey ({image.mode}: {err})") from None


def border(levels: np.ndarray) -> np.ndarray:
    return np.concatenate([levels[0], levels[-1], levels[:, 0], levels[:, -1]])


def ink_on_dark(levels: np.ndarray) -> tuple[np.ndarray, float]:
    """(levels with paper at 0 and the strongest ink at 1, the lowest level that counts as ink).
    The paper is the median of the border; the ink is whichever extreme lies farther from it
    (dark ink on light paper is inverted); what counts as ink lies above the paper's own noise,
    measured on the border pixels that are paper, not ink."""
    paper = float(np.median(border(levels)))
    if paper - float(levels.min()) > float(levels.max()) - paper:
        levels, paper = 1.0 - levels, 1.0 - paper
    strongest = float(levels.max())
    if strongest - paper < MIN_CONTRAST:
        raise NotADigit("blank image (no ink)")
    levels = np.clip((levels - paper) / (strongest - paper), 0.0, 1.0)
    edge = border(levels)
    noise = float(np.percentile(edge[edge < 0.5], 90)) if (edge < 0.5).any() else 0.0
    return levels, min(0.5, max(FAINTEST_INK, 2 * noise))


def centre_of_mass(levels: np.ndarray) -> tuple[float, float]:
    rows, columns = np.indices(levels.shape)
    total = levels.sum()
    return float((rows * levels).sum() / total), float((columns * levels).sum() / total)


def mnist_like(image: Image.Image) -> Tensor:
    """A (28, 28) float tensor on the 0-1 scale, ink 1 on 0, from a digit image of any size,
    grey or colour, dark ink on light paper or light on dark; NotADigit when it has no ink."""
    levels, faintest = ink_on_dark(grey(image))
    rows, columns = np.nonzero(levels > faintest)
    if len(rows) == 0:
        raise NotADigit("blank image (no ink)")
    crop = levels[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1]
    height, width = crop.shape
    scale = BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    boxed = np.asarray(
        Image.fromarray(crop * 255.0).resize(size, Image.Resampling.LANCZOS), dtype=np.float32
    )
    boxed = np.clip(boxed / 255.0, 0.0, 1.0)
    centre_row, centre_column = centre_of_mass(boxed)
    top = round(FIELD / 2 - centre_row)  # MNIST's centres of mass lie at (14, 14)
    left = round(FIELD / 2 - centre_column)
    field = np.zeros((FIELD, FIELD), dtype=np.float32)
    # the part of the box that lands inside the field
    r0, c0 = max(0, -top), max(0, -left)
    r1, c1 = min(boxed.shape[0], FIELD - top), min(boxed.shape[1], FIELD - left)
    field[top + r0 : top + r1, left + c0 : left + c1] = boxed[r0:r1, c0:c1]
    return torch.from_numpy(field)
