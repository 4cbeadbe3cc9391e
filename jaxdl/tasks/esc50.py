"""ESC-50: 2000 five-second environmental sound clips, 50 classes, official folds; a 2D CNN on
librosa log-mel features (the reference's `ESC50CNN2D`)."""

import inspect

import ml_collections
import numpy as np
from tqdm import tqdm

from jaxdl.checks import check, check_range
from jaxdl.data import audio, augment, device_augment, esc50
from jaxdl.data.device_inputs import DeviceInputs, DeviceShare
from jaxdl.models.esc50_cnn import Esc50CNN
from jaxdl.tasks.spec import DatasetCard, RawFiles, RawGroup, Task
from jaxdl.utils import plots

CARD = DatasetCard(
    "ESC-50 (environmental sound classification)",
    "https://github.com/karoldvl/ESC-50",
    "WAV clips of 5 s, 44.1 kHz mono, in audio/; meta/esc50.csv lists filename, fold (1–5), "
    "target, category",
)
CLIP_SECONDS = 5.0  # every ESC-50 clip; generated ones last data.synthetic.clip_seconds


def model_input(record: dict, config: ml_collections.ConfigDict) -> np.ndarray:
    """(n_mels, T) log-mel -> (n_mels, T, 1) float32."""
    return np.asarray(record["features"], np.float32)[..., None]


def spec_augment(record: dict, rng: np.random.Generator, cfg: ml_collections.ConfigDict) -> dict:
    return {**record, "features": augment.spec_augment(record["features"], rng, cfg)}


def device_share(config: ml_collections.ConfigDict) -> DeviceShare:
    """The step makes all of SpecAugment's draws; the features stay float32 (no normalisation)."""
    a = config.augment
    augment_op = device_augment.SpecAugment(
        float(a.time_shift_p),
        float(a.time_shift_max_fraction),
        float(a.freq_mask_p),
        int(a.freq_mask_param),
        float(a.time_mask_p),
        int(a.time_mask_param),
    )
    return DeviceShare(model_input, (("enabled", False),), DeviceInputs(augment=augment_op))


def input_shape(config: ml_collections.ConfigDict) -> tuple[int, ...]:
    """Features of one clip: 1 + seconds·sr // hop frames (centred STFT); 5 s -> (64, 501, 1)."""
    synthetic = config.data.source == "synthetic"
    seconds = config.data.synthetic.clip_seconds if synthetic else CLIP_SECONDS
    frames = 1 + int(round(seconds * config.features.sample_rate)) // config.features.hop_length
    return (config.features.n_mels, frames, 1)


def validate_data(config: ml_collections.ConfigDict) -> None:
    """Disjoint folds in 1–5, sound log-mel settings, SpecAugment probabilities."""
    folds = {split: tuple(config.data[f"{split}_folds"]) for split in esc50.SPLITS}
    for split, values in folds.items():
        check(
            all(isinstance(f, int) and f in esc50.FOLDS for f in values),
            f"data.{split}_folds",
            values,
            "fold numbers from 1 to 5 (ESC-50's folds)",
        )
    check(bool(folds["train"]), "data.train_folds", folds["train"], "at least one fold")
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        shared = set(folds[a]) & set(folds[b])
        check(
            not shared,
            f"data.{a}_folds",
            folds[a],
            f"no fold shared with data.{b}_folds={folds[b]} (shared: {sorted(shared)})",
        )
    for key in ("sample_rate", "n_fft", "win_length", "hop_length", "n_mels"):
        check_range(config, f"features.{key}", 0, low_inclusive=False)
    f = config.features
    check(
        f.win_length <= f.n_fft,
        "features.win_length",
        f.win_length,
        f"<= features.n_fft ({f.n_fft})",
    )
    check(
        0 <= f.f_min < f.f_max <= f.sample_rate / 2,
        "features.f_max",
        f.f_max,
        f"f_min < f_max <= sample_rate/2 ({f.sample_rate / 2})",
    )
    for key in ("time_shift_p", "freq_mask_p", "time_mask_p", "time_shift_max_fraction"):
        check_range(config, f"augment.{key}", 0.0, 1.0)
    check_range(config, "augment.freq_mask_param", 1)
    check_range(config, "augment.time_mask_param", 1)


def split_protocol(config: ml_collections.ConfigDict) -> str:
    data = config.data
    return (
        f"official folds, no randomness: train = folds {list(data.train_folds)}, "
        f"val = folds {list(data.val_folds)}, test = folds {list(data.test_folds)}"
    )


def raw_files(config: ml_collections.ConfigDict) -> RawFiles:
    """Clips of the train, val and test folds (and unused folds); WAVs present but not listed."""
    root = esc50.resolve_data_dir(config)
    records = esc50.read_metadata(root)
    audio_dir = root / esc50.AUDIO_DIR
    used = {split: set(config.data[f"{split}_folds"]) for split in esc50.SPLITS}
    parts = {
        split: [r.filename for r in records if r.fold in folds] for split, folds in used.items()
    }
    taken = set().union(*used.values())
    parts["unused folds"] = [r.filename for r in records if r.fold not in taken]
    groups = [
        RawGroup(name, names, lambda i, names=names: audio_dir / names[i])
        for name, names in parts.items()
        if names
    ]
    listed = {r.filename for r in records}
    unlisted = sorted(p.name for p in audio_dir.glob("*.wav") if p.name not in listed)
    return RawFiles("audio", root, groups, unlisted)


