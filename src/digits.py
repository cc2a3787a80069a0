"""Any digit image made MNIST-like, the way MNIST itself was made: grey, ink bright on a dark
background, cropped to the ink, scaled to fit a 20x20 box keeping its aspect ratio, and placed
in a 28x28 field with its centre of mass at the centre.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

FIELD, BOX = 28, 20
FAINTEST_INK = 0.02  # after stretching paper to 0 and the strongest ink to 1
MIN_CONTRAST = 0.15  # ink at least this far from the paper, on the 0-1 scale


class NotADigit(ValueError):
    """An image that cannot be made MNIST-like: not an image, or no ink on it."""


def read_image(path: str | Path) -> Image.Image:
    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise NotADigit(f"not an image ({type(err).__name__})") from None


def grey(image: Image.Image) -> np.ndarray:
    """Grey levels on the 0-1 scale; transparent parts become white paper."""
    if image.mode in ("RGBA", "LA", "P"):
        image = image.convert("RGBA")
        paper = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(paper, image)
    return np.asarray(image.convert("L"), dtype=np.float32) / 255.0


def border(levels: np.ndarray) -> np.ndarray:
    return np.concatenate([levels[0], levels[-1], levels[:, 0], levels[:, -1]])


def ink_on_dark(levels: np.ndarray) -> tuple[np.ndarray, float]:
    """(levels with paper at 0 and the strongest ink at 1, the lowest level that counts as ink).
    The paper is the median of the border; an image on light paper is inverted first; what
    counts as ink lies above the paper's own noise (twice the border's 90th percentile)."""
    if np.median(border(levels)) > 0.5:
        levels = 1.0 - levels
    paper = float(np.median(border(levels)))
    strongest = float(levels.max())
    if strongest - paper < MIN_CONTRAST:
        raise NotADigit("blank image (no ink)")
    levels = np.clip((levels - paper) / (strongest - paper), 0.0, 1.0)
    return levels, max(FAINTEST_INK, 2 * float(np.percentile(border(levels), 90)))


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
