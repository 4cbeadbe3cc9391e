"""Per-example image augmentations with torchvision's semantics, on uint8 (H, W, 3) arrays.

Every function takes and returns a uint8 RGB array and draws from the `np.random.Generator` it is
given, so a grain `RandomMap` gets the same result for the same seed. The reference projects ran
torchvision transforms on PIL images; the colour operations and the rotation here call the same
Pillow functions torchvision's PIL backend calls (`ImageEnhance`, HSV conversion, `Image.rotate`),
so for equal random factors the pixels are identical. The random streams are numpy's, not torch's.
"""

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageEnhance


def random_horizontal_flip(img: np.ndarray, rng: np.random.Generator, p: float = 0.5) -> np.ndarray:
    """Mirror left-right with probability p (torchvision RandomHorizontalFlip)."""
    return img[:, ::-1] if rng.random() < p else img


def random_crop_with_padding(
    img: np.ndarray, rng: np.random.Generator, size: int | tuple[int, int], padding: int
) -> np.ndarray:
    """Zero-pad `padding` pixels on every side, then crop `size` at a uniform position.

    torchvision RandomCrop(size, padding=padding) with its default constant 0 fill.
    """
    height, width = (size, size) if isinstance(size, int) else size
    padded = np.pad(img, ((padding, padding), (padding, padding), (0, 0)))
    top = rng.integers(0, padded.shape[0] - height + 1)
    left = rng.integers(0, padded.shape[1] - width + 1)
    return padded[top : top + height, left : left + width]


def _factor_range(value: float, center: float, clip_at_zero: bool) -> tuple[float, float] | None:
    """torchvision ColorJitter's `_check_input`: [center - v, center + v], None when it is a
    no-op."""
    if value < 0:
        raise ValueError(f"color jitter strength must be non-negative, got {value}")
    if value == 0:
        return None
    low = max(center - value, 0.0) if clip_at_zero else center - value
    return (low, center + value)


def _adjust_hue(img: Image.Image, hue_factor: float) -> Image.Image:
    """torchvision's PIL adjust_hue: add hue·255 (truncated, wrapping mod 256) to Pillow's HSV
    hue."""
    h, s, v = img.convert("HSV").split()
    shift = np.uint8(int(hue_factor * 255) % 256)
    h = Image.fromarray(np.asarray(h, np.uint8) + shift, "L")
    return Image.merge("HSV", (h, s, v)).convert("RGB")


_COLOR_OPS = (
    lambda img, f: ImageEnhance.Brightness(img).enhance(f),  # blend with black
    lambda img, f: ImageEnhance.Contrast(img).enhance(f),  # blend with the mean grey level
    lambda img, f: ImageEnhance.Color(img).enhance(f),  # blend with the greyscale image
    _adjust_hue,
)


def color_jitter(
    img: np.ndarray,
    rng: np.random.Generator,
    brightness: float = 0.0,
    contrast: float = 0.0,
    saturation: float = 0.0,
    hue: float = 0.0,
) -> np.ndarray:
    """torchvision ColorJitter(brightness, contrast, saturation, hue) on one image.

    Factors: brightness, contrast, saturation ~ U[max(0, 1 - v), 1 + v]; hue shift ~ U[-h, h]
    (h <= 0.5). A strength of 0 disables that operation. The enabled operations are applied in a
    random order, as torchvision does; Pillow rounds to uint8 after each one.
    """
    if not 0.0 <= hue <= 0.5:
        raise ValueError(f"hue must be in [0, 0.5], got {hue}")
    ranges = (
        _factor_range(brightness, 1.0, True),
        _factor_range(contrast, 1.0, True),
        _factor_range(saturation, 1.0, True),
        _factor_range(hue, 0.0, False),
    )
    order = rng.permutation(4)
    factors = [None if r is None else rng.uniform(*r) for r in ranges]
    if all(f is None for f in factors):
        return img
    pil = Image.fromarray(np.ascontiguousarray(img))
    for index in order:
        if factors[index] is not None:
            pil = _COLOR_OPS[index](pil, factors[index])
    return np.asarray(pil, dtype=np.uint8)


def random_rotation(
    img: np.ndarray, rng: np.random.Generator, degrees: float | Sequence[float]
) -> np.ndarray:
    """Rotate counter-clockwise by an angle ~ U[-d, d] (or U[lo, hi] for a pair) about the centre.

    torchvision RandomRotation(degrees) defaults: nearest neighbour, same size, zero fill.
    """
    low, high = (-degrees, degrees) if np.isscalar(degrees) else degrees
    angle = rng.uniform(low, high)
    if angle == 0.0:
        return img
    pil = Image.fromarray(np.ascontiguousarray(img))
    return np.asarray(
        pil.rotate(angle, resample=Image.Resampling.NEAREST, fillcolor=(0, 0, 0)), dtype=np.uint8
    )