def _defaults(function) -> dict:
    """A function's keyword defaults (the fixed parameters of a step), read from its signature."""
    return {
        name: p.default
        for name, p in inspect.signature(function).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


def _preprocessing(config: ml_collections.ConfigDict) -> list[dict]:
    f = config.features
    return [
        {"op": "load", "params": {"reader": "soundfile", "mono": "mean of the channels"}},
        {
            "op": "resample",
            "params": {
                "to_hz": f.sample_rate,
                "method": "band-limited sinc, Hann window (torchaudio functional.resample)",
                **_defaults(audio.resample),
                "when": "the file's rate differs",
            },
        },
        {
            "op": "stft",
            "params": {
                "n_fft": f.n_fft,
                "win_length": f.win_length,
                "hop_length": f.hop_length,
                "window": "periodic Hann",
                "center": True,
                "pad_mode": "reflect",
                "power": 2.0,
            },
        },
        {
            "op": "mel_filterbank",
            "params": {
                "n_mels": f.n_mels,
                "f_min": f.f_min,
                "f_max": f.f_max,
                "scale": "HTK",
                "filter_norm": None,
            },
        },
        {
            "op": "power_to_db",
            "params": {"formula": "10·log10(max(S, amin))", "amin": f.amin, "top_db": None},
        },
        {
            "op": "standardize_per_band",
            "params": {
                "enabled": bool(f.standardize),
                "over": "time, per example and mel band",
                "std": "unbiased (ddof=1)",
                "std_floor": audio.STD_FLOOR,
            },
        },
    ]


def _augmentation(config: ml_collections.ConfigDict, frames: int) -> list[dict]:
    a = config.augment
    max_shift = int(a.time_shift_max_fraction * frames)
    return [
        {
            "op": "time_shift",
            "p": a.time_shift_p,
            "params": {
                "kind": "circular roll along time",
                "frames": f"k ~ U{{-{max_shift}..{max_shift}}}",
                "max_fraction": a.time_shift_max_fraction,
            },
        },
        {
            "op": "frequency_mask",
            "p": a.freq_mask_p,
            "params": {"masks": 1, "width": f"floor(U[0, {a.freq_mask_param}))", "fill": 0.0},
        },
        {
            "op": "time_mask",
            "p": a.time_mask_p,
            "params": {"masks": 1, "width": f"floor(U[0, {a.time_mask_param}))", "fill": 0.0},
        },
    ]


def pipeline_steps(
    config: ml_collections.ConfigDict, shape: tuple[int, ...]
) -> tuple[list[dict], list[dict]]:
    """The operations and their fixed choices restate `data/audio.py` and `data/augment.py`;
    the numbers come from the config."""
    return _preprocessing(config), _augmentation(config, shape[1])


def mean_std(config: ml_collections.ConfigDict, source) -> dict:
    """Mean and population std of every log-mel value of `source` (standardised per band when
    `features.standardize`, so ≈ 0 and ≈ 1); no configured values to compare with."""
    total, squares, count = 0.0, 0.0, 0
    for index in tqdm(range(len(source)), desc="mean/std", unit=" records", leave=False):
        values = np.asarray(source[index]["features"], np.float64)
        total += values.sum()
        squares += np.square(values).sum()
        count += values.size
    mean = total / count
    std = np.sqrt(max(squares / count - mean**2, 0.0))
    return {
        "mean": [float(mean)],
        "std": [float(std)],
        "examples": len(source),
        "config_mean": None,
        "config_std": None,
        "max_abs_diff": None,
    }


def example_panels(
    config: ml_collections.ConfigDict, record: dict, augmented: dict, x: np.ndarray, caption: str
) -> tuple[list[plots.Panel], dict]:
    """The waveform (mono, resampled), the log-mel features and the augmented model input."""
    del augmented  # x is the augmented record's model input
    rate = config.features.sample_rate
    waveform = audio.load_waveform(
        esc50.resolve_data_dir(config) / esc50.AUDIO_DIR / record["filename"], rate
    )
    features = np.asarray(record["features"])
    row = [
        plots.Panel("waveform", waveform, f"{caption}\nwaveform, mono {rate} Hz", rate),
        plots.Panel(
            "spectrogram",
            features,
            f"log-mel {features.shape}, range [{features.min():.2f}, {features.max():.2f}]",
        ),
        plots.Panel("spectrogram", x[..., 0], f"augmented = model input {x.shape}"),
    ]
    return row, {"augmentation_changed": bool(not np.array_equal(features, x[..., 0]))}


TASK = Task(
    name="esc50",
    card=CARD,
    source=esc50.SOURCE,
    objective_kind="multiclass",
    num_classes=50,
    model_name="esc50_cnn",
    model=Esc50CNN,
    load_split=esc50.load_split,
    model_input=model_input,
    augment=spec_augment,
    input_shape=input_shape,
    validate_data=validate_data,
    split_protocol=split_protocol,
    raw_files=raw_files,
    pipeline_steps=pipeline_steps,
    mean_std=mean_std,
    example_panels=example_panels,
    device_share=device_share,
)
