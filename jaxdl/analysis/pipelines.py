"""D6–D8: the preprocessing and augmentation pipelines as configured, every parameter and
probability resolved, in the order the data modules apply them (each task lists its steps:
`Task.pipeline_steps`)."""

import ml_collections
import numpy as np

from jaxdl import tasks
from jaxdl.data import pipeline
from jaxdl.tasks.spec import Task


def describe(config: ml_collections.ConfigDict, input_shape: tuple[int, ...]) -> dict:
    """{"preprocessing": [...], "augmentation": {"enabled", "applies_to", "steps": [...]}}.

    Each step is {"op", "params"} (augmentations also "p", the probability it is applied to an
    example). Preprocessing is the same for every split; augmentation is training only.
    """
    preprocessing, steps = tasks.get(config).pipeline_steps(config, input_shape)
    return {
        "preprocessing": preprocessing,
        "output_shape": list(input_shape),
        "augmentation": {
            "enabled": bool(config.augment.enabled),
            "applies_to": "train split only, per example, in this order",
            "steps": steps if config.augment.enabled else [],
        },
    }


def eval_is_deterministic(
    source, task: Task, config: ml_collections.ConfigDict, batch_size: int
) -> bool:
    """D7: the first evaluation batch, built twice, is identical (no randomness outside
    training)."""
    first, second = (
        next(iter(pipeline.eval_batches(source, task, config, batch_size))) for _ in range(2)
    )
    return all(np.array_equal(first[key], second[key]) for key in ("x", "y", "mask"))
