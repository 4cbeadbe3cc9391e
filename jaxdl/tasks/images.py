"""What the three image tasks share: decoded uint8 RGB records normalised with
`preprocess.mean/std`, the same augmentation chain, the same checks and the same analyze views."""

from collections.abc import Sequence

import ml_collections
import numpy as np

from jaxdl.checks import check, check_range, is_number
from jaxdl.data import device_augment, image, image_augment
from jaxdl.data.device_inputs import DeviceInputs, DeviceShare, Normalize
from jaxdl.data.image_dataset import image_size
from jaxdl.tasks.spec import RawGroup, Task
from jaxdl.utils import plots


def model_input(record: dict, config: ml_collections.ConfigDict) -> np.ndarray:
    """uint8 (H, W, 3) -> float32 normalised with `preprocess.mean/std` (all splits alike)."""
    return image.normalize(record["image"], config.preprocess.mean, config.preprocess.std)


def augment(record: dict, rng: np.random.Generator, cfg: ml_collections.ConfigDict) -> dict:
    """Flip → pad-and-crop → rotation → colour jitter, each skipped when its strength is 0."""
    img = image_augment.random_horizontal_flip(record["image"], rng, cfg.flip_p)
    if cfg.crop_padding:
        img = image_augment.random_crop_with_padding(img, rng, img.shape[:2], cfg.crop_padding)
    if cfg.rotation_degrees:
        img = image_augment.random_rotation(img, rng, cfg.rotation_degrees)
    img = image_augment.color_jitter(
        img,
        rng,
        brightness=cfg.brightness,
        contrast=cfg.contrast,
        saturation=cfg.saturation,
        hue=cfg.hue,
    )
    return {**record, "image": img}


def pixels(record: dict, config: ml_collections.ConfigDict) -> np.ndarray:
    """The stored uint8 (H, W, 3) image, which the step normalises on the device path."""
    del config
    return record["image"]


def device_share(config: ml_collections.ConfigDict) -> DeviceShare:
    """The step normalises, and takes the flip and the crop where that keeps `augment`'s
    distribution: the step runs after the host's remaining steps, so an op moves only if it
    commutes with every later one. The flip commutes with colour jitter (per-pixel operations;
    contrast's mean grey level is mirror-invariant), not exactly with the nearest-neighbour
    rotation (a few pixels differ); the crop commutes with brightness, saturation and hue, which
    keep black black, but not with contrast (its zero border would move the mean) or rotation."""
    a = config.augment
    flip_p = 0.0 if a.rotation_degrees else float(a.flip_p)
    padding = 0 if a.rotation_degrees or a.contrast else int(a.crop_padding)
    host = {"flip_p": 0.0} if flip_p else {}
    host |= {"crop_padding": 0} if padding else {}
    augment_op = device_augment.FlipCrop(flip_p, padding) if flip_p or padding else None
    normalize = Normalize(tuple(config.preprocess.mean), tuple(config.preprocess.std))
    return DeviceShare(pixels, tuple(host.items()), DeviceInputs(normalize, augment_op))


def input_shape(config: ml_collections.ConfigDict) -> tuple[int, ...]:
    return (*image_size(config), 3)


def validate(config: ml_collections.ConfigDict) -> None:
    """data.image_size, preprocess.mean/std and the augmentation strengths."""
    size = config.data.image_size
    sizes = size if isinstance(size, (tuple, list)) else (size,)
    check(
        all(isinstance(v, int) and v >= 8 for v in sizes),
        "data.image_size",
        size,
        "a side length >= 8 pixels (or (height, width))",
    )
    for key in ("mean", "std"):
        values = tuple(config.preprocess[key])
        check(
            len(values) == 3 and all(is_number(v) for v in values),
            f"preprocess.{key}",
            values,
            "three per-channel numbers (RGB)",
        )
    check(
        all(v > 0 for v in config.preprocess.std),
        "preprocess.std",
        config.preprocess.std,
        "positive values",
    )
    check_range(config, "augment.flip_p", 0.0, 1.0)
    for key in ("brightness", "contrast", "saturation", "crop_padding", "rotation_degrees"):
        check_range(config, f"augment.{key}", 0.0)
    check_range(config, "augment.hue", 0.0, 0.5)


def images_group(name: str, images, files: Sequence[str]) -> RawGroup:
    """A census group reading the encoded images of `images` (ImageFiles or parquet rows)."""
    return RawGroup(name, list(files), images.read)


