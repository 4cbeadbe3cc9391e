"""D6–D8: the preprocessing and augmentation pipelines as configured, every parameter and
probability resolved, in the order the data modules apply them.

The operations and their fixed choices restate `data/audio.py`, `data/image.py`,
`data/augment.py` and `data/image_augment.py`; the numbers come from the config.
"""

import inspect

import ml_collections
import numpy as np

from jaxdl.data import audio, pipeline
from jaxdl.data.image_dataset import image_size
from jaxdl.data.tasks import TaskData


def _defaults(function) -> dict:
    """A function's keyword defaults (the fixed parameters of a step), read from its signature."""
    return {name: p.default for name, p in inspect.signature(function).parameters.items()
            if p.default is not inspect.Parameter.empty}


def _esc50_preprocessing(config: ml_collections.ConfigDict) -> list[dict]:
    f = config.features
    return [
        {"op": "load", "params": {"reader": "soundfile", "mono": "mean of the channels"}},
        {"op": "resample", "params": {
            "to_hz": f.sample_rate, "method": "band-limited sinc, Hann window (torchaudio "
            "functional.resample)", **_defaults(audio.resample), "when": "the file's rate differs"}},
        {"op": "stft", "params": {"n_fft": f.n_fft, "win_length": f.win_length,
                                  "hop_length": f.hop_length, "window": "periodic Hann",
                                  "center": True, "pad_mode": "reflect", "power": 2.0}},
        {"op": "mel_filterbank", "params": {"n_mels": f.n_mels, "f_min": f.f_min,
                                            "f_max": f.f_max, "scale": "HTK",
                                            "filter_norm": None}},
        {"op": "power_to_db", "params": {"formula": "10·log10(max(S, amin))", "amin": f.amin,
                                         "top_db": None}},
        {"op": "standardize_per_band", "params": {
            "enabled": bool(f.standardize), "over": "time, per example and mel band",
            "std": "unbiased (ddof=1)", "std_floor": audio.STD_FLOOR}},
    ]


def _esc50_augmentation(config: ml_collections.ConfigDict, frames: int) -> list[dict]:
    a = config.augment
    max_shift = int(a.time_shift_max_fraction * frames)
    return [
        {"op": "time_shift", "p": a.time_shift_p,
         "params": {"kind": "circular roll along time", "frames": f"k ~ U{{-{max_shift}..{max_shift}}}",
                    "max_fraction": a.time_shift_max_fraction}},
        {"op": "frequency_mask", "p": a.freq_mask_p,
         "params": {"masks": 1, "width": f"floor(U[0, {a.freq_mask_param}))", "fill": 0.0}},
        {"op": "time_mask", "p": a.time_mask_p,
         "params": {"masks": 1, "width": f"floor(U[0, {a.time_mask_param}))", "fill": 0.0}},
    ]


def _image_preprocessing(config: ml_collections.ConfigDict) -> list[dict]:
    height, width = image_size(config)
    return [
        {"op": "decode", "params": {"reader": "Pillow", "convert": "RGB (greyscale, CMYK and "
                                    "palette converted; alpha dropped)"}},
        {"op": "resize", "params": {"size_hw": [height, width], "interpolation": "bilinear "
                                    "(antialiased when shrinking)", "keep_aspect": False,
                                    "when": "once, when the split is cached"}},
        {"op": "to_float", "params": {"formula": "x / 255"}},
        {"op": "normalize", "params": {"mean": list(config.preprocess.mean),
                                       "std": list(config.preprocess.std)}},
    ]


def _jitter_range(value: float, center: float, clip_at_zero: bool) -> list[float]:
    low = max(center - value, 0.0) if clip_at_zero else center - value
    return [low, center + value]


def _image_augmentation(config: ml_collections.ConfigDict) -> list[dict]:
    a = config.augment
    jitter = {name: _jitter_range(a[name], 1.0, True)
              for name in ("brightness", "contrast", "saturation") if a[name]}
    if a.hue:
        jitter["hue"] = _jitter_range(a.hue, 0.0, False)
    steps = [{"op": "horizontal_flip", "p": a.flip_p, "params": {}}]
    if a.crop_padding:
        steps.append({"op": "pad_and_random_crop", "p": 1.0,
                      "params": {"padding": a.crop_padding, "fill": 0,
                                 "crop_hw": list(image_size(config))}})
    if a.rotation_degrees:
        steps.append({"op": "rotation", "p": 1.0,
                      "params": {"degrees": f"U[-{a.rotation_degrees}, {a.rotation_degrees}]",
                                 "interpolation": "nearest", "fill": 0}})
    if jitter:
        steps.append({"op": "color_jitter", "p": 1.0,
                      "params": {"factor_ranges": jitter, "order": "random per example"}})
    return steps


def describe(config: ml_collections.ConfigDict, input_shape: tuple[int, ...]) -> dict:
    """{"preprocessing": [...], "augmentation": {"enabled", "applies_to", "steps": [...]}}.

    Each step is {"op", "params"} (augmentations also "p", the probability it is applied to an
    example). Preprocessing is the same for every split; augmentation is training only.
    """
    if config.task == "esc50":
        preprocessing = _esc50_preprocessing(config)
        steps = _esc50_augmentation(config, input_shape[1])
    else:
        preprocessing = _image_preprocessing(config)
        steps = _image_augmentation(config)
    return {
        "preprocessing": preprocessing,
        "output_shape": list(input_shape),
        "augmentation": {"enabled": bool(config.augment.enabled),
                         "applies_to": "train split only, per example, in this order",
                         "steps": steps if config.augment.enabled else []},
    }


def eval_is_deterministic(source, task: TaskData, config: ml_collections.ConfigDict,
                          batch_size: int) -> bool:
    """D7: the first evaluation batch, built twice, is identical (no randomness outside training)."""
    first, second = (next(iter(pipeline.eval_batches(source, task, config, batch_size)))
                     for _ in range(2))
    return all(np.array_equal(first[key], second[key]) for key in ("x", "y", "mask"))
