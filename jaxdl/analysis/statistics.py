"""Optional (`analyze.mean_std`): per-channel mean and std of the train split's model inputs
before normalisation, to check or recompute `preprocess.mean/std` (the CUB reference computed
its values this way, on 1,000 random train images)."""

import ml_collections
import numpy as np
from tqdm import tqdm

from jaxdl.data import image


def _feature_mean_std(source) -> tuple[np.ndarray, np.ndarray]:
    """ESC-50: mean and population std of every log-mel value of `source`, float64 (1,)."""
    total, squares, count = 0.0, 0.0, 0
    for index in tqdm(range(len(source)), desc="mean/std", unit=" records", leave=False):
        values = np.asarray(source[index]["features"], np.float64)
        total += values.sum()
        squares += np.square(values).sum()
        count += values.size
    mean = total / count
    return np.array([mean]), np.array([np.sqrt(max(squares / count - mean**2, 0.0))])


def train_mean_std(config: ml_collections.ConfigDict, source) -> dict:
    """{"mean", "std", "examples", "config_mean", "config_std", "max_abs_diff"} over every train
    example: images in [0, 1] units per RGB channel (against `preprocess.mean/std`); ESC-50 over
    the log-mel values (standardised per band when `features.standardize`, so ≈ 0 and ≈ 1)."""
    if config.task == "esc50":
        mean, std = _feature_mean_std(source)
        return {"mean": mean.tolist(), "std": std.tolist(), "examples": len(source),
                "config_mean": None, "config_std": None, "max_abs_diff": None}
    mean, std = image.channel_mean_std(source, len(source), config.seed)
    configured = np.concatenate([config.preprocess.mean, config.preprocess.std])
    return {"mean": mean.tolist(), "std": std.tolist(), "examples": len(source),
            "config_mean": list(config.preprocess.mean), "config_std": list(config.preprocess.std),
            "max_abs_diff": float(np.abs(np.concatenate([mean, std]) - configured).max())}
