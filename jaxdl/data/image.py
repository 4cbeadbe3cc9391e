"""Image decoding, resizing and normalisation shared by the three image tasks.

Decoding goes through Pillow, as torchvision's PIL path does in the reference projects, so the
pixels the models see are the ones the reference saw: RGB conversion by `Image.convert("RGB")`
(greyscale, CMYK and palette images; an alpha channel is dropped, not composited) and resizing by
`Image.resize(..., BILINEAR)`, which is what `torchvision.transforms.Resize` calls for PIL images
(its default interpolation; Pillow antialiases when it shrinks).
"""

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from jaxdl.errors import DataError


def decode_image(path_or_bytes: Path | str | bytes, name_for_errors: str) -> Image.Image:
    """The fully decoded image in RGB mode.

    `.load()` forces the whole decode, so a truncated or corrupt JPEG fails here (and not later
    inside a pipeline worker) with a DataError naming `name_for_errors`.
    """
    source = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    try:
        with Image.open(source) as img:
            img.load()
            return img.convert("RGB")
    except FileNotFoundError as err:
        raise DataError(f"{name_for_errors}: image file is missing") from err
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as err:
        raise DataError(f"{name_for_errors}: cannot decode the image ({err})") from err


def resize(img: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """`img` resized to `size` = (H, W) with Pillow bilinear (aspect not kept): uint8 (H, W, 3)."""
    height, width = size
    if img.size != (width, height):
        img = img.resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def normalize(image: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """uint8 (..., 3) -> float32 (x/255 - mean)/std, per channel (torchvision ToTensor +
    Normalize)."""
    mean32, std32 = np.asarray(mean, np.float32), np.asarray(std, np.float32)
    return (np.asarray(image, np.float32) / 255.0 - mean32) / std32


def denormalize(x: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Inverse of `normalize`, rounded and clipped to uint8 (..., 3), for previews."""
    unit = np.asarray(x, np.float32) * np.asarray(std, np.float32) + np.asarray(mean, np.float32)
    return np.clip(np.round(unit * 255.0), 0, 255).astype(np.uint8)


def channel_mean_std(source, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std, in [0, 1] units, of the pixels of n random records of `source`.

    `source[i]["image"]` is uint8 (H, W, 3); n images are drawn without replacement with
    `np.random.default_rng(seed)` (all of them if n >= len(source)). Returns float64 (3,) arrays,
    the population std over every pixel (what the reference's dataset statistics computed, on
    1,000 random CUB train images).
    """
    count = min(n, len(source))
    if count <= 0:
        raise ValueError(f"channel_mean_std needs at least one image, got n={n} of {len(source)}")
    total, squares, pixels = np.zeros(3), np.zeros(3), 0
    for index in np.random.default_rng(seed).choice(len(source), count, replace=False):
        values = np.asarray(source[int(index)]["image"], np.float64).reshape(-1, 3) / 255.0
        total += values.sum(axis=0)
        squares += np.square(values).sum(axis=0)
        pixels += len(values)
    mean = total / pixels
    return mean, np.sqrt(np.maximum(squares / pixels - mean**2, 0.0))
