"""Per-task data adapters: how a task's records become model inputs, and its augmentation.

Each task's own module (`data/esc50.py`, …) reads its official layout and returns records; this
registry tells the generic pipeline how to turn a record into `x` and how to augment it.
"""

import dataclasses
from collections.abc import Callable

import ml_collections
import numpy as np

from jaxdl.data import augment, esc50
from jaxdl.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class TaskData:
    objective_kind: str  # "multiclass" | "multilabel"
    load_split: Callable[[ml_collections.ConfigDict, str], "esc50.Split"]
    model_input: Callable[[dict], np.ndarray]  # record -> float32 model input (H, W, C)
    augment: Callable[[dict, np.random.Generator, ml_collections.ConfigDict], dict]
    input_shape: Callable[[ml_collections.ConfigDict], tuple[int, ...]]  # of one example
    num_classes: int  # of the real dataset (bench builds the model without reading data)


def _esc50_input(record: dict) -> np.ndarray:
    """(n_mels, T) log-mel -> (n_mels, T, 1) float32."""
    return np.asarray(record["features"], np.float32)[..., None]


def _esc50_augment(record: dict, rng: np.random.Generator,
                   cfg: ml_collections.ConfigDict) -> dict:
    return {**record, "features": augment.spec_augment(record["features"], rng, cfg)}


def _esc50_input_shape(config: ml_collections.ConfigDict) -> tuple[int, ...]:
    """Shape of a 5 s clip's features: 1 + 5·sr // hop frames (centred STFT) -> (64, 501, 1)."""
    frames = 1 + 5 * config.features.sample_rate // config.features.hop_length
    return (config.features.n_mels, frames, 1)


TASKS = {
    "esc50": TaskData("multiclass", esc50.load_split, _esc50_input, _esc50_augment,
                      _esc50_input_shape, num_classes=50),
}


def task_data(config: ml_collections.ConfigDict) -> TaskData:
    if config.task not in TASKS:
        raise ConfigError(f"task={config.task!r} is unknown; allowed: {sorted(TASKS)}")
    return TASKS[config.task]