def _preprocessing(config: ml_collections.ConfigDict) -> list[dict]:
    height, width = image_size(config)
    return [
        {
            "op": "decode",
            "params": {
                "reader": "Pillow",
                "convert": "RGB (greyscale, CMYK and palette converted; alpha dropped)",
            },
        },
        {
            "op": "resize",
            "params": {
                "size_hw": [height, width],
                "interpolation": "bilinear (antialiased when shrinking)",
                "keep_aspect": False,
                "when": "once, when the split is cached",
            },
        },
        {"op": "to_float", "params": {"formula": "x / 255"}},
        {
            "op": "normalize",
            "params": {"mean": list(config.preprocess.mean), "std": list(config.preprocess.std)},
        },
    ]


def _jitter_range(value: float, center: float, clip_at_zero: bool) -> list[float]:
    low = max(center - value, 0.0) if clip_at_zero else center - value
    return [low, center + value]


def _augmentation(config: ml_collections.ConfigDict) -> list[dict]:
    a = config.augment
    jitter = {
        name: _jitter_range(a[name], 1.0, True)
        for name in ("brightness", "contrast", "saturation")
        if a[name]
    }
    if a.hue:
        jitter["hue"] = _jitter_range(a.hue, 0.0, False)
    steps = [{"op": "horizontal_flip", "p": a.flip_p, "params": {}}]
    if a.crop_padding:
        steps.append(
            {
                "op": "pad_and_random_crop",
                "p": 1.0,
                "params": {
                    "padding": a.crop_padding,
                    "fill": 0,
                    "crop_hw": list(image_size(config)),
                },
            }
        )
    if a.rotation_degrees:
        steps.append(
            {
                "op": "rotation",
                "p": 1.0,
                "params": {
                    "degrees": f"U[-{a.rotation_degrees}, {a.rotation_degrees}]",
                    "interpolation": "nearest",
                    "fill": 0,
                },
            }
        )
    if jitter:
        steps.append(
            {
                "op": "color_jitter",
                "p": 1.0,
                "params": {"factor_ranges": jitter, "order": "random per example"},
            }
        )
    return steps


def pipeline_steps(
    config: ml_collections.ConfigDict, shape: tuple[int, ...]
) -> tuple[list[dict], list[dict]]:
    """The operations and their fixed choices restate `data/image.py` and
    `data/image_augment.py`; the numbers come from the config."""
    del shape
    return _preprocessing(config), _augmentation(config)


def mean_std(config: ml_collections.ConfigDict, source) -> dict:
    """Per RGB channel in [0, 1] units over every train example, against `preprocess.mean/std`."""
    mean, std = image.channel_mean_std(source, len(source), config.seed)
    configured = np.concatenate([config.preprocess.mean, config.preprocess.std])
    return {
        "mean": mean.tolist(),
        "std": std.tolist(),
        "examples": len(source),
        "config_mean": list(config.preprocess.mean),
        "config_std": list(config.preprocess.std),
        "max_abs_diff": float(np.abs(np.concatenate([mean, std]) - configured).max()),
    }


def _range(x: np.ndarray) -> str:
    return f"[{x.min():.2f}, {x.max():.2f}]"


def example_panels(
    config: ml_collections.ConfigDict, record: dict, augmented: dict, x: np.ndarray, caption: str
) -> tuple[list[plots.Panel], dict]:
    """The stored image, one augmentation draw, and the model input de-normalised back to pixels
    (it must equal the augmented image up to rounding, which checks the normalisation)."""
    shown = image.denormalize(x, config.preprocess.mean, config.preprocess.std)
    facts = {
        "augmentation_changed": bool(not np.array_equal(record["image"], augmented["image"])),
        "denormalized_max_abs_diff": int(
            np.abs(shown.astype(np.int16) - augmented["image"].astype(np.int16)).max()
        ),
    }
    row = [
        plots.Panel("image", record["image"], f"{caption}\nstored {record['image'].shape}"),
        plots.Panel("image", augmented["image"], "augmented"),
        plots.Panel("image", shown, f"model input {x.shape}, range {_range(x)},\nde-normalised"),
    ]
    return row, facts


def image_task(**fields) -> Task:
    """A `Task` with the image tasks' shared adapters and analyze views (this module's); `fields`
    give the rest: name, card, source, objective_kind, num_classes, model_name, model, load_split,
    validate_data, split_protocol, raw_files."""
    return Task(
        model_input=model_input,
        augment=augment,
        input_shape=input_shape,
        pipeline_steps=pipeline_steps,
        mean_std=mean_std,
        example_panels=example_panels,
        device_share=device_share,
        **fields,
    )
