"""Per-task data adapters: how a task's records become model inputs, and its augmentation.

Each task's own module (`data/esc50.py`, `data/cub200.py`, …) reads its official layout and returns
records; this registry tells the generic pipeline how to turn a record into `x` and how to
augment it. Functions are module-level so grain worker processes can pickle them.
"""

import dataclasses
from collections.abc import Callable

import ml_collections
import numpy as np

from jaxdl.data import augment, celeba, cub200, esc50, image, image_augment, tiny_imagenet
from jaxdl.data.image_dataset import image_size
from jaxdl.data.split import Split
from jaxdl.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class TaskData:
    objective_kind: str  # "multiclass" | "multilabel"
    load_split: Callable[[ml_collections.ConfigDict, str], Split]
    # record, config -> float32 model input (H, W, C)
    model_input: Callable[[dict, ml_collections.ConfigDict], np.ndarray]
    # record, rng, config.augment -> record (train only)
    augment: Callable[[dict, np.random.Generator, ml_collections.ConfigDict], dict]
    input_shape: Callable[[ml_collections.ConfigDict], tuple[int, ...]]  # of one example
    num_classes: int  # of the real dataset (bench builds the model without reading data)


def _esc50_input(record: dict, config: ml_collections.ConfigDict) -> np.ndarray:
    """(n_mels, T) log-mel -> (n_mels, T, 1) float32."""
    return np.asarray(record["features"], np.float32)[..., None]


def _esc50_augment(record: dict, rng: np.random.Generator,
                   cfg: ml_collections.ConfigDict) -> dict:
    return {**record, "features": augment.spec_augment(record["features"], rng, cfg)}


def _esc50_input_shape(config: ml_collections.ConfigDict) -> tuple[int, ...]:
    """Features of one clip: 1 + seconds·sr // hop frames (centred STFT); 5 s -> (64, 501, 1).

    ESC-50 clips last 5 s; generated ones `data.synthetic.clip_seconds`.
    """
    seconds = config.data.synthetic.clip_seconds if config.data.source == "synthetic" else 5.0
    frames = 1 + int(round(seconds * config.features.sample_rate)) // config.features.hop_length
    return (config.features.n_mels, frames, 1)


def _image_input(record: dict, config: ml_collections.ConfigDict) -> np.ndarray:
    """uint8 (H, W, 3) -> float32 normalised with `preprocess.mean/std` (all splits alike)."""
    return image.normalize(record["image"], config.preprocess.mean, config.preprocess.std)


def _image_augment(record: dict, rng: np.random.Generator,
                   cfg: ml_collections.ConfigDict) -> dict:
    """Flip → pad-and-crop → rotation → colour jitter, each skipped when its strength is 0."""
    img = image_augment.random_horizontal_flip(record["image"], rng, cfg.flip_p)
    if cfg.crop_padding:
        img = image_augment.random_crop_with_padding(img, rng, img.shape[:2], cfg.crop_padding)
    if cfg.rotation_degrees:
        img = image_augment.random_rotation(img, rng, cfg.rotation_degrees)
    img = image_augment.color_jitter(img, rng, brightness=cfg.brightness, contrast=cfg.contrast,
                                     saturation=cfg.saturation, hue=cfg.hue)
    return {**record, "image": img}


def _image_input_shape(config: ml_collections.ConfigDict) -> tuple[int, ...]:
    return (*image_size(config), 3)


TASKS = {
    "esc50": TaskData("multiclass", esc50.load_split, _esc50_input, _esc50_augment,
                      _esc50_input_shape, num_classes=50),
    "tiny_imagenet": TaskData("multiclass", tiny_imagenet.load_split, _image_input,
                              _image_augment, _image_input_shape, num_classes=200),
    "cub200": TaskData("multiclass", cub200.load_split, _image_input, _image_augment,
                       _image_input_shape, num_classes=200),
    "celeba": TaskData("multilabel", celeba.load_split, _image_input, _image_augment,
                       _image_input_shape, num_classes=5),
}


def task_data(config: ml_collections.ConfigDict) -> TaskData:
    if config.task not in TASKS:
        raise ConfigError(f"task={config.task!r} is unknown; allowed: {sorted(TASKS)}")
    return TASKS[config.task]
